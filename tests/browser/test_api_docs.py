"""The API docs render from the installed packages alone: every request off this server is blocked."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def offline(page, live_server):
    """Abort every request that does not go to the live server, and remember it."""
    own_host = urlsplit(live_server.url).netloc
    blocked: list[str] = []

    def route(route):
        if urlsplit(route.request.url).netloc == own_host:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.context.route("**/*", route)
    return blocked


def test_swagger_ui_lists_the_operations_with_the_network_blocked(page, offline, screenshot):
    page.goto("/api/docs/")
    page.wait_for_selector(".opblock", timeout=15_000)
    operations = page.locator(".opblock-summary-path").all_inner_texts()
    operations = [path.replace("\u200b", "") for path in operations]
    assert "/api/v1/projects/{project_id}/next/" in operations, operations[:5]
    assert len(operations) > 20
    assert offline == []
    assert page.errors == []
    screenshot(page, "api-docs")
