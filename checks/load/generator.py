"""The simulated annotators of the load check: one thread and one keep-alive connection each.

Plain ``http.client`` on purpose: the generator shares two cores with the server it
measures, and a request here costs a few dozen microseconds of Python (no pools,
retry policies or hooks). Every client loops ``GET next/`` (first) then
``POST submit/?next=1`` under one idempotency key per assignment, as the README's
API client does, and records each confirmed submission and each latency.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import select
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# What a connection may fail with when the server closed it (a worker recycled after
# max_requests, a keep-alive timeout): the request is sent again on a fresh connection.
DROPPED = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)
REQUEST_TIMEOUT_S = 30.0
# Every REPLAY_EVERY-th confirmed submit of a client is sent a second time, same key and
# body: the replay must answer 200 with the same annotation and write nothing.
REPLAY_EVERY = 25
# How long a client waits before asking again after "nothing left for you".
EMPTY_WAIT_S = 0.5
MAX_EXAMPLES = 5


def loopback_address(base_url: str) -> tuple[str, int]:
    """``(host, port)`` of ``base_url``; refuses anything that is not a loopback address."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"load runs over plain HTTP on loopback only, not {base_url!r}")
    address = ipaddress.ip_address(socket.gethostbyname(parts.hostname))
    if not address.is_loopback:
        raise ValueError(f"load runs on loopback only; {parts.hostname} is {address}")
    return parts.hostname, parts.port or 80


@dataclass
class Confirmation:
    """A submission the server confirmed (201, or 200 for a replay of it)."""

    annotation: int
    assignment: int
    user: int


@dataclass
class Tally:
    """What one client saw. Written by its own thread only; read after it ended."""

    user: int
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    confirmed: list[Confirmation] = field(default_factory=list)
    # (annotation of the first answer, annotation of the replay, whether it said replayed)
    replays: list[tuple[int, int, bool]] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    requests: int = 0  # answered, whatever the status
    failed: int = 0  # no answer, even on a fresh connection
    reconnects: int = 0
    empty: int = 0

    def error(self, what: str, example: str) -> None:
        self.errors[what] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(example[:300])


class Connection:
    """One keep-alive HTTP/1.1 connection with the client's token."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self._conn = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT_S)
        self._headers = {
            "Authorization": f"Token {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }

    def _dropped(self) -> bool:
        # The server closed an idle connection (FIN already here): reconnect before
        # sending, as urllib3 does, rather than learn it from a failed request.
        sock = self._conn.sock
        if sock is None:
            return False
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)

    def call(
        self, tally: Tally, method: str, path: str, body: bytes | None = None, key: str = ""
    ) -> tuple[int, bytes, float]:
        """``(status, body, milliseconds)``. A dropped connection is retried once on a new
        one (safe: ``next/`` returns a held lease, a submit carries its idempotency key);
        a second failure raises."""
        headers = self._headers if not key else {**self._headers, "Idempotency-Key": key}
        for attempt in (1, 2):
            if self._dropped():
                self._conn.close()
                tally.reconnects += 1
            started = time.perf_counter()
            try:
                self._conn.request(method, path, body=body, headers=headers)
                response = self._conn.getresponse()
                data = response.read()
            except DROPPED:
                self._conn.close()
                if attempt == 2:
                    raise
                tally.reconnects += 1
                continue
            tally.requests += 1
            return response.status, data, (time.perf_counter() - started) * 1000
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._conn.close()


def _answer(assignment: dict) -> bytes:
    responses = [r["id"] for r in assignment["item"]["responses"]]
    if assignment["item"]["id"] % 2:
        responses.reverse()
    return json.dumps(
        {
            "answers": [
                {"question": "preference", "chosen": responses[0], "rejected": responses[1]}
            ],
            "time_spent_ms": 1000,
        }
    ).encode()


def annotate(
    *,
    host: str,
    port: int,
    token: str,
    project_id: int,
    tally: Tally,
    deadline: float,
    stop: threading.Event,
    key_prefix: str,
    start_at: float = 0.0,
) -> None:
    """One annotator's loop from ``start_at`` until ``deadline`` (``time.monotonic()``) or
    ``stop``."""
    stop.wait(max(0.0, start_at - time.monotonic()))
    conn = Connection(host, port, token)
    next_path = f"/api/v1/projects/{project_id}/next/"
    assignment: dict | None = None
    submitted = 0
    try:
        while time.monotonic() < deadline and not stop.is_set():
            try:
                if assignment is None:
                    status, data, ms = conn.call(tally, "GET", next_path)
                    tally.next_ms.append(ms)
                    if status == 204:  # the documented "nothing left for you"
                        tally.empty += 1
                        stop.wait(EMPTY_WAIT_S)
                        continue
                    if status != 200:
                        tally.error(f"next {status}", f"GET {next_path} -> {status}: {data!r}")
                        stop.wait(EMPTY_WAIT_S)
                        continue
                    assignment = json.loads(data)
                path = f"/api/v1/assignments/{assignment['id']}/submit/?next=1"
                body = _answer(assignment)
                key = f"{key_prefix}-{assignment['id']}"
                status, data, ms = conn.call(tally, "POST", path, body, key)
                tally.submit_ms.append(ms)
                if status not in (200, 201):
                    tally.error(f"submit {status}", f"POST {path} -> {status}: {data!r}")
                    assignment = None  # next/ hands the held lease back; submit it again
                    continue
                doc = json.loads(data)
                tally.confirmed.append(
                    Confirmation(doc["annotation"], doc["assignment"], tally.user)
                )
                submitted += 1
                if submitted % REPLAY_EVERY == 0:
                    status, again, ms = conn.call(tally, "POST", path, body, key)
                    tally.submit_ms.append(ms)
                    if status != 200:
                        tally.error(f"replay {status}", f"POST {path} again -> {status}: {again!r}")
                    else:
                        replay = json.loads(again)
                        tally.replays.append(
                            (doc["annotation"], replay["annotation"], replay["replayed"])
                        )
                assignment = doc.get("next")  # null: nothing left; ask next/ again
            except (OSError, http.client.HTTPException) as exc:
                # The assignment is kept: the next turn sends the same submit under the
                # same key, so a write the server made before the failure is confirmed
                # by its replay rather than left unseen.
                tally.failed += 1
                tally.error(type(exc).__name__, f"{type(exc).__name__}: {exc}")
                conn.close()
            except (ValueError, KeyError, TypeError) as exc:
                tally.error("bad body", f"unreadable answer: {type(exc).__name__}: {exc}")
                assignment = None
    finally:
        conn.close()
