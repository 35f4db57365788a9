"""Production: secrets and hosts must come from the environment; HTTPS everywhere.

Start-up refuses a missing, placeholder, short or low-entropy ``DJANGO_SECRET_KEY``
and a missing, empty or ``*`` ``DJANGO_ALLOWED_HOSTS``: these would otherwise run without complaint
(Django's own checks only warn, and only under ``check --deploy``).
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections import Counter

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import ALLOWED_HOSTS, BALLOT_TRUSTED_PROXIES, env_bool

SECRET_KEY_MIN_LENGTH = 50
# Shannon entropy of the key's own characters, times its length: a rough lower
# bound on guessing work that catches repeated and dictionary-like keys. A
# `secrets.token_urlsafe(50)` key scores about 370 bits, 64 hex digits about 250.
SECRET_KEY_MIN_BITS = 128
# Keys copied from examples and tutorials, compared lowercased without separators.
PLACEHOLDER_SECRET_KEYS = {
    "changeme",
    "changethis",
    "replaceme",
    "secret",
    "secretkey",
    "yoursecretkey",
    "yoursecretkeyhere",
    "mysecretkey",
    "djangosecretkey",
    "insecure",
    "notsecret",
    "password",
    "xxx",
    "todo",
}
GENERATE_HINT = "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"


def _estimated_bits(value: str) -> float:
    counts = Counter(value)
    per_char = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return per_char * len(value)


def secret_key_problem(value: str) -> str | None:
    """Why ``value`` must not sign production sessions, or ``None`` when it may."""
    if not value.strip():
        return "DJANGO_SECRET_KEY is not set; production has no default."
    folded = "".join(ch for ch in value.lower() if ch.isalnum())
    if (
        folded in PLACEHOLDER_SECRET_KEYS
        or value.startswith("django-insecure")
        or "insecurekey" in folded
        or "changeme" in folded
    ):
        return "DJANGO_SECRET_KEY is a well-known placeholder."
    if len(value) < SECRET_KEY_MIN_LENGTH:
        return f"DJANGO_SECRET_KEY has {len(value)} characters; at least {SECRET_KEY_MIN_LENGTH} are needed."
    if _estimated_bits(value) < SECRET_KEY_MIN_BITS:
        return "DJANGO_SECRET_KEY is too repetitive to be random (low entropy)."
    return None


def allowed_hosts_problem(hosts: list[str], *, given: bool = True) -> str | None:
    """Why ``hosts`` must not be served in production, or ``None`` when they may.

    ``given``: whether ``DJANGO_ALLOWED_HOSTS`` was set at all. The base settings'
    loopback default suits a laptop; in production it would answer 400 to every real
    visitor, so the hosts must be named.
    """
    if not given or not hosts:
        return (
            "DJANGO_ALLOWED_HOSTS is not set: list the host names the site is reached by "
            "(comma-separated, e.g. ballot.example.org)."
        )
    if "*" in hosts:
        return (
            "DJANGO_ALLOWED_HOSTS contains '*', which accepts any Host header (cache "
            "poisoning, password-reset links to other sites); list the site's host names."
        )
    return None


def trusted_proxies_problem(entries: list[str]) -> str | None:
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return f"BALLOT_TRUSTED_PROXIES has {entry!r}, which is not an IP address or network."
    return None


DEBUG = False
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if problem := secret_key_problem(SECRET_KEY):
    raise ImproperlyConfigured(f"{problem} Generate one with: {GENERATE_HINT}")
if problem := allowed_hosts_problem(ALLOWED_HOSTS, given="DJANGO_ALLOWED_HOSTS" in os.environ):
    raise ImproperlyConfigured(problem)
if problem := trusted_proxies_problem(BALLOT_TRUSTED_PROXIES):
    raise ImproperlyConfigured(problem)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
