"""The outbound check holds on Ballot as it is and catches a guard that lets everything through."""

from __future__ import annotations

import pytest

from checks import outbound

pytestmark = pytest.mark.slow


def test_no_hostile_address_is_ever_connected_to(check_context):
    figures = outbound.run(check_context)
    assert [f.name for f in figures] == [
        "guarded client, controlled DNS",
        "webhooks and judges via the app",
    ]
    assert all(f.tried > 5 for f in figures)
    assert [f.failures for f in figures if not f.ok] == []


def test_a_guard_that_allows_every_address_is_caught(check_context, monkeypatch):
    monkeypatch.setattr("curation.outbound.address_refusal", lambda address: None)
    figure = outbound._in_process(check_context)
    assert figure.lost > 20
    assert any("connected" in failure for failure in figure.failures), figure.failures
