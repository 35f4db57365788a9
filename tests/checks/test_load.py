"""The load check: its accounting catches what it must, and a short run passes on a live server."""

from __future__ import annotations

from collections import Counter

import pytest

from checks.core import Context
from checks.load import run
from checks.load.accounting import Stored, reconcile, rss_growth, stored_rows
from checks.load.generator import Confirmation, loopback_address
from checks.load.jobs import FIFA_PARAMS, job_plan
from checks.world import World, fingerprint


def _stored(annotation: int, assignment: int, user: int, *, item: int | None = None, answers=1):
    return Stored(annotation, assignment, item or assignment, user, answers)


def test_reconcile_finds_nothing_wrong_when_the_database_holds_what_was_confirmed():
    confirmed = [Confirmation(1, 10, 7), Confirmation(2, 11, 8)]
    result = reconcile(confirmed, [(1, 1, True)], [_stored(1, 10, 7), _stored(2, 11, 8)])
    assert (result.confirmed, result.stored, result.bad) == (2, 2, 0)


def test_reconcile_counts_a_lost_an_unconfirmed_a_doubled_and_a_misfiled_submission():
    confirmed = [
        Confirmation(1, 10, 7),
        Confirmation(2, 11, 7),  # lost: not in the database
        Confirmation(3, 12, 7),
        Confirmation(5, 12, 7),  # the same assignment confirmed as another annotation
        Confirmation(6, 13, 7),  # stored under another annotator
        Confirmation(8, 15, 7),  # stored without its answer row
    ]
    stored = [
        _stored(1, 10, 7),
        _stored(3, 12, 7),
        _stored(4, 14, 9),  # never confirmed to any client
        _stored(5, 16, 7, item=12),  # a second row for item 12 by annotator 7
        _stored(6, 13, 9),
        _stored(8, 15, 7, answers=0),
    ]
    replays = [(1, 1, True), (3, 5, True)]  # a replay that answered another annotation
    result = reconcile(confirmed, replays, stored)
    assert result.lost == [2]
    assert result.unconfirmed == [4]
    assert result.misfiled == [5, 6, 8]
    assert len(result.doubled) == 3, result.doubled
    assert result.bad == 8


def test_a_soak_repeats_the_jobs_every_five_minutes_and_a_two_minute_run_launches_three():
    assert [kind for _, kind in job_plan(120)] == ["fifa", "export", "export"]
    soak = job_plan(30 * 60)
    assert Counter(kind for _, kind in soak) == {"fifa": 6, "export": 12}
    assert max(at for at, _ in soak) < 30 * 60


def test_memory_that_keeps_growing_after_warm_up_fails_the_soak_and_flat_memory_passes():
    mib = 1024 * 1024
    samples = [
        (t * 30.0, {"web": 400 * mib + (t >= 3) * 5 * mib, "worker": 300 * mib + t * 6 * mib})
        for t in range(20)
    ]  # the web process steps up once during warm-up; the worker leaks 6 MiB a sample
    figure = rss_growth(samples, run_seconds=600)
    assert figure.tried == 3 and figure.held == 2 and not figure.ok
    assert figure.failures[0].startswith("worker: ")
    flat = [(t * 30.0, {"web": 400 * mib, "worker": 300 * mib}) for t in range(20)]
    assert rss_growth(flat, run_seconds=600).ok


@pytest.mark.parametrize("url", ["http://10.0.0.1:80", "https://127.0.0.1:8000", "ftp://localhost"])
def test_the_generator_refuses_anything_but_plain_http_on_loopback(url):
    with pytest.raises(ValueError):
        loopback_address(url)


@pytest.mark.django_db(transaction=True)
def test_a_short_run_on_the_live_server_stores_every_confirmed_submission_once(
    live_server, tmp_path
):
    from django.db import connection

    from annotation.models import Annotation, PairwiseAnswer, Project
    from curation.jobs.registry import kind_get
    from curation.models import JobKind

    if connection.vendor != "postgresql":
        pytest.skip("client threads need PostgreSQL (the in-memory SQLite is one connection)")
    ctx = Context(
        base_url=live_server.url,
        world=World(principals={}),
        out_dir=tmp_path,
        fingerprint=fingerprint,
        quick=True,
        # Exports only: FiFA would embed with MiniLM in the request (no broker here).
        options={"load_seconds": 3, "load_clients": 4, "load_jobs": ("export",)},
    )
    figures = {f.name: f for f in run(ctx)}
    assert all(f.ok for f in figures.values()), [f for f in figures.values() if not f.ok]
    rows = figures["confirmed submissions stored once"]
    assert rows.tried > 0 and rows.metrics["stored"] == rows.tried
    assert figures["jobs during the load"].tried == 2
    assert figures["submit latency"].metrics["p99"] is not None

    # The accounting reads the database: a row lost or an answer dropped after the run shows.
    project_id = Annotation.objects.latest("id").project_id
    stored = stored_rows(project_id)
    confirmed = [Confirmation(s.annotation, s.assignment, s.user) for s in stored]
    Annotation.objects.filter(pk=stored[0].annotation).delete()
    PairwiseAnswer.objects.filter(annotation_id=stored[1].annotation).delete()
    result = reconcile(confirmed, [], stored_rows(project_id))
    assert result.lost == [stored[0].annotation] and result.misfiled == [stored[1].annotation]

    # The FiFA parameters the full run sends are valid for the kind and the labelled project.
    curation = Project.objects.get(name__startswith="Load curation")
    kind_get(JobKind.FIFA).params.validate(FIFA_PARAMS, kind=JobKind.FIFA, project=curation)
