"""Password guessing is stopped per account and per real client address, on the page and the API."""

from __future__ import annotations

from datetime import timedelta
from itertools import count

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.cache import cache
from django.test import Client, RequestFactory, override_settings
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.throttling import AnonRateThrottle

from annotation.authentication import ClientAddressMiddleware, client_ip
from tests.factories import UserFactory

LIMIT = settings.AXES_FAILURE_LIMIT
_addresses = count(1)


@pytest.fixture(autouse=True)
def _fresh_throttle_cache():
    # DRF's anon throttle counts in the cache, which outlives the test's transaction.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def victim(db):
    return UserFactory(username="victim", password="right-password-123")


def _page_attempt(username: str, password: str, **headers: str):
    return Client().post("/login/", {"username": username, "password": password}, **headers)


def _api_attempt(username: str, password: str, **headers: str):
    return APIClient().post(
        "/api/v1/auth/token/",
        {"username": username, "password": password},
        format="json",
        **headers,
    )


def _spoofed() -> dict[str, str]:
    """A different forged X-Forwarded-For on every call."""
    n = next(_addresses)
    return {"HTTP_X_FORWARDED_FOR": f"198.51.{n // 250}.{n % 250 + 1}"}


def _assert_locked_page(response) -> None:
    assert response.status_code == 429
    assert int(response["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())
    assert b"Sign-in paused" in response.content
    assert b"Too many failed sign-in attempts" in response.content


def _assert_locked_api(response) -> None:
    assert response.status_code == 429
    assert int(response["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())
    body = response.json()
    assert body["error"] == "locked_out"
    assert body["detail"].startswith("Too many failed sign-in attempts")
    assert set(body) == {"error", "detail", "field", "errors"}


def test_the_login_page_locks_an_account_after_the_failure_limit(victim):
    for _ in range(LIMIT - 1):
        response = _page_attempt("victim", "guess", **_spoofed())
        assert response.status_code == 200
        assert b"didn't match" in response.content
    _assert_locked_page(_page_attempt("victim", "guess", **_spoofed()))
    _assert_locked_page(_page_attempt("victim", "right-password-123", **_spoofed()))


def test_the_token_endpoint_locks_an_account_after_the_failure_limit(victim):
    for _ in range(LIMIT - 1):
        assert _api_attempt("victim", "guess", **_spoofed()).status_code in (401, 403)
    _assert_locked_api(_api_attempt("victim", "guess", **_spoofed()))
    _assert_locked_api(_api_attempt("victim", "right-password-123", **_spoofed()))


def test_the_page_and_the_api_share_one_failure_count(victim):
    for index in range(LIMIT - 1):
        attempt = _page_attempt if index % 2 else _api_attempt
        assert attempt("victim", "guess").status_code in (200, 401, 403)
    _assert_locked_api(_api_attempt("victim", "guess"))
    _assert_locked_page(_page_attempt("victim", "right-password-123"))


@pytest.mark.parametrize("attempt", [_page_attempt, _api_attempt], ids=["page", "api"])
def test_rotating_x_forwarded_for_does_not_escape_the_address_lockout(db, attempt):
    # A new username each time, so only the per-address count can stop it.
    for index in range(LIMIT - 1):
        assert attempt(f"nobody{index}", "guess", **_spoofed()).status_code in (200, 401, 403)
    locked = attempt("someone-else", "guess", **_spoofed())
    assert locked.status_code == 429
    assert "Retry-After" in locked


def test_a_correct_password_is_refused_until_the_cool_off_has_passed(victim):
    for _ in range(LIMIT):
        _api_attempt("victim", "guess")
    _assert_locked_api(_api_attempt("victim", "right-password-123"))
    _assert_locked_page(_page_attempt("victim", "right-password-123"))

    cool_off = settings.AXES_COOLOFF_TIME
    AccessAttempt.objects.update(attempt_time=timezone.now() - cool_off - timedelta(seconds=1))
    assert _api_attempt("victim", "right-password-123").status_code == 201
    response = _page_attempt("victim", "right-password-123")
    assert response.status_code == 302


def test_signing_in_to_another_account_does_not_reset_the_count(victim):
    UserFactory(username="mallory", password="mallory-password-1")
    for _ in range(LIMIT - 1):
        _api_attempt("victim", "guess", **_spoofed())
    # Mallory's own login from elsewhere would have wiped the victim's rows with
    # AXES_RESET_ON_SUCCESS; the victim's account must stay one failure from locked.
    assert (
        _api_attempt("mallory", "mallory-password-1", REMOTE_ADDR="192.0.2.50").status_code == 201
    )
    _assert_locked_api(_api_attempt("victim", "guess", REMOTE_ADDR="192.0.2.51"))


@override_settings(BALLOT_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_behind_a_trusted_proxy_clients_are_counted_by_the_address_the_proxy_saw(db):
    def via_proxy(client_address: str) -> dict[str, str]:
        # The client forges the left part; the proxy appends the address it saw.
        forged = _spoofed()["HTTP_X_FORWARDED_FOR"]
        return {
            "REMOTE_ADDR": "10.1.2.3",
            "HTTP_X_FORWARDED_FOR": f"{forged}, {client_address}",
        }

    for index in range(LIMIT - 1):
        assert _api_attempt(f"nobody{index}", "x", **via_proxy("203.0.113.9")).status_code in (
            401,
            403,
        )
    assert _api_attempt("another", "x", **via_proxy("203.0.113.9")).status_code == 429
    # Another client behind the same proxy is not locked out with the first one.
    assert _api_attempt("another", "x", **via_proxy("203.0.113.10")).status_code in (401, 403)


def test_forwarded_headers_from_an_untrusted_peer_are_ignored():
    request = RequestFactory().get(
        "/", REMOTE_ADDR="192.0.2.7", HTTP_X_FORWARDED_FOR="203.0.113.1, 10.0.0.1"
    )
    assert client_ip(request) == "192.0.2.7"
    with override_settings(BALLOT_TRUSTED_PROXIES=["10.0.0.0/8"]):
        assert client_ip(request) == "192.0.2.7"


@override_settings(BALLOT_TRUSTED_PROXIES=["10.0.0.0/8", "172.16.0.1"])
def test_a_chain_of_trusted_proxies_is_walked_from_the_right():
    request = RequestFactory().get(
        "/",
        REMOTE_ADDR="172.16.0.1",
        HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.5, 10.0.0.9",
    )
    assert client_ip(request) == "203.0.113.5"
    garbage = RequestFactory().get(
        "/", REMOTE_ADDR="172.16.0.1", HTTP_X_FORWARDED_FOR="not-an-ip, 10.0.0.9"
    )
    assert client_ip(garbage) == "10.0.0.9"


def test_drf_throttles_key_on_the_resolved_address_not_the_forwarded_header():
    idents = set()
    for forged in ("1.1.1.1", "2.2.2.2", "3.3.3.3, 4.4.4.4"):
        request = RequestFactory().post(
            "/api/v1/auth/token/", REMOTE_ADDR="192.0.2.7", HTTP_X_FORWARDED_FOR=forged
        )
        ClientAddressMiddleware(lambda req: None)(request)
        idents.add(AnonRateThrottle().get_ident(request))
    assert idents == {"192.0.2.7"}
