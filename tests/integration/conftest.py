"""Real Celery workers on Redis, reading the PostgreSQL test database pytest-django created.

Tests here commit their rows (``django_db(transaction=True)``) so that worker
processes, which hold their own connections, can see them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

# The tiny encoder of the curation tests, so worker jobs need not load MiniLM.
from tests.curation.conftest import tiny_model_root  # noqa: F401
from tests.template_db import database_url

REPO_ROOT = Path(__file__).resolve().parents[2]
CELERY_BIN = Path(sys.executable).with_name("celery")


def _redis_url_for_this_worker() -> str:
    """BALLOT_TEST_REDIS_URL, with one Redis database per pytest-xdist worker.

    Worker gwN takes the database N below the configured one (15, 14, ... by default),
    so that each worker's broker, results and flushes stay its own.
    """
    url = os.environ.get("BALLOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    base, _, number = url.rpartition("/")
    database = int(number or 0) - int(worker[2:])
    if database < 0:
        raise RuntimeError(f"{url}: too few Redis databases below it for xdist worker {worker}")
    return f"{base}/{database}"


REDIS_URL = _redis_url_for_this_worker()
# Celery node names stay distinct across xdist workers too ("w1-gw0@host").
NODE_SUFFIX = f"-{os.environ['PYTEST_XDIST_WORKER']}" if "PYTEST_XDIST_WORKER" in os.environ else ""
REQUIRE_SERVICES = os.environ.get("BALLOT_REQUIRE_SERVICES", "") == "1"
# Short, so that a job whose worker died may be claimed again within a test.
STALE_SECONDS = 3
WORKER_READY_TIMEOUT = 60.0


def _unavailable(reason: str) -> None:
    # In CI a missing service is a broken environment, not a reason to skip.
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (BALLOT_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def _database_url() -> str:
    """A URL for the test database of this session (test_ballot, not ballot)."""
    return database_url(connection.settings_dict, connection.settings_dict["NAME"])


@pytest.fixture
def tiny_embeddings(monkeypatch, settings, tiny_model_root: Path) -> Path:  # noqa: F811
    """This process and the workers started after it embed with the tiny encoder.

    Workers read their settings from the environment, this process from ``settings``.
    """
    encoder = str(tiny_model_root / "tiny-encoder")
    monkeypatch.setenv("BALLOT_MODEL_ROOTS", str(tiny_model_root))
    monkeypatch.setenv("BALLOT_EMBEDDING_MODEL", encoder)
    settings.BALLOT_MODEL_ROOTS = [str(tiny_model_root)]
    settings.BALLOT_EMBEDDING_MODEL = encoder
    return tiny_model_root


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test Redis database, empty before and after the test."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable(f"Redis is not reachable at {REDIS_URL}: {exc}")
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def broker(transactional_db, redis_url: str, settings) -> Iterator[str]:
    """Send tasks from this process to Redis instead of running them eagerly."""
    from config.celery import app

    if connection.vendor != "postgresql":
        _unavailable("integration tests need PostgreSQL (set DATABASE_URL=postgres://...)")
    settings.CELERY_BROKER_URL = redis_url
    settings.CELERY_RESULT_BACKEND = redis_url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    saved = {key: app.conf[key] for key in ("broker_url", "result_backend", "task_always_eager")}
    app.conf.broker_url = redis_url
    app.conf.result_backend = redis_url
    app.conf.task_always_eager = False
    _reset_connections(app)
    yield redis_url
    _reset_connections(app)
    app.conf.update(saved)


def _reset_connections(app) -> None:
    # The connection pool, the producer pool and the result backend are built from the
    # config on first use and cached on the app. Forget them (without closing: kombu
    # shares pools per URL) so the next use reads the config as it is now.
    app._pool = None
    app.amqp._producer_pool = None
    if hasattr(app._local, "backend"):
        del app._local.backend


@dataclass
class Worker:
    """One ``celery worker`` main process; its prefork pool children do the work."""

    name: str
    process: subprocess.Popen
    log_path: Path
    log_file: object = field(repr=False)

    @property
    def nodename(self) -> str:
        return f"{self.name}{NODE_SUFFIX}@{socket.gethostname()}"

    def pool_children(self) -> list:
        import psutil

        try:
            return psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _worker_env(broker_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        DATABASE_URL=_database_url(),
        CELERY_BROKER_URL=broker_url,
        CELERY_RESULT_BACKEND=broker_url,
        BALLOT_STORAGE_ROOT=str(django_settings.BALLOT_STORAGE_ROOT),
        BALLOT_JOB_STALE_SECONDS=str(STALE_SECONDS),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONPATH=str(REPO_ROOT),
        PYTHONUNBUFFERED="1",
    )
    return env


def _wait_until_ready(workers: list[Worker]) -> None:
    from config.celery import app

    wanted = {worker.nodename for worker in workers}
    deadline = time.monotonic() + WORKER_READY_TIMEOUT
    while time.monotonic() < deadline:
        for worker in workers:
            if worker.process.poll() is not None:
                raise RuntimeError(
                    f"worker {worker.name} exited with {worker.process.returncode}:\n{worker.log()}"
                )
        replies = app.control.ping(destination=sorted(wanted), timeout=1.0)
        if wanted <= {name for reply in replies for name in reply}:
            return
    logs = "\n".join(f"--- {w.name} ---\n{w.log()}" for w in workers)
    raise RuntimeError(f"workers not ready after {WORKER_READY_TIMEOUT:.0f} s:\n{logs}")


def _stop(workers: list[Worker]) -> None:
    # The test is over: nothing a worker still does matters, so its whole process group
    # (it leads its own session, so the pool children too) is killed at once. A cold
    # shutdown (SIGQUIT) first cost 2.3 s per test, for nothing the test reads.
    for worker in workers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.process.pid, signal.SIGKILL)
    for worker in workers:
        worker.process.wait(timeout=10)
        worker.log_file.close()


@pytest.fixture
def celery_workers(request, broker: str, tmp_path: Path) -> Iterator[Callable[..., list[Worker]]]:
    """``celery_workers("w1", "w2")`` starts real workers on the default and gpu queues.

    They read the test database and the test storage root; their logs are printed
    when the test fails, and they are always killed afterwards.
    """
    started: list[Worker] = []

    def start(*names: str) -> list[Worker]:
        batch = []
        for name in names:
            log_path = tmp_path / f"{name}.log"
            log_file = log_path.open("wb")
            process = subprocess.Popen(
                [
                    str(CELERY_BIN),
                    "-A",
                    "config",
                    "worker",
                    "-Q",
                    "default,gpu",
                    "--concurrency",
                    "1",
                    "-P",
                    "prefork",
                    "-n",
                    f"{name}{NODE_SUFFIX}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "-l",
                    "info",
                ],
                cwd=REPO_ROOT,
                env=_worker_env(broker),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            worker = Worker(name=name, process=process, log_path=log_path, log_file=log_file)
            started.append(worker)
            batch.append(worker)
        _wait_until_ready(batch)
        return batch

    request.node.celery_workers = started
    yield start
    _stop(started)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # A failed test shows what its workers logged, next to its own captured output.
    report = yield
    if report.when == "call" and report.failed:
        for worker in getattr(item, "celery_workers", []):
            report.sections.append((f"log of celery worker {worker.name}", worker.log()))
    return report
