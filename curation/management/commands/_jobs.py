"""Shared by the curate and export commands: launch a job and follow it with a progress bar."""

from __future__ import annotations

import json
import sys
import threading
import time

from django.core.management.base import CommandError
from django.db import connection

from annotation.errors import BallotError
from annotation.models import Project
from annotation.progress import progress_bar
from curation.models import Job, JobStatus
from curation.services.jobs import job_cancel, job_create


def parse_params(pairs: list[str]) -> dict:
    """``key=value`` pairs; values are parsed as JSON when they can be (numbers, booleans, lists)."""
    params: dict = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise CommandError(f"Parameters are key=value, got {pair!r}.")
        key, raw = pair.split("=", 1)
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


def launch_and_follow(
    *, project_id: int, kind: str, params: dict, stdout, wait: bool = True
) -> Job:
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        raise CommandError(f"No project with id {project_id}.")
    # In-process mode: run the job in a thread so this command can draw its progress bar,
    # unless we are inside a transaction (call_command from a test), where it runs inline.
    in_thread = not connection.in_atomic_block
    try:
        job = job_create(project=project, kind=kind, params=params, in_thread=in_thread)
    except BallotError as exc:
        raise CommandError(f"{exc.field}: {exc.detail}" if exc.field else exc.detail)
    stdout.write(f"job {job.id} ({kind}) queued")
    if not wait:
        return job
    # A live bar on a terminal; in a log, one line per 5 % (not one per redraw).
    bar = progress_bar(
        total=100,
        desc=kind,
        unit="%",
        file=sys.stderr,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
    )
    try:
        while True:
            job.refresh_from_db()
            bar.n = round(job.progress * 100)
            bar.set_postfix_str(job.message[:60])
            bar.refresh()
            if job.is_terminal:
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        job_cancel(job=job)
        raise CommandError(f"job {job.id} cancelled")
    finally:
        bar.close()
    for thread in threading.enumerate():
        if thread.name == f"ballot-job-{job.id}":
            thread.join(timeout=5)
    if job.status != JobStatus.SUCCEEDED:
        raise CommandError(f"job {job.id} {job.status}: {job.error or job.message}")
    return job


def intermixed(parser):
    """Let key=value parameters come before or after the options (``curate fifa --project 1 k=v``)."""
    parse = parser.parse_intermixed_args

    def parse_args(args=None, namespace=None):
        return parse(args, namespace)

    parser.parse_args = parse_args
    return parser
