"""Throughput and latency of the annotation API, measured over HTTP only.

The script starts nothing: point it at a running Ballot (gunicorn on
PostgreSQL for figures worth quoting) with a superuser's or any user's token.
It creates its own projects through the API, each with a unique name, and
measures:

- import throughput: 10,000 native items posted in one request;
- the annotation loop with 1, 8 and 32 concurrent annotators, in two modes:
  ``separate``, where each client does ``GET next/`` then ``POST submit/`` on a
  keep-alive connection and the two calls are timed separately, and ``combined``,
  where each client asks ``next/`` once and then only ``POST submit/?next=1``,
  which returns the next leased item (the labeling page's shape);
- PostgreSQL's own ``pgbench -N`` in the same run (bench/bench_pgbench.py), so that
  submissions/s is also quoted as a share of what the database can do.

``--base-url`` takes several addresses separated by commas (two web nodes on one
database, say): client *i* talks to address *i* mod their number.

With ``--annotator-tokens FILE`` (lines ``username token``; see
bench/README.md for a command that creates them) every client is a distinct
annotator on one shared project with overlap 1: the production shape, where
claims contend on the same queue. Without it every client shares the admin
token and gets a project of its own, which exercises the same code but never
contends on one queue; the output says which mode ran.

Usage::

    python bench/bench_api.py --base-url http://127.0.0.1:8765 --token "$ADMIN_TOKEN" \\
        --annotator-tokens var/bench-annotators.txt

The last line of output is ``BENCH_JSON {...}`` with every figure.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

# Issue 16's aims on 2 cores: at 8 clients, 250 submissions/s and at least 0.05 x the
# machine's pgbench -N tps; submit p99 under 50 ms; next/ median under 5 ms.
AIM_SUBMISSIONS_PER_SECOND_8 = 250
AIM_PGBENCH_RATIO_8 = 0.05
AIM_SUBMIT_P99_MS = 50
AIM_NEXT_P50_MS = 5
AIM_IMPORT_ITEMS_PER_SECOND = 5_000
MODES = ("separate", "combined")

FILLER = (
    "The model weighs the context, names its assumptions and explains each step "
    "before it gives a short answer. "
)


class BenchError(RuntimeError):
    pass


@dataclass
class Annotator:
    username: str
    token: str


@dataclass
class ClientResult:
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    done_at: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    exhausted: bool = False
    started_at: list[float] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


# --- helpers ------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); None for no samples."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": _round(percentile(values, 50)),
        "p95": _round(percentile(values, 95)),
        "p99": _round(percentile(values, 99)),
        "mean": _round(statistics.fmean(values)) if values else None,
    }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def client(base_url: str, token: str, timeout: float = 60.0) -> httpx.Client:
    # One client per thread: httpx keeps the connection alive between calls,
    # so the figures measure the server, not TCP set-up.
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        headers={"Authorization": f"Token {token}", "Accept": "application/json"},
        timeout=timeout,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )


def expect(response: httpx.Response, *codes: int) -> httpx.Response:
    if response.status_code not in codes:
        raise BenchError(
            f"{response.request.method} {response.request.url} answered {response.status_code}: "
            f"{response.text[:500]}"
        )
    return response


class LeanClient:
    """One keep-alive HTTP/1.1 connection with the standard library, for the measured loop.

    The clients share the machine's cores with the server and PostgreSQL, and httpx spent
    0.7-1.5 ms of CPU per submission here, about a fifth of what the server spent: a
    client that costs less leaves the cores to what is measured (``pgbench`` has its own
    C client). Headers and body go out in one ``send``, so Nagle's algorithm never holds
    a body back for a delayed ACK.
    """

    def __init__(self, base_url: str, token: str, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
        self.connection: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: dict | None = None, headers: dict | None = None
    ) -> tuple[int, bytes]:
        """``(status, body)``; a broken connection raises ``OSError`` and is reopened next time."""
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        sent = dict(self.headers, **(headers or {}))
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        try:
            self.connection.request(method, self.prefix + path, body=payload, headers=sent)
            response = self.connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise OSError(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def jsonl_items(count: int, tag: str) -> bytes:
    """``count`` native items of a realistic size (about 700 bytes each)."""
    lines = []
    for index in range(count):
        lines.append(
            json.dumps(
                {
                    "external_id": f"{tag}-{index}",
                    "prompt": f"Question {index}: explain topic {index % 997} to a new colleague, briefly.",
                    "responses": [
                        f"Answer A to {index}. " + FILLER * 2,
                        f"Answer B to {index}. " + FILLER * 2,
                    ],
                }
            )
        )
    return ("\n".join(lines) + "\n").encode()


def project_create(admin: httpx.Client, name: str, overlap: int = 1) -> int:
    body = {
        "name": name,
        "overlap": overlap,
        "questions": [{"kind": "pairwise", "name": "preference"}],
    }
    return expect(admin.post("/api/v1/projects/", json=body), 201).json()["id"]


def items_import(admin: httpx.Client, project_id: int, payload: bytes) -> tuple[float, dict, str]:
    """Post the JSONL in one request. Returns (seconds, result, how it was sent).

    The raw ndjson body is tried first; Django refuses a non-file body over
    DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB by default) with 400, in which case
    the same bytes go again as a multipart file upload and the output says so.
    """
    url = f"/api/v1/projects/{project_id}/import/"
    started = time.perf_counter()
    response = admin.post(
        url,
        params={"format": "native"},
        content=payload,
        headers={"Content-Type": "application/x-ndjson"},
    )
    elapsed = time.perf_counter() - started
    if response.status_code in (201, 200):
        return elapsed, response.json(), "ndjson body"
    if response.status_code not in (400, 413):
        expect(response, 201)
    started = time.perf_counter()
    response = admin.post(
        url,
        params={"format": "native"},
        files={"file": ("items.jsonl", payload, "application/x-ndjson")},
    )
    elapsed = time.perf_counter() - started
    expect(response, 201, 200)
    return elapsed, response.json(), "multipart file (the ndjson body was refused)"


def read_annotators(path: Path) -> list[Annotator]:
    annotators = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) != 2:
            raise BenchError(
                f"{path}:{number}: expected 'username token' (the API cannot tell a token's username)."
            )
        annotators.append(Annotator(username=parts[0], token=parts[1]))
    return annotators


# --- the annotation loop --------------------------------------------------------------------


def _answers(assignment: dict) -> list[dict]:
    responses = [r["id"] for r in assignment["item"]["responses"]]
    return [
        {"question": "preference", "chosen": responses[0], "rejected": responses[1], "strength": 2}
    ]


def annotate(
    *,
    base_url: str,
    token: str,
    project_id: int,
    start: threading.Barrier,
    deadline_box: list[float],
    result: ClientResult,
    mode: str = "separate",
) -> None:
    """next -> submit (or submit?next=1 after the first next) until the deadline or an empty queue."""
    http = LeanClient(base_url, token)
    try:
        # Open the connection before the clock starts.
        status, body = http.request("GET", f"/api/v1/projects/{project_id}/")
        if status != 200:
            raise BenchError(f"GET project {project_id} answered {status}: {body[:500]!r}")
        start.wait()
        deadline = deadline_box[0]
        assignment: dict | None = None
        combined = mode == "combined"
        submit_query = "?next=1" if combined else ""
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            if assignment is None:
                try:
                    status, body = http.request("GET", f"/api/v1/projects/{project_id}/next/")
                except OSError as exc:
                    result.error(f"next {str(exc).split(':')[0]}")
                    continue
                if status == 204:
                    result.exhausted = True
                    return
                if status != 200:
                    result.error(f"next {status}")
                    continue
                assignment = json.loads(body)
                next_ms = (time.perf_counter() - t0) * 1000
            else:
                next_ms = None  # came with the previous submit
            t2 = time.perf_counter()
            try:
                status, body = http.request(
                    "POST",
                    f"/api/v1/assignments/{assignment['id']}/submit/{submit_query}",
                    body={"answers": _answers(assignment), "time_spent_ms": 900},
                    headers={"Idempotency-Key": uuid.uuid4().hex},
                )
            except OSError as exc:
                result.error(f"submit {str(exc).split(':')[0]}")
                assignment = None
                continue
            t3 = time.perf_counter()
            if status != 201:
                result.error(f"submit {status}")
                assignment = None
                continue
            result.next_ms.append(next_ms)
            result.submit_ms.append((t3 - t2) * 1000)
            result.done_at.append(t3)
            if combined:
                assignment = json.loads(body).get("next")
                if assignment is None:
                    result.exhausted = True
                    return
            else:
                assignment = None
    finally:
        http.close()


def run_clients(
    *,
    base_urls: list[str],
    admin: httpx.Client,
    annotators: list[Annotator] | None,
    admin_token: str,
    clients: int,
    pool: int,
    duration: float,
    warmup: float,
    run_tag: str,
    mode: str = "separate",
    server_cpu: Callable[[], float] | None = None,
    overlap: int = 1,
) -> dict:
    """One measurement with ``clients`` concurrent annotators in ``mode``.

    ``server_cpu`` returns the server's CPU seconds so far (``--server-pid``): the run's
    difference per submission is the one figure that holds on a busy machine.
    """
    if annotators:
        annotator_mode = "distinct annotators, one shared project"
        project_id = project_create(
            admin, f"bench {run_tag} {clients}c {mode} shared", overlap=overlap
        )
        for annotator in annotators[:clients]:
            expect(
                admin.post(
                    f"/api/v1/projects/{project_id}/memberships/",
                    json={"username": annotator.username, "role": "annotator"},
                ),
                201,
            )
        items_import(admin, project_id, jsonl_items(pool, f"{run_tag}-{clients}c-{mode}"))
        plan = [(a.token, project_id) for a in annotators[:clients]]
    else:
        annotator_mode = "admin token shared, one project per client (no queue contention)"
        plan = []
        per_client = max(1, pool // clients)
        for index in range(clients):
            project_id = project_create(admin, f"bench {run_tag} {clients}c {mode} client{index}")
            items_import(
                admin, project_id, jsonl_items(per_client, f"{run_tag}-{clients}c-{mode}-{index}")
            )
            plan.append((admin_token, project_id))

    results = [ClientResult() for _ in plan]
    deadline_box = [0.0]
    # The last party to arrive sets the clock, so every client starts together.
    start = threading.Barrier(
        len(plan) + 1,
        action=lambda: deadline_box.__setitem__(0, time.perf_counter() + warmup + duration),
    )
    threads = [
        threading.Thread(
            target=annotate,
            kwargs={
                "base_url": base_urls[index % len(base_urls)],
                "token": token,
                "project_id": project_id,
                "start": start,
                "deadline_box": deadline_box,
                "result": result,
                "mode": mode,
            },
            daemon=True,
        )
        for index, ((token, project_id), result) in enumerate(zip(plan, results, strict=True))
    ]
    for thread in threads:
        thread.start()
    cpu_before = time.process_time()
    server_before = server_cpu() if server_cpu else None
    start.wait()
    began = deadline_box[0] - warmup - duration
    for thread in threads:
        thread.join()
    ended = time.perf_counter()
    client_cpu = time.process_time() - cpu_before
    server_used = server_cpu() - server_before if server_cpu and server_before is not None else None

    # Samples finished during the warm-up are left out of every figure.
    window_start = began + warmup
    window_end = min(deadline_box[0], ended)
    next_ms, submit_ms, completed = [], [], 0
    for result in results:
        for n_ms, s_ms, at in zip(result.next_ms, result.submit_ms, result.done_at, strict=True):
            if window_start <= at <= window_end:
                if n_ms is not None:
                    next_ms.append(n_ms)
                submit_ms.append(s_ms)
                completed += 1
    window = max(window_end - window_start, 1e-9)
    errors: dict[str, int] = {}
    for result in results:
        for key, count in result.errors.items():
            errors[key] = errors.get(key, 0) + count
    total = sum(len(r.submit_ms) for r in results)
    return {
        "clients": clients,
        "mode": mode,
        "annotators": annotator_mode,
        "projects": sorted({project_id for _, project_id in plan}),
        "window_s": round(window, 2),
        "submissions": completed,
        "submissions_per_s": round(completed / window, 1),
        "submit_ms": summary(submit_ms),
        "next_ms": summary(next_ms),
        "errors": errors,
        "queue_exhausted": any(r.exhausted for r in results),
        "client_cpu_ms_per_submission": round(client_cpu * 1000 / total, 2) if total else None,
        # Every submission of the run, warm-up included, against the CPU of the whole run.
        "server_cpu_ms_per_submission": round(server_used * 1000 / total, 2)
        if total and server_used is not None
        else None,
    }


# --- output ----------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.1f}{unit}"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "not met")


def report(figures: dict) -> None:
    runs = figures["runs"]
    imp = figures.get("import")
    pg = figures.get("pgbench")
    print()
    print(f"Ballot API bench against {figures['base_url']} ({figures['started_at']})")
    if imp:
        print(
            f"Import: {imp['items']:,} items in one request ({imp['sent_as']}): "
            f"{imp['seconds']:.2f} s = {imp['items_per_s']:,.0f} items/s"
        )
    if pg:
        print(
            f"pgbench (same run): {pg['pgbench_tps']:,.1f} tps, {pg['workload']}, "
            f"PostgreSQL {pg['server_version']}"
        )
    print()
    header = (
        f"{'mode':>9} {'clients':>7} {'subm/s':>8} {'x pgbench':>9} {'submit p50':>11} {'p95':>8} "
        f"{'p99':>8} {'next p50':>9} {'p95':>8} {'p99':>8} {'errors':>6}"
    )
    print(header)
    print("-" * len(header))
    for run in runs:
        s, n = run["submit_ms"], run["next_ms"]
        ratio = run.get("pgbench_ratio")
        print(
            f"{run['mode']:>9} {run['clients']:>7} {run['submissions_per_s']:>8,.1f} "
            f"{'-' if ratio is None else f'{ratio:.3f}':>9} {_fmt(s['p50'], ' ms'):>11} "
            f"{_fmt(s['p95'], ' ms'):>8} {_fmt(s['p99'], ' ms'):>8} {_fmt(n['p50'], ' ms'):>9} "
            f"{_fmt(n['p95'], ' ms'):>8} {_fmt(n['p99'], ' ms'):>8} {sum(run['errors'].values()):>6}"
        )
    print(
        "  (combined: submit/?next=1 returns the next item, so next/ is asked once per client "
        "and its figures are empty)"
    )
    for run in runs:
        note = (
            f"  {run['mode']}, {run['clients']} client(s): {run['annotators']}; "
            f"{run['submissions']} submissions in {run['window_s']} s"
        )
        if run["queue_exhausted"]:
            note += "; the queue ran dry before the deadline (raise --pool)"
        if run["errors"]:
            note += f"; errors {run['errors']}"
        print(note)
        print(
            f"    CPU per submission: server {run['server_cpu_ms_per_submission']} ms "
            f"(every web process, --server-pid), bench client {run['client_cpu_ms_per_submission']} ms"
        )

    aims = figures["aims"]
    print()
    print("Aims:")
    for mode in MODES:
        by_clients = {run["clients"]: run for run in runs if run["mode"] == mode}
        eight = by_clients.get(8)
        if eight is None:
            continue
        rate, ratio, p99 = (
            eight["submissions_per_s"],
            eight.get("pgbench_ratio"),
            eight["submit_ms"]["p99"],
        )
        print(
            f"  {mode}, 8 clients: >= {aims['submissions_per_s_8_clients']} submissions/s: "
            f"{_fmt(rate)} -> {_verdict(rate >= aims['submissions_per_s_8_clients'])}; "
            f">= {aims['pgbench_ratio_8_clients']} x pgbench: "
            f"{'-' if ratio is None else f'{ratio:.3f}'} -> "
            f"{_verdict(None if ratio is None else ratio >= aims['pgbench_ratio_8_clients'])}; "
            f"submit p99 < {aims['submit_p99_ms']} ms: {_fmt(p99, ' ms')} -> "
            f"{_verdict(None if p99 is None else p99 < aims['submit_p99_ms'])}"
        )
    first = next((run for run in runs if run["mode"] == "separate"), None)
    n50 = first["next_ms"]["p50"] if first else None
    print(
        f"  next/ median < {aims['next_p50_ms']} ms ({first and first['clients']} client): "
        f"{_fmt(n50, ' ms')} -> {_verdict(None if n50 is None else n50 < aims['next_p50_ms'])}"
    )
    if imp:
        print(
            f"  >= {aims['import_items_per_s']:,} imported items/s: {imp['items_per_s']:,.0f} -> "
            f"{_verdict(imp['items_per_s'] >= aims['import_items_per_s'])}"
        )
    print()
    print("BENCH_JSON " + json.dumps(figures, separators=(",", ":")))


# --- main ------------------------------------------------------------------------------


def _server_cpu_reader(pids: str) -> Callable[[], float] | None:
    """CPU seconds (user + system) of the given processes and their children, or None."""
    wanted = [int(pid) for pid in pids.split(",") if pid.strip()]
    if not wanted:
        return None
    import psutil

    def read() -> float:
        total = 0.0
        for pid in wanted:
            master = psutil.Process(pid)
            for process in [master, *master.children(recursive=True)]:
                try:
                    times = process.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += times.user + times.system
        return total

    return read


def wait_for_server(base_url: str, seconds: float = 60.0) -> None:
    """Wait until ``base_url`` accepts connections: the bench may start right after gunicorn."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(f"{base_url}/", timeout=5)
            return
        except httpx.TransportError as exc:
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{base_url} did not answer within {seconds:.0f} s: {exc}"
                ) from exc
            time.sleep(0.25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base-url",
        required=True,
        help="e.g. http://127.0.0.1:8765; several, comma-separated, spread the clients over them",
    )
    parser.add_argument(
        "--token",
        required=True,
        help="a superuser's (or any user's) API token; it creates the bench projects",
    )
    parser.add_argument(
        "--annotator-tokens", type=Path, help="file of 'username token' lines, one annotator each"
    )
    parser.add_argument(
        "--clients", default="1,8,32", help="comma-separated concurrency levels (default 1,8,32)"
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="separate (next/ then submit/), combined (submit/?next=1), or both (default)",
    )
    parser.add_argument(
        "--duration", type=float, default=15.0, help="measured seconds per run (default 15)"
    )
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds before measuring (default 3)"
    )
    parser.add_argument(
        "--pool", type=int, default=8000, help="items queued per run (default 8000)"
    )
    parser.add_argument(
        "--import-items",
        type=int,
        default=10_000,
        help="items in the import request (default 10000; 0 skips the import figure)",
    )
    parser.add_argument(
        "--pgbench",
        default="127.0.0.1:5432:postgres",
        help="HOST:PORT:USER of the PostgreSQL to run pgbench -N on, the one Ballot uses "
        "(default 127.0.0.1:5432:postgres; PGPASSWORD if it needs one); 'off' skips it",
    )
    parser.add_argument("--pgbench-seconds", type=int, default=15)
    parser.add_argument(
        "--overlap",
        type=int,
        default=1,
        help="annotators per item in the shared project (default 1); above 1 the claims of "
        "different annotators race for the same items' slots",
    )
    parser.add_argument(
        "--server-pid",
        default="",
        help="gunicorn master PID(s), comma-separated, on this machine: report the web "
        "processes' CPU ms per submission (needs psutil; run gunicorn with "
        "GUNICORN_MAX_REQUESTS=0 so no worker is recycled mid-run)",
    )
    args = parser.parse_args(argv)

    levels = [int(part) for part in args.clients.split(",") if part.strip()]
    modes = [part.strip() for part in args.modes.split(",") if part.strip()]
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown mode(s) {sorted(unknown)}; use {', '.join(MODES)}")
    base_urls = [url.strip() for url in args.base_url.split(",") if url.strip()]
    annotators = read_annotators(args.annotator_tokens) if args.annotator_tokens else None
    if annotators is not None and len(annotators) < max(levels):
        parser.error(
            f"--annotator-tokens has {len(annotators)} annotator(s); {max(levels)} are needed"
        )
    run_tag = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    figures: dict = {
        "base_url": args.base_url,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run_tag": run_tag,
        "annotator_mode": "distinct annotators"
        if annotators
        else "shared admin token, one project per client",
        "aims": {
            "submissions_per_s_8_clients": AIM_SUBMISSIONS_PER_SECOND_8,
            "pgbench_ratio_8_clients": AIM_PGBENCH_RATIO_8,
            "submit_p99_ms": AIM_SUBMIT_P99_MS,
            "next_p50_ms": AIM_NEXT_P50_MS,
            "import_items_per_s": AIM_IMPORT_ITEMS_PER_SECOND,
        },
    }
    if annotators is None:
        print(
            "No --annotator-tokens: every client shares the admin token and gets its own project, "
            "so claims never contend on one queue (see bench/README.md to create annotators).",
            file=sys.stderr,
        )

    try:
        for url in base_urls:
            wait_for_server(url)
        with client(base_urls[0], args.token, timeout=600) as admin:
            if args.import_items:
                project_id = project_create(admin, f"bench {run_tag} import")
                payload = jsonl_items(args.import_items, f"{run_tag}-import")
                seconds, result, sent_as = items_import(admin, project_id, payload)
                if result.get("created") != args.import_items:
                    raise BenchError(
                        f"the import created {result.get('created')} items, not {args.import_items}: {result}"
                    )
                figures["import"] = {
                    "items": args.import_items,
                    "bytes": len(payload),
                    "seconds": round(seconds, 3),
                    "items_per_s": round(args.import_items / seconds, 1),
                    "sent_as": sent_as,
                    "project": project_id,
                }
                print(
                    f"import: {figures['import']['items_per_s']:,.0f} items/s ({sent_as})",
                    file=sys.stderr,
                )
            figures["runs"] = []
            server_cpu = _server_cpu_reader(args.server_pid)
            for mode in modes:
                for clients in levels:
                    run = run_clients(
                        base_urls=base_urls,
                        admin=admin,
                        annotators=annotators,
                        admin_token=args.token,
                        clients=clients,
                        pool=args.pool,
                        duration=args.duration,
                        warmup=args.warmup,
                        run_tag=run_tag,
                        mode=mode,
                        server_cpu=server_cpu,
                        overlap=args.overlap,
                    )
                    figures["runs"].append(run)
                    print(
                        f"{mode}, {clients} client(s): {run['submissions_per_s']} submissions/s",
                        file=sys.stderr,
                    )
    except (BenchError, httpx.HTTPError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    if args.pgbench != "off":
        # After the API runs, on the same PostgreSQL: the machine's yardstick, same load.
        from bench_pgbench import pgbench_measure

        host, port, user = (args.pgbench.split(":") + ["", "", ""])[:3]
        try:
            figures["pgbench"] = pgbench_measure(
                host=host or "127.0.0.1",
                port=port or "5432",
                user=user or "postgres",
                password=os.environ.get("PGPASSWORD"),
                seconds=args.pgbench_seconds,
            )
        except RuntimeError as exc:
            print(f"pgbench skipped: {exc}", file=sys.stderr)
        else:
            tps = figures["pgbench"]["pgbench_tps"]
            for run in figures["runs"]:
                run["pgbench_ratio"] = round(run["submissions_per_s"] / tps, 4) if tps else None
    report(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
