"""The README's API tour, pasted into bash as it stands, works against a live server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from annotation.models import Annotation, Assignment, AssignmentStatus, Item, Project
from curation.models import DatasetVersion

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

pytestmark = pytest.mark.django_db(transaction=True)


def tour_block() -> str:
    section = README[README.index("## API tour") :]
    match = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert match, "the API tour has no bash block"
    return match.group(1)


def test_the_tour_has_no_placeholders():
    block = tour_block()
    assert "…" not in block
    assert "B=http://127.0.0.1:8000/api/v1" in block


@pytest.mark.skipif(shutil.which("curl") is None, reason="the tour needs curl")
def test_the_tour_runs_as_pasted(live_server, tmp_path):
    user_model = get_user_model()
    user_model.objects.create_superuser("admin", "admin@example.org", "ballot-admin")
    user_model.objects.create_user("annotator", password="ballot-annotator")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    script = tour_block().replace("B=http://127.0.0.1:8000/api/v1", f"B={live_server.url}/api/v1")
    # The harness only makes a failed request fail the run; the tour's own lines are unchanged.
    harness = 'set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; }\n'
    result = subprocess.run(
        ["bash", "-c", harness + script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    project = Project.objects.get(name="Helpfulness")
    assert list(project.questions.values_list("name", "prompt")) == [
        ("preference", "Which answer is more helpful?"),
        ("aspects", "Rate each answer."),
    ]
    assert Item.objects.filter(project=project).count() == 8
    annotator = user_model.objects.get(username="annotator")
    submitted = Annotation.objects.get(item__project=project, annotator=annotator)
    assert submitted.time_spent_ms == 5400
    assert Assignment.objects.filter(
        project=project, annotator=annotator, status=AssignmentStatus.SKIPPED
    ).exists()
    version = DatasetVersion.objects.get(project=project)
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert rows and set(rows[0]) >= {"prompt", "chosen", "rejected"}
    assert len(rows) == version.row_counts["train"]
