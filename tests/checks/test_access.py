"""The access check holds on Ballot as it is, and catches a planted leak."""

from __future__ import annotations

import pytest

from annotation import selectors
from checks import access

pytestmark = pytest.mark.slow


def test_every_route_refuses_whom_it_must_on_ballot_as_it_is(check_context):
    figures = access.run(check_context)
    assert {f.name for f in figures} >= {"reads by role", "refused writes", "B's ids in A's paths"}
    assert all(f.tried > 0 for f in figures)
    assert [f.failures for f in figures if not f.ok] == []


def test_a_project_selector_that_forgets_the_caller_is_reported_as_a_leak(
    check_context, monkeypatch
):
    real = selectors.project_get_for

    def leaky(*, user, project_id, roles=None, **kwargs):
        # Whoever asks is treated as the project's first admin.
        from annotation.models import Membership

        owner = Membership.objects.filter(project_id=project_id, role="admin").first()
        return real(user=owner.user if owner else user, project_id=project_id, **kwargs)

    # annotation.api calls it as selectors.project_get_for: every API route of annotation.
    monkeypatch.setattr(selectors, "project_get_for", leaky)
    figures = {f.name: f for f in access.run(check_context)}
    reads = figures["reads by role"]
    assert reads.lost > 0
    assert any("outsider" in failure for failure in reads.failures), reads.failures
