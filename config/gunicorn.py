"""Gunicorn settings for the production shape: ``gunicorn -c config/gunicorn.py config.wsgi``.

Everything is overridable by environment variables:

- ``PORT`` (8000) and ``GUNICORN_BIND`` (``0.0.0.0:$PORT``);
- ``WEB_CONCURRENCY``: worker processes, default cores + 1, at most 12;
- ``GUNICORN_WORKER_CLASS`` (gthread) and ``GUNICORN_THREADS`` (8): threads per worker. Each thread holds
  its own database connection, so workers x threads x web containers must stay
  below PostgreSQL's ``max_connections`` (100 by default);
- ``GUNICORN_TIMEOUT`` (120 s): a 10,000-item import is one long request;
- ``GUNICORN_ACCESS_LOG``: a path or ``-`` for stdout; off by default, since a
  log line per request costs throughput and the proxy in front logs anyway.
"""

from __future__ import annotations

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{_int('PORT', 8000)}"

# Chosen by measurement (issue 16: bench/bench_api.py --server-pid on 2 shared cores; the
# README's "Scaling out" has the table). On a quiet 2-core machine (2026-11-30, prepared
# statements, one commit per item) 3 x 8 threads served 407/s at 8 annotators with
# submit/?next=1 (3.1 ms of web CPU per submission) and 293/s with next/ + submit/;
# 2 x 8 403 and 255/s, 2 x 16 349 and 262/s, 4 x 4 377 and 287/s. One spare process
# evens out keep-alive connections, which gunicorn hands to whichever process accepts
# first. sync x 5 matched it (394 and 277/s, and a narrower tail at 32 clients) but
# holds one request per process with no keep-alive: a few slow clients stall it, so it
# only suits a buffering proxy in front. granian (Rust, WSGI) 3 x 8: 392 and 300/s.
workers = _int("WEB_CONCURRENCY", min(multiprocessing.cpu_count() + 1, 12))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "").strip() or "gthread"
threads = _int("GUNICORN_THREADS", 8)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
timeout = _int("GUNICORN_TIMEOUT", 120)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)

# Recycle workers now and then so slow leaks never add up. Workers carry equal load, so
# with a narrow jitter they reached the limit together; half the limit spreads them out.
max_requests = _int("GUNICORN_MAX_REQUESTS", 5000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 2500)
# The app is imported once in the master and forked: a recycled worker serves again after
# ~1.4 s instead of 3.4-4.5 s of imports (measured under the load check), and the workers
# share the imported code's memory. No connection is opened at import (Django, Redis and
# Celery connect on first use), so nothing is shared across the fork. GUNICORN_PRELOAD=0
# turns it off (for code reloads on HUP).
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") != "0"

# Heartbeat files on tmpfs: a worker on a busy overlay disk is not killed for
# a slow write (Docker's /tmp is on the container's disk).
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# gunicorn's own request limits: a longer request line is answered 414 and a longer header
# line 431 by gunicorn itself, in HTML, before Ballot sees the request. The request line
# is raised from gunicorn's default (4,094 bytes) to its maximum: a filtered explore query
# reached the default in make check's schemathesis run. 8 KiB is also what proxies such
# as nginx allow by default.
limit_request_line = 8190
limit_request_field_size = 8190

accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")

# Trust X-Forwarded-* only from the proxy in front (comma-separated addresses).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
proxy_allow_ips = forwarded_allow_ips
