"""API keys of judges, stored encrypted (Fernet) and read back only where a judge runs.

The key is ``BALLOT_JUDGE_SECRET_KEY`` when set (any text; a Fernet key is derived
from it), else derived from ``SECRET_KEY``. Rotating either makes the stored API
keys unreadable: :func:`api_key_decrypt` then says so and the judge must be given
its key again. Keys are never logged, never returned by the API and never part of a
judge version's settings.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from annotation.errors import ValidationFailed


def _fernet() -> Fernet:
    secret = getattr(settings, "BALLOT_JUDGE_SECRET_KEY", "") or settings.SECRET_KEY
    if not secret:
        raise ValidationFailed(
            "No key to encrypt API keys with: set BALLOT_JUDGE_SECRET_KEY or SECRET_KEY.",
            field="api_key",
        )
    digest = hashlib.sha256(f"ballot-judge-api-key:{secret}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def api_key_encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def api_key_decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValidationFailed(
            "The stored API key cannot be decrypted (the secret key changed); set it again.",
            field="api_key",
        ) from None


def api_key_for(*, api_key_env: str, api_key_encrypted: str) -> str:
    """The key a judge sends: from its environment variable, else the stored one, else empty."""
    if api_key_env:
        value = os.environ.get(api_key_env, "")
        if not value:
            raise ValidationFailed(
                f"The environment variable {api_key_env} named for the API key is not set.",
                field="api_key_env",
            )
        return value
    if api_key_encrypted:
        return api_key_decrypt(api_key_encrypted)
    return ""
