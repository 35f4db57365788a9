"""On SQLite, claims for one annotator are serialised too: the IMMEDIATE transaction is the lock.

pytest-django's SQLite test database lives in memory, shared between threads
through one cache, which does not behave like the file a deployment uses. So the
race runs in a child process on a real database file, with threads that each open
their own connection, as concurrent requests would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

RACE = r"""
import json, os, threading, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.db import connections
from annotation.models import Assignment, Membership, Project, Role
from annotation.services import items_import, question_create
from annotation.services.assignments import assignment_claim_ahead, assignment_claim_next
from tests.factories import UserFactory

owner, annotator = UserFactory(username="owner"), UserFactory(username="annotator")
project = Project.objects.create(name="race", overlap=1, created_by=owner)
question_create(project=project, kind="pairwise", name="preference")
lines = [json.dumps({"external_id": f"c{i}", "prompt": "Q", "responses": ["A", "B"]}) for i in range(30)]
items_import(project=project, lines=lines, fmt="native")
Membership.objects.create(user=annotator, project=project, role=Role.ANNOTATOR)

def race(action):
    barrier, out = threading.Barrier(16), []
    def run(index):
        try:
            barrier.wait()
            leased = action(index)
            out.append(leased.id if leased else None)
        except Exception as exc:
            out.append(repr(exc))
        finally:
            connections.close_all()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return out

def live():
    return Assignment.objects.filter(annotator=annotator, status="active").count()

first = race(lambda i: assignment_claim_next(project=project, annotator=annotator))
after_next = live()
current = first[0]
second = race(
    lambda i: assignment_claim_ahead(project=project, annotator=annotator, current_id=current)
    if i % 2
    else assignment_claim_next(project=project, annotator=annotator)
)
print(json.dumps({"next": first, "after_next": after_next, "mixed": second, "after_mixed": live()}))
"""


def test_concurrent_claims_with_one_login_hold_at_most_two_leases_on_sqlite(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'race.sqlite3'}",
    }
    result = subprocess.run(
        [sys.executable, "-c", RACE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(isinstance(lease, int) for lease in outcome["next"]), outcome
    assert len(set(outcome["next"])) == 1
    assert outcome["after_next"] == 1
    assert all(isinstance(lease, int) for lease in outcome["mixed"]), outcome
    assert len(set(outcome["mixed"])) == 2
    assert outcome["after_mixed"] == 2
