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


def export_snippet() -> str:
    section = README[README.index("## Exports") :]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, "the Exports section has no python block"
    return match.group(1)


def test_the_export_loading_snippet_loads_every_split_of_a_published_version(
    alice, tmp_path, settings, monkeypatch
):
    from annotation.services import items_import
    from curation.models import JobKind
    from curation.services import job_create
    from curation.storage import absolute
    from tests.factories import ProjectFactory

    settings.BALLOT_STORAGE_ROOT = tmp_path / "storage"
    settings.BALLOT_JOBS_IN_THREAD = False
    project = ProjectFactory(created_by=alice)
    lines = (ROOT / "examples" / "pairs.jsonl").read_text().splitlines()
    items_import(project=project, lines=lines, fmt="trl")
    job = job_create(
        project=project,
        kind=JobKind.EXPORT,
        params={"format": "trl_preference", "test_fraction": 0.5},
    )
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    snippet = export_snippet()
    assert re.search(r'^root = ".*"', snippet, flags=re.M)
    root = absolute(job.result["path"])
    snippet = re.sub(r'^root = ".*"', f"root = {str(root)!r}", snippet, flags=re.M)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    splits = namespace["splits"]
    assert sum(splits.values()) == len(lines)
    for name in ("parquet", "jsonl", "hf"):
        loaded = namespace[name]
        assert {split: loaded[split].num_rows for split in loaded} == splits, name
