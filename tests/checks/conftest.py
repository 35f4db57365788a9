"""A seeded world and a live server, the way ``make check`` aims its checks (quick mode)."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from checks.core import Context
from checks.world import fingerprint, seed_world


@pytest.fixture
def check_context(live_server, transactional_db, tmp_path) -> Context:
    cache.clear()
    return Context(
        base_url=live_server.url,
        world=seed_world("t"),
        out_dir=tmp_path,
        fingerprint=fingerprint,
        quick=True,
    )
