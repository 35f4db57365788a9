"""Ballot in its production shape on this machine, isolated from the shared services.

One :class:`Stack` owns, under one private folder:

- a PostgreSQL cluster of its own (``initdb`` from /usr/lib/postgresql/15/bin, as the
  ``postgres`` user when run as root, since initdb refuses root);
- a ``redis-server`` of its own (broker on db 0, cache on db 1), with the append-only
  file on like ``docker-compose.yml`` has it, so a restart keeps the queued tasks;
- gunicorn with ``config/gunicorn.py`` and ``config.settings.production`` (a fresh
  strong secret key and explicit allowed hosts, given in the environment);
- one Celery worker per queue the app uses (``default`` and ``gpu``), as the compose
  file runs them.

Nothing touches the machine's PostgreSQL on 5432 or Redis on 6379. The checks talk
plain HTTP to gunicorn as the TLS proxy in front would, so the HTTPS redirect is off
(``DJANGO_SECURE_SSL_REDIRECT=0``, the compose file's documented local trial);
secure cookies still need ``X-Forwarded-Proto: https`` from the client.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("BALLOT_CHECK_PG_BIN", "/usr/lib/postgresql/15/bin"))
QUEUES = ("default", "gpu")
# How many pool processes per queue's worker (docker-compose.yml: CELERY_CONCURRENCY for
# default, one process owning the GPU).
CONCURRENCY = {"default": 2, "gpu": 1}
# A running job whose heartbeat is older than this may be claimed again. Production's
# default is 120 s; short here so a job whose worker was killed resumes within the check.
STALE_SECONDS = 4


class StackError(RuntimeError):
    """A part of the stack did not start or stop; the message says which and shows its log."""


@dataclass
class _Proc:
    name: str
    process: subprocess.Popen
    log_path: Path
    log_file: IO[bytes] = field(repr=False)
    readies: int = 0  # " ready." lines in the log before this process started

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        self.log_file.flush()
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-chars:]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def pick_port(preferred: int, taken: set[int] = frozenset()) -> int:
    """``preferred`` when it is free, else a free port below the kernel's ephemeral range.

    A listening port inside the ephemeral range can be held by any outgoing connection's
    local end (a client still talking to Redis, say), so the defaults lie below it, and a
    taken one is never fatal: the stack passes its ports to every process it starts.
    """
    if preferred not in taken and _port_free(preferred):
        return preferred
    low, high = _ephemeral_range()
    candidates = [p for p in range(20000, 32000) if not low <= p <= high and p not in taken]
    rng = random.Random()
    for port in rng.sample(candidates, min(200, len(candidates))):
        if _port_free(port):
            return port
    raise StackError(f"no free port near {preferred} (200 tried)")


def _wait(what: str, ready, timeout: float, log: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    raise StackError(f"{what} not ready after {timeout:.0f} s\n{log}")


class Stack:
    """Start, break and stop the production shape. Use as a context manager or call
    :meth:`start` and :meth:`stop` (stop is safe to call twice and after a failed start).
    """

    def __init__(
        self,
        *,
        pg_port: int = 25432,
        redis_port: int = 26379,
        web_port: int = 28103,
        web_workers: int | None = None,
        logs_to: Path | None = None,
    ) -> None:
        self.pg_port, self.redis_port, self.web_port = pg_port, redis_port, web_port
        self.web_workers = web_workers
        # initdb runs as postgres, which must own the cluster folder and reach it: a
        # private folder under /tmp, not the worktree (whose parents postgres may not read).
        self.root = Path(tempfile.mkdtemp(prefix="ballot-check-"))
        self.log_dir = self.root / "logs"
        # Where the logs are copied when the stack stops (the private folder goes).
        self.logs_to = logs_to
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.pg_data = self.root / "pg"
        self.redis_dir = self.root / "redis"
        self.storage_root = self.root / "storage"
        self.db_name = "ballot"
        self.secret_key = secrets.token_urlsafe(50)
        self.web: _Proc | None = None
        self.redis: _Proc | None = None
        self.workers: dict[str, _Proc] = {}
        self._pg_started = False
        self._mounts: list[Path] = []
        self.timings: dict[str, float] = {}

    # ---- what the checks use -------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.pg_port}/{self.db_name}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment of every Ballot process of the stack (and of subprocesses the
        checks start against it): production settings, this stack's services."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "BALLOT_", "CELERY_")) and k != "DATABASE_URL"
        }
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings.production",
            DJANGO_SECRET_KEY=self.secret_key,
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            DJANGO_SECURE_SSL_REDIRECT="0",
            DATABASE_URL=self.database_url,
            CELERY_BROKER_URL=f"{self.redis_url}/0",
            CELERY_RESULT_BACKEND=f"{self.redis_url}/0",
            REDIS_URL=f"{self.redis_url}/1",
            BALLOT_STORAGE_ROOT=str(self.storage_root),
            BALLOT_JOB_STALE_SECONDS=str(STALE_SECONDS),
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            PYTHONPATH=str(REPO_ROOT),
            PYTHONUNBUFFERED="1",
            PORT=str(self.web_port),
            GUNICORN_BIND=f"127.0.0.1:{self.web_port}",
            # Two cores: torch in every worker would otherwise start a thread per core each.
            OMP_NUM_THREADS="1",
        )
        if self.web_workers:
            env["WEB_CONCURRENCY"] = str(self.web_workers)
        return env

    def manage(self, *args: str, timeout: float = 300, check: bool = True):
        """``manage.py <args>`` against the stack; returns the CompletedProcess (text)."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise StackError(f"manage.py {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
        return done

    def kill_worker(self, queue: str) -> int:
        """``kill -9`` the pool processes of ``queue``'s worker, the ones running its tasks.

        The worker's main process stays and forks new pool processes; with acks_late and
        reject-on-worker-lost the broker redelivers the task that was running. (Killing
        the main process instead would leave its message unacknowledged until the
        broker's one-hour visibility timeout.) Returns the pid of the first killed one.
        """
        import psutil

        proc = self.workers.get(queue)
        if proc is None or not proc.alive():
            raise StackError(f"no {queue} worker is running")
        children = psutil.Process(proc.process.pid).children()
        if not children:
            raise StackError(f"the {queue} worker has no pool process")
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.send_signal(signal.SIGKILL)
        return children[0].pid

    def worker_log(self, queue: str) -> str:
        """Everything ``queue``'s worker logged since the stack started."""
        proc = self.workers.get(queue)
        return proc.log_tail(10**8) if proc else ""

    def start_worker(self, queue: str, *, max_file_bytes: int | None = None) -> None:
        """Start ``queue``'s worker (if it is not running) and wait until it answers.

        ``max_file_bytes``: replace the running worker with one that may not grow any
        file past that size (RLIMIT_FSIZE: a write past it fails with EFBIG, as Python
        ignores SIGXFSZ), a full disk for that worker alone. Its log is a file of its
        own, so its own logging stays under the limit. ``start_worker(queue)`` after
        ``stop_worker(queue)`` brings the ordinary one back.
        """
        if max_file_bytes is not None:
            self.stop_worker(queue)
        if queue in self.workers and self.workers[queue].alive():
            return
        self._spawn_worker(queue, max_file_bytes=max_file_bytes)
        self._wait_worker(queue)

    def stop_worker(self, queue: str) -> None:
        """Stop ``queue``'s worker (a cold shutdown; a running task is redelivered)."""
        proc = self.workers.pop(queue, None)
        self._stop_proc(proc, signal.SIGQUIT, timeout=10)

    def _spawn_worker(self, queue: str, max_file_bytes: int | None = None) -> None:
        if queue in self.workers:
            self.workers.pop(queue).log_file.close()
        node = f"check-{queue}@%h"
        limit = None
        if max_file_bytes is not None:

            def limit() -> None:
                import resource

                resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

        self.workers[queue] = self._spawn(
            f"celery-{queue}" if max_file_bytes is None else f"celery-{queue}-file-limit",
            [
                str(Path(sys.executable).with_name("celery")),
                *("-A", "config", "worker", "-Q", queue),
                *("--concurrency", str(CONCURRENCY[queue]), "-P", "prefork", "-n", node),
                *("--without-gossip", "--without-mingle", "-l", "info"),
            ],
            append=max_file_bytes is None,
            preexec=limit,
        )

    def restart_redis(self, down_seconds: float = 1.0) -> None:
        """Stop Redis (SIGTERM: it flushes its append-only file), stay down, start it again."""
        self._stop_proc(self.redis, signal.SIGTERM, timeout=15)
        time.sleep(down_seconds)
        self._start_redis()

    def restart_postgres(self, down_seconds: float = 1.0, mode: str = "fast") -> None:
        """Stop PostgreSQL (``fast``: sessions are cut, transactions roll back;
        ``immediate``: as a crash), stay down, start it again and wait until it accepts."""
        self._pg_ctl("stop", "-m", mode, "-w", "-t", "30")
        time.sleep(down_seconds)
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log_dir / "postgres.log"))

    def process_rss(self) -> dict[str, int]:
        """Resident memory of each part, its child processes included, in bytes."""
        import psutil

        def tree(pid: int) -> int:
            try:
                parent = psutil.Process(pid)
                procs = [parent, *parent.children(recursive=True)]
            except psutil.NoSuchProcess:
                return 0
            total = 0
            for p in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += p.memory_info().rss
            return total

        out: dict[str, int] = {}
        if self.web:
            out["gunicorn"] = tree(self.web.process.pid)
        for queue, proc in self.workers.items():
            out[f"celery-{queue}"] = tree(proc.process.pid)
        if self.redis:
            out["redis"] = tree(self.redis.process.pid)
        pid_file = self.pg_data / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(ValueError, OSError):
                out["postgres"] = tree(int(pid_file.read_text().split()[0]))
        return out

    # ---- lifecycle -----------------------------------------------------------------

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """PostgreSQL, Redis, migrations and static files, then gunicorn and the workers."""
        # Ports are settled once, before anything starts: restarts in the fault checks
        # reuse them, and every process gets them through :attr:`env`.
        self.pg_port = pick_port(self.pg_port)
        self.redis_port = pick_port(self.redis_port, {self.pg_port})
        self.web_port = pick_port(self.web_port, {self.pg_port, self.redis_port})
        self._timed("postgres", self._start_postgres)
        self._timed("redis", self._start_redis)
        self.storage_root.mkdir(parents=True, exist_ok=True)
        # What does not wait on what runs at once: the workers boot (importing Django and
        # the app) during the migrations, which run beside collectstatic; gunicorn comes
        # after both (WhiteNoise lists the collected files when it starts).
        started = time.monotonic()
        for queue in QUEUES:
            self._spawn_worker(queue)
        with ThreadPoolExecutor(max_workers=2) as pool:
            steps = {
                name: pool.submit(self._timed, name, lambda a=args: self.manage(*a))
                for name, args in (
                    ("migrate", ("migrate", "--noinput")),
                    ("collectstatic", ("collectstatic", "--noinput")),
                )
            }
            for future in steps.values():
                future.result()
        self._spawn_web()
        self._wait_web()
        for queue in QUEUES:
            self._wait_worker(queue)
        self.timings["web+workers"] = round(time.monotonic() - started, 2)

    def stop(self) -> None:
        """Stop everything this stack started and remove its private folder (its logs are
        first copied to ``logs_to`` when given). Safe to call twice."""
        # Everything is told at once, then waited for. SIGQUIT: a cold shutdown for the
        # workers and gunicorn's quick one (the checks are done, nothing to drain).
        parts = [(proc, signal.SIGQUIT) for proc in self.workers.values()]
        parts += [(self.web, signal.SIGQUIT), (self.redis, signal.SIGTERM)]
        with ThreadPoolExecutor(max_workers=len(parts)) as pool:
            list(pool.map(lambda part: self._stop_proc(part[0], part[1], timeout=10), parts))
        self.workers, self.web, self.redis = {}, None, None
        if self._pg_started:
            with contextlib.suppress(Exception):
                self._pg_ctl("stop", "-m", "fast", "-w", "-t", "30")
            self._pg_started = False
        self._unmount_all()
        if self.logs_to and self.log_dir.exists():
            shutil.rmtree(self.logs_to, ignore_errors=True)
            shutil.copytree(self.log_dir, self.logs_to)
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- parts ---------------------------------------------------------------------

    def _timed(self, name: str, action) -> None:
        started = time.monotonic()
        action()
        self.timings[name] = round(time.monotonic() - started, 2)

    def _as_postgres(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def _pg_ctl(self, *args: str) -> None:
        done = subprocess.run(
            self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.pg_data), *args]),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            log = self.log_dir / "postgres.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise StackError(f"pg_ctl {' '.join(args)}: {done.stderr or done.stdout}\n{tail}")

    def _start_postgres(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.log_dir, "postgres", "postgres")
        done = subprocess.run(
            self._as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    *("-D", str(self.pg_data), "-U", "postgres", "--auth=trust"),
                    *("-E", "UTF8", "--locale=C.UTF-8", "--no-sync"),
                ]
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise StackError(f"initdb failed: {done.stderr or done.stdout}")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.pg_port),
            "unix_socket_directories": f"'{self.root}'",
            # gunicorn workers x threads + Celery pool processes + the checks' clients.
            "max_connections": "200",
            "shared_buffers": "128MB",
        }
        with (self.pg_data / "postgresql.auto.conf").open("a") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log_dir / "postgres.log"))
        self._pg_started = True
        done = subprocess.run(
            [
                str(PG_BIN / "createdb"),
                *("-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres", self.db_name),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise StackError(f"createdb failed: {done.stderr}")

    def _start_redis(self) -> None:
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        self.redis = self._spawn(
            "redis",
            [
                "redis-server",
                *("--port", str(self.redis_port), "--bind", "127.0.0.1"),
                *("--dir", str(self.redis_dir), "--save", "", "--appendonly", "yes"),
                *("--protected-mode", "yes"),
            ],
            append=True,
        )

        def pong() -> bool:
            done = subprocess.run(
                ["redis-cli", "-p", str(self.redis_port), "ping"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            return done.stdout.strip() == "PONG"

        _wait("Redis", pong, 30, self.redis.log_tail())

    def _spawn_web(self) -> None:
        self.web = self._spawn(
            "gunicorn",
            [
                str(Path(sys.executable).with_name("gunicorn")),
                *("-c", "config/gunicorn.py", "config.wsgi"),
            ],
        )

    def _wait_web(self) -> None:
        def answers() -> bool:
            if not self.web.alive():
                raise StackError(f"gunicorn exited:\n{self.web.log_tail()}")
            import urllib.error
            import urllib.request

            try:
                with urllib.request.urlopen(f"{self.base_url}/login/", timeout=5) as response:  # noqa: S310 - our own loopback server
                    return response.status == 200
            except urllib.error.HTTPError as exc:
                return exc.code < 500
            except OSError:
                return False

        _wait("gunicorn", answers, 90, self.web.log_tail() if self.web else "")

    def _wait_worker(self, queue: str) -> None:
        proc = self.workers[queue]

        def ready() -> bool:
            if not proc.alive():
                raise StackError(f"the {queue} worker exited:\n{proc.log_tail()}")
            return proc.log_tail(10**8).count(" ready.") > proc.readies

        _wait(f"the {queue} worker", ready, 120, proc.log_tail())

    def _spawn(self, name: str, argv: list[str], append: bool = False, preexec=None) -> _Proc:
        log_path = self.log_dir / f"{name}.log"
        log_file = log_path.open("ab" if append else "wb")
        # The log may hold earlier runs of this part (appended across restarts).
        readies = log_path.read_text(errors="replace").count(" ready.") if append else 0
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            argv,
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,  # noqa: PLW1509 - only setrlimit, before exec
        )
        return _Proc(
            name=name, process=process, log_path=log_path, log_file=log_file, readies=readies
        )

    def _stop_proc(self, proc: _Proc | None, sig: int, timeout: float) -> None:
        if proc is None:
            return
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                proc.process.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.process.wait(timeout=timeout)
        # Each part leads its own session: take whatever it forked with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.process.wait(timeout=10)
        proc.log_file.close()

    # ---- a small full disk, for the faults check -----------------------------------

    def mount_small_disk(self, path: Path, size_bytes: int) -> str:
        """Make ``path`` a tmpfs of ``size_bytes`` (the workers see it: same mount
        namespace). Returns "tmpfs"; raises :class:`StackError` where mounting is not
        allowed (no root, a container without CAP_SYS_ADMIN)."""
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0777", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            raise StackError(f"mount -t tmpfs failed: {done.stderr.strip()}")
        self._mounts.append(path)
        return "tmpfs"

    def unmount(self, path: Path) -> None:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)
        self._mounts = [p for p in self._mounts if p != path]

    def _unmount_all(self) -> None:
        for path in list(self._mounts):
            self.unmount(path)
