"""Token authentication with tokens stored hashed; who the client is; sign-in lockout.

Tokens are 40 random URL-safe characters (240 bits), so one SHA-256 pass is
enough: there is nothing to brute-force, unlike a password. Passwords are
guarded by django-axes (``AXES_*`` settings): the page and the token endpoint
share one failure count per account and per client address, and the address
is the real peer, not whatever ``X-Forwarded-For`` a client sends.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from rest_framework import authentication, exceptions

from annotation.models import ApiToken


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


# --- the token cache ----------------------------------------------------------------
# A token's row (with its user) is kept in Django's cache under its hash, so an API
# request on a warm cache costs no query for authentication. Whatever can make a token
# stop working forgets its entry: deleting the token (revoking it, or deleting its user,
# which cascades), saving it, and saving its user with any field a token carries
# (deactivation, the staff or superuser flag, the username; or a save naming no fields).
# The entry also expires after BALLOT_TOKEN_CACHE_SECONDS, which bounds what a change the
# signals cannot see (a bulk ``UPDATE`` of users) leaves behind. The
# cache must be shared by every web process (Redis: REDIS_URL) for a revocation in one to
# reach the others at once; without a shared cache the setting defaults to 0 (off).

TOKEN_CACHE_PREFIX = "ballot:token:v1:"


def _token_cache_key(key_hash: str) -> str:
    return TOKEN_CACHE_PREFIX + key_hash


def token_cache_forget(*, key_hashes: Iterable[str]) -> None:
    """Drop cached tokens now and again after the transaction commits.

    Twice: a request that read the row before the commit could otherwise put the old
    entry back between the first delete and the commit.
    """
    keys = [_token_cache_key(key_hash) for key_hash in key_hashes]
    if not keys or not settings.BALLOT_TOKEN_CACHE_SECONDS:
        return
    cache.delete_many(keys)
    transaction.on_commit(lambda: cache.delete_many(keys))


@receiver(post_delete, sender=ApiToken, dispatch_uid="ballot.token_cache.token_deleted")
@receiver(post_save, sender=ApiToken, dispatch_uid="ballot.token_cache.token_saved")
def _token_changed(sender: Any, instance: ApiToken, **kwargs: Any) -> None:
    # A last-used stamp written by authenticate() itself goes through update(), not here.
    token_cache_forget(key_hashes=[instance.key_hash])


_USER_FIELDS_TOKENS_CARRY = {"is_active", "is_staff", "is_superuser", "username"}


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="ballot.token_cache.user_saved")
def _user_changed(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    # A new user has no tokens; a save of other fields only (signing in, a password: tokens
    # do not depend on it) changes nothing a cached token carries.
    if kwargs.get("created") or (
        update_fields is not None and not set(update_fields) & _USER_FIELDS_TOKENS_CARRY
    ):
        return
    if settings.BALLOT_TOKEN_CACHE_SECONDS:
        token_cache_forget(
            key_hashes=ApiToken.objects.filter(user_id=instance.pk).values_list(
                "key_hash", flat=True
            )
        )


class HashedTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() not in (b"token", b"bearer"):
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: expected 'Token <key>'.")
        key_hash = hash_token(header[1].decode(errors="replace"))
        ttl = settings.BALLOT_TOKEN_CACHE_SECONDS
        token = cache.get(_token_cache_key(key_hash)) if ttl else None
        if token is None:
            token = ApiToken.objects.select_related("user").filter(key_hash=key_hash).first()
            # Only working tokens are cached: an unknown one always asks the database.
            if token is None or not token.user.is_active:
                raise exceptions.AuthenticationFailed("Invalid or revoked token.")
            if ttl:
                cache.set(_token_cache_key(key_hash), token, ttl)
        now = timezone.now()
        # Write last_used at most once a minute: one UPDATE per request would
        # turn every read into a write on the hot path.
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
            if ttl:
                cache.set(_token_cache_key(key_hash), token, ttl)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword


# --- the real client address -----------------------------------------------------


@lru_cache(maxsize=8)
def _trusted_networks(
    entries: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _is_trusted(address: str, networks: tuple) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


def client_ip(request: HttpRequest) -> str:
    """The address of the client that opened the connection, seen through trusted proxies only.

    ``X-Forwarded-For`` is read only when the peer (``REMOTE_ADDR``) is one of
    ``BALLOT_TRUSTED_PROXIES``, and then from the right: each trusted hop vouches
    for the address to its left, and the first address not in the list is the
    client. Entries left of it were written by the client and are ignored, so
    rotating the header changes nothing.
    """
    meta = request.META
    current = meta.get("REMOTE_ADDR", "") or ""
    networks = _trusted_networks(tuple(settings.BALLOT_TRUSTED_PROXIES))
    if not networks:
        return current
    hops = [hop.strip() for hop in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    while hops and _is_trusted(current, networks):
        candidate = hops.pop()
        try:
            ipaddress.ip_address(candidate)
        except ValueError:
            # A trusted proxy writes addresses; anything else came from the client.
            break
        current = candidate
    return current


class ClientAddressMiddleware:
    """Put the real client address in ``REMOTE_ADDR`` and drop ``X-Forwarded-For``.

    Runs first, so every later reader (DRF's throttles, django-axes, logs) sees
    one resolved address and none of them can fall back to the raw header.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.META["REMOTE_ADDR"] = client_ip(request)
        request.META.pop("HTTP_X_FORWARDED_FOR", None)
        return self.get_response(request)


# --- sign-in lockout ---------------------------------------------------------------


class LoginThrottleBackend(AxesStandaloneBackend):
    """django-axes' lockout check, tolerant of calls that carry no request.

    Every network path that checks a password (the sign-in page, the admin's,
    the token endpoint) passes its request; ``authenticate()`` without one comes
    from code on the server (management commands, the test client's ``login``),
    which has no client address to count against, so there is nothing to lock.
    """

    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


# This module imports models, so it is only ever imported after start-up, when
# axes has already connected its receiver in ``AppConfig.ready``. Receivers run in
# the order they were connected, so this one sees the flags axes just set.
@receiver(user_login_failed, dispatch_uid="ballot.lockout_reaches_django_request")
def _lockout_reaches_django_request(sender: Any, request: Any = None, **kwargs: Any) -> None:
    """Copy axes' lockout flag from a DRF ``Request`` onto the ``HttpRequest`` it wraps.

    axes marks the object it was handed; for the token endpoint that is DRF's
    wrapper, which ``AxesMiddleware`` never sees, so the API would answer 401
    where the page answers 429.
    """
    inner = getattr(request, "_request", None)
    if inner is not None and getattr(request, "axes_locked_out", False):
        inner.axes_locked_out = True
        inner.axes_credentials = getattr(request, "axes_credentials", None)


def _retry_after_seconds(request: HttpRequest) -> int:
    # Each refused attempt during a lockout is recorded and restarts the cool-off
    # (AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT), so the wait is the full period.
    cool_off = get_cool_off(request)
    return max(1, math.ceil(cool_off.total_seconds())) if cool_off else 0


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict | None = None,
) -> HttpResponse:
    """429 with ``Retry-After``: the one JSON error shape for the API, a page for people."""
    seconds = _retry_after_seconds(request)
    minutes = max(1, math.ceil(seconds / 60))
    wait = (
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
        if seconds
        else "Ask an admin to unlock the account."
    )
    detail = f"Too many failed sign-in attempts for this account or from this address. {wait}"
    if request.path.startswith("/api/"):
        # Imported here: annotation.errors imports DRF's views, which import this module.
        from annotation.errors import BallotError

        body = BallotError(detail).as_dict() | {"error": "locked_out"}
        response: HttpResponse = JsonResponse(body, status=429)
    else:
        response = render(
            request,
            "frontend/login_locked.html",
            {"detail": detail, "minutes": minutes if seconds else None},
            status=429,
        )
    if seconds:
        response["Retry-After"] = str(seconds)
    return response
