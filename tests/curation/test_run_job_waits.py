"""A delivery of a job that runs elsewhere keeps looking until that run ends, however long."""

from __future__ import annotations

import pytest

from curation import tasks
from curation.services.jobs import RunOutcome


@pytest.mark.parametrize("retries_so_far", [0, 5, 40])
def test_a_job_running_elsewhere_is_looked_at_again_past_the_tasks_retry_limit(
    monkeypatch, retries_so_far
):
    # The run elsewhere is still going for the first looks, then it has finished.
    answers = [RunOutcome(retry_after=0.01), RunOutcome(retry_after=0.01), RunOutcome()]
    calls = []

    def job_run(*, job_id, worker, eager):
        calls.append(job_id)
        return answers[len(calls) - 1]

    monkeypatch.setattr(tasks.jobs, "job_run", job_run)
    result = tasks.run_job.apply(args=[7], retries=retries_so_far)
    assert result.successful(), result.traceback
    assert calls == [7, 7, 7]
    # The one-above limit given to retry() does not stay on the task for later errors.
    assert "override_max_retries" not in tasks.run_job.__dict__
