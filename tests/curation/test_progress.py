"""Command progress in a log (stdout/stderr not a terminal): a line per few percent, not per redraw."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

from django.core.management import call_command
from tqdm import tqdm

from annotation.progress import progress_bar
from curation.models import Job, JobKind, JobStatus


def lines_of(text: str) -> list[str]:
    # A log shows every carriage-return redraw of a bar as a line of its own.
    return [line for line in re.split(r"[\r\n]+", text) if line.strip()]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_in_a_log_a_progress_bar_prints_one_line_per_five_percent() -> None:
    log = io.StringIO()
    bar = progress_bar(total=10_000, desc="import", unit="item", file=log)
    for _ in range(10_000):
        bar.update(1)
    bar.close()

    lines = lines_of(log.getvalue())
    assert len(lines) == 21
    assert lines[0] == "import:   0% (1/10000 item)"
    assert lines[-1] == "import: 100% (10000/10000 item)"


def test_without_a_total_a_log_line_comes_at_1_2_5_10_20_50_items() -> None:
    log = io.StringIO()
    bar = progress_bar(total=None, desc="read", unit="line", file=log)
    for _ in range(120):
        bar.update(1)
    bar.close()
    assert [int(line.split()[1]) for line in lines_of(log.getvalue())] == [
        1,
        2,
        5,
        10,
        20,
        50,
        100,
        120,
    ]


def test_on_a_terminal_the_progress_bar_is_tqdm() -> None:
    bar = progress_bar(total=10, desc="x", file=Terminal())
    assert isinstance(bar, tqdm)
    bar.close()


def test_the_curate_command_writes_a_line_per_few_percent_when_not_on_a_terminal(
    project, capsys, monkeypatch
):
    from curation.management.commands import _jobs

    def create_running(*, project, kind, params, in_thread=None):
        return Job.objects.create(
            project=project, kind=kind, params=params, status=JobStatus.RUNNING
        )

    def advance(_: float) -> None:
        # Each poll of the command sees the job half a percent further.
        job = Job.objects.get(project=project)
        progress = round(job.progress + 0.005, 4)
        Job.objects.filter(pk=job.pk).update(
            progress=min(progress, 1.0),
            message=f"step {progress}",
            status=JobStatus.SUCCEEDED if progress >= 1 else JobStatus.RUNNING,
        )

    monkeypatch.setattr(_jobs, "job_create", create_running)
    # The command's own clock only: patching time.sleep itself would hand every other
    # thread of the test process (a live server, a job thread) this test's job to advance.
    monkeypatch.setattr(_jobs, "time", SimpleNamespace(sleep=advance))

    call_command("curate", JobKind.EMBED, "--project", str(project.id))

    captured = capsys.readouterr()
    assert "succeeded" in captured.out
    # The bar's lines only: another thread may log to stderr meanwhile (a CI run counted 42).
    progress_lines = [line for line in lines_of(captured.err) if line.startswith("embed:")]
    assert 10 <= len(progress_lines) <= 22, progress_lines
    assert progress_lines[-1].startswith("embed: 100%")
