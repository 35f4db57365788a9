"""The annotation hot path (issue 16): cached tokens, the one-statement claim, plain output."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from annotation import authentication
from annotation.models import ApiToken, Assignment, Item
from annotation.selectors import assignment_responses_prefetch
from annotation.serializers import AssignmentOut, assignment_out
from annotation.services import assignment_claim_next, assignment_skip, token_create

ROOT = Path(__file__).resolve().parents[2]


def _client(user) -> tuple[APIClient, ApiToken]:
    token, raw = token_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    return client, token


def _token_queries(queries) -> list[str]:
    return [q["sql"] for q in queries if "annotation_apitoken" in q["sql"]]


def test_a_cached_token_costs_no_query_and_a_revoked_one_stops_at_once(project, items, bob):
    client, token = _client(bob)
    assert client.get(f"/api/v1/projects/{project.id}/").status_code == 200
    with CaptureQueriesContext(connection) as warm:
        assert client.get(f"/api/v1/projects/{project.id}/").status_code == 200
    assert _token_queries(warm) == []
    token.delete()  # revoking, as the admin does
    assert client.get(f"/api/v1/projects/{project.id}/").status_code == 401


def test_deactivating_the_user_stops_their_cached_token(project, items, bob):
    client, _ = _client(bob)
    assert client.get(f"/api/v1/projects/{project.id}/").status_code == 200
    bob.is_active = False
    bob.save()
    assert client.get(f"/api/v1/projects/{project.id}/").status_code == 401


def test_a_cached_token_still_records_when_it_was_last_used_once_a_minute(
    project, items, bob, monkeypatch
):
    client, token = _client(bob)
    assert client.get(f"/api/v1/projects/{project.id}/").status_code == 200
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    with CaptureQueriesContext(connection) as soon:
        client.get(f"/api/v1/projects/{project.id}/")
    assert _token_queries(soon) == []  # within the minute: no write
    later = timezone.now() + timedelta(minutes=2)
    monkeypatch.setattr(authentication.timezone, "now", lambda: later)
    client.get(f"/api/v1/projects/{project.id}/")
    assert ApiToken.objects.get(pk=token.pk).last_used_at == later


def test_an_unknown_token_is_refused_every_time(project, bob):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert client.get(f"/api/v1/projects/{project.id}/").status_code == 401
    assert client.get(f"/api/v1/projects/{project.id}/").status_code == 401


def test_the_plain_assignment_output_equals_the_serializer(project, items, bob):
    claimed = assignment_claim_next(project=project, annotator=bob)
    assert claimed is not None
    plain = assignment_out(assignment_responses_prefetch(assignment=claimed))
    fresh = Assignment.objects.select_related("item").get(pk=claimed.pk)
    assert plain == AssignmentOut(assignment_responses_prefetch(assignment=fresh)).data
    assert [r["position"] for r in plain["item"]["responses"]] == [0, 1, 2]
    # The claimed item carries only what the queue reads; anything else loads on access.
    assert claimed.item.priority == Item.objects.get(pk=claimed.item_id).priority


def test_a_claim_passes_over_a_full_item_and_a_second_call_takes_no_second_slot(project, bob):
    full = Item.objects.create(project=project, external_id="full", priority=9, is_full=True)
    free = Item.objects.create(project=project, external_id="free")
    claimed = assignment_claim_next(project=project, annotator=bob)
    assert claimed is not None and claimed.item_id == free.pk
    assert Item.objects.get(pk=free.pk).slots_taken == 1
    assert Item.objects.get(pk=full.pk).slots_taken == 0
    # A second call returns the same live lease, taking no second slot.
    assert assignment_claim_next(project=project, annotator=bob).pk == claimed.pk
    assert Item.objects.get(pk=free.pk).slots_taken == 1


@pytest.mark.postgres
def test_the_claim_is_planned_once_per_connection_not_once_per_request(project, bob):
    # Prepared statements (settings: DATABASE_PREPARED_STATEMENTS): psycopg prepares a
    # statement its connection has run five times, so PostgreSQL plans the claim once.
    for index in range(8):
        Item.objects.create(project=project, external_id=f"prepared-{index}")
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    claimed = []
    for _ in range(7):
        assignment = assignment_claim_next(project=project, annotator=bob)
        assert assignment is not None
        claimed.append(assignment.item_id)
        assignment_skip(assignment=assignment)
    assert len(set(claimed)) == 7  # each a new lease, through the one-statement claim
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("candidate AS MATERIALIZED" in text for text in prepared), prepared


def test_prepared_statements_can_be_turned_off_for_a_pooler_without_them():
    code = (
        "from django.conf import settings; o = settings.DATABASES['default'].get('OPTIONS', {}); "
        "print(o.get('server_side_binding'), o.get('prepare_threshold'))"
    )
    url = "postgres://postgres@127.0.0.1:5432/unused"  # settings only: nothing connects
    seen = {}
    for value in ("1", "0"):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DATABASE_URL": url,
            "DATABASE_PREPARED_STATEMENTS": value,
        }
        done = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {code}"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        seen[value] = done.stdout.split()
    assert seen == {"1": ["True", "5"], "0": ["None", "None"]}
