"""What a job kind declares, and the few types shared by kinds and the lifecycle."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from curation.jobs.params import JobParams
    from curation.models import Job

Report = Callable[[float, str], None]
"""``report(fraction, message)``: records progress; raises :class:`JobCancelled` once cancelled."""

Queue = Literal["gpu", "default"]


class JobCancelled(Exception):
    """Raised inside a running job when it has been cancelled; the run stops cleanly."""


@dataclass(frozen=True)
class Shards:
    """How a kind fans out: ``count`` shards run independently, then one merge.

    ``run(job, index, worker)`` computes shard ``index`` and returns the path of its
    artifact; a shard already done returns its path without recomputing (so a retried
    job redoes only what is missing). ``merge(job, report)`` runs once every shard is
    done and returns the job's result, like an unsharded kind's ``run``.
    """

    count: Callable[[Job], int]
    run: Callable[[Job, int, str], str]
    merge: Callable[[Job, Report], dict[str, Any]]


@dataclass(frozen=True)
class JobKindSpec:
    """One job kind: everything the lifecycle, the API and the commands need to know.

    ``run(job, report)`` does the work and returns the job's result (a JSON-ready
    dict). It must be idempotent: it first removes the rows an earlier attempt of the
    same job wrote, in the transaction that writes the new ones. Unsharded kinds
    set ``run``; sharded kinds set ``shards`` instead.
    """

    kind: str
    summary: str
    params: type[JobParams]
    queue: Queue
    writes: tuple[str, ...]
    run: Callable[[Job, Report], dict[str, Any]] | None = None
    shards: Shards | None = None

    def __post_init__(self) -> None:
        if (self.run is None) == (self.shards is None):
            raise ValueError(f"job kind {self.kind!r} needs exactly one of run and shards")

    def describe(self) -> dict[str, Any]:
        """The kind as the API and ``manage.py curate --list`` show it."""
        return {
            "kind": self.kind,
            "available": True,
            "summary": self.summary,
            "queue": self.queue,
            "sharded": self.shards is not None,
            "writes": list(self.writes),
            "params_component": self.params.component_name(),
            "params": self.params.describe(),
        }


def result_json(result: dict[str, Any]) -> dict[str, Any]:
    """Make a result JSON-safe (no NaN)."""
    return json.loads(json.dumps(result, default=str).replace("NaN", "null"))
