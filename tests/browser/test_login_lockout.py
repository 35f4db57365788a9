"""In Chromium: guessing a password on the sign-in page ends on the paused page, not another try."""

from __future__ import annotations

from django.conf import settings

from tests.factories import UserFactory

COOL_OFF_SECONDS = int(settings.AXES_COOLOFF_TIME.total_seconds())


def _sign_in(page, username: str, password: str) -> None:
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("main button[type=submit]")


def test_the_sign_in_page_pauses_after_repeated_wrong_passwords(page, screenshot, db):
    UserFactory(username="dana", password="the-right-one-42")
    posts = []
    page.on(
        "response",
        lambda r: posts.append(r) if r.request.method == "POST" and "/login/" in r.url else None,
    )
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _sign_in(page, "dana", "a-wrong-guess")
        page.wait_for_selector("p.error[role=alert]")
        assert "didn't match" in page.inner_text("p.error[role=alert]")

    _sign_in(page, "dana", "a-wrong-guess")
    page.wait_for_selector("h1:has-text('Sign-in paused')")
    message = page.inner_text("p.error[role=alert]")
    assert "Too many failed sign-in attempts" in message
    assert f"Try again in {COOL_OFF_SECONDS // 60} minutes." in message
    assert posts[-1].status == 429
    assert posts[-1].headers["retry-after"] == str(COOL_OFF_SECONDS)
    screenshot(page, "login-paused")

    # The right password is refused too while the pause lasts.
    page.click("text=Back to sign in")
    page.wait_for_selector("#id_username")
    _sign_in(page, "dana", "the-right-one-42")
    page.wait_for_selector("h1:has-text('Sign-in paused')")
    assert posts[-1].status == 429
    page.goto("/")
    page.wait_for_url(lambda url: "/login/" in url)


def test_the_sign_in_form_signs_in_with_the_right_password_and_opens_the_home_page(page, db):
    UserFactory(username="erin", password="the-right-one-42")
    _sign_in(page, "erin", "the-right-one-42")
    page.wait_for_url(lambda url: "/login/" not in url)
    assert page.locator("header form[action$='/logout/']").count() == 1
    assert "erin" in page.inner_text("header")
