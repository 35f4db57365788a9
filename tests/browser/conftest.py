"""Headless Chromium (Debian's package) driven by Playwright's sync API against pytest-django's live server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

# ``browser`` (one Chromium per test process) is in tests/conftest.py: the checks' tests
# drive Chromium too, and Playwright's sync API allows one instance per thread.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def browser_context(browser, live_server, django_db_setup, django_db_blocker):
    """One browser context for the session: its HTTP and compiled-script caches carry over
    from test to test (Plotly is 4.8 MB of script), while ``page`` empties its cookies,
    storage, routes and permissions after each test. 22% less Chromium CPU than a context
    per test (20 browser tests: 14.9 against 19.0 CPU s).

    It is built after the test database (``django_db_setup``), so that it is closed before
    the database is dropped."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=live_server.url)
    yield context
    context.close()
    # The live server's threads close their database connections when Chromium closes
    # its keep-alive sockets, a moment after this: the test database is dropped next.
    with django_db_blocker.unblock():
        wait_for_other_sessions_to_close()


def wait_for_other_sessions_to_close(timeout: float = 10.0) -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + timeout
    try:
        with connection.cursor() as cursor:
            while time.monotonic() < deadline:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                if cursor.fetchone()[0] == 0:
                    return
                time.sleep(0.05)
    finally:
        # This connection is a session too: Django's teardown does not close it (it
        # was opened here, after the tests), and the database could not be dropped.
        connection.close()


@pytest.fixture
def page(browser_context, live_server):
    context = browser_context
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.errors = []
    page.dialogs = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    # A script, style or request the Content-Security-Policy blocked is an error too.
    # (So page.wait_for_function takes a function, "() => ...": a bare expression is
    # evaluated in the page with eval, which the policy forbids.)
    page.on(
        "console",
        lambda message: (
            page.errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )

    def on_dialog(dialog):
        page.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    # Count requests in flight: the page leases the next item in the background, and
    # the database must not be flushed while the live server still answers one
    # (SQLite's shared in-memory database then reports "table is locked").
    in_flight: set = set()
    page.on("request", lambda request: in_flight.add(request))
    page.on("requestfinished", lambda request: in_flight.discard(request))
    page.on("requestfailed", lambda request: in_flight.discard(request))
    yield page
    deadline = time.monotonic() + 10
    while in_flight and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    if page.url.startswith(live_server.url):
        page.evaluate("() => { localStorage.clear(); sessionStorage.clear(); }")
    page.close()
    context.unroute_all()
    context.clear_cookies()
    context.clear_permissions()


@pytest.fixture
def login(live_server):
    """Sign ``username`` in and open the home page.

    The password is checked, then the session cookie is handed to the browser directly:
    going through the sign-in form (a page load and a POST) in every test cost a second
    of each. The form itself is tested in ``test_login_lockout.py``.
    """
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    def do_login(page, username: str, password: str = "pw") -> None:
        user = get_user_model().objects.get(username=username)
        assert user.check_password(password), f"wrong password for {username}"
        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        page.context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
        )
        page.goto("/")

    return do_login


@pytest.fixture
def screenshot():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str, **kwargs) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), **kwargs)
        return path

    return take
