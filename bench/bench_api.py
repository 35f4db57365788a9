"""Throughput and latency of the annotation API, measured over HTTP only.

The script starts nothing: point it at a running Ballot (gunicorn on
PostgreSQL for figures worth quoting) with a superuser's or any user's token.
It creates its own projects through the API, each with a unique name, and
measures:

- import throughput: 10,000 native items posted in one request;
- the annotation loop with 1 and 8 concurrent annotators: each client does
  ``GET next/`` then ``POST submit/`` on a keep-alive connection, and the two
  calls are timed separately.

With ``--annotator-tokens FILE`` (lines ``username token``; see
bench/README.md for a command that creates them) every client is a distinct
annotator on one shared project with overlap 1: the production shape, where
claims contend on the same queue. Without it every client shares the admin
token and gets a project of its own, which exercises the same code but never
contends on one queue; the output says which mode ran.

Usage::

    python bench/bench_api.py --base-url http://127.0.0.1:8765 --token "$ADMIN_TOKEN" \\
        --annotator-tokens var/bench-annotators.txt

The last line of output is ``BENCH_JSON {...}`` with every figure, which
bench/bench_pgbench.py accepts as ``--api-json`` to express submissions/s as a
share of the machine's pgbench tps.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

AIM_SUBMISSIONS_PER_SECOND_8 = 500
AIM_SUBMIT_P99_MS = 100
AIM_NEXT_P50_MS = 10
AIM_IMPORT_ITEMS_PER_SECOND = 5_000

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


def annotate(
    *,
    base_url: str,
    token: str,
    project_id: int,
    start: threading.Barrier,
    deadline_box: list[float],
    result: ClientResult,
) -> None:
    """next -> submit until the deadline or until the queue is empty."""
    with client(base_url, token) as http:
        # Open the connection before the clock starts.
        expect(http.get(f"/api/v1/projects/{project_id}/"), 200)
        start.wait()
        deadline = deadline_box[0]
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                response = http.get(f"/api/v1/projects/{project_id}/next/")
            except httpx.HTTPError as exc:
                result.error(f"next {type(exc).__name__}")
                continue
            t1 = time.perf_counter()
            if response.status_code == 204:
                result.exhausted = True
                return
            if response.status_code != 200:
                result.error(f"next {response.status_code}")
                continue
            assignment = response.json()
            responses = [r["id"] for r in assignment["item"]["responses"]]
            answers = [
                {
                    "question": "preference",
                    "chosen": responses[0],
                    "rejected": responses[1],
                    "strength": 2,
                }
            ]
            t2 = time.perf_counter()
            try:
                response = http.post(
                    f"/api/v1/assignments/{assignment['id']}/submit/",
                    json={"answers": answers, "time_spent_ms": 900},
                    headers={"Idempotency-Key": uuid.uuid4().hex},
                )
            except httpx.HTTPError as exc:
                result.error(f"submit {type(exc).__name__}")
                continue
            t3 = time.perf_counter()
            if response.status_code != 201:
                result.error(f"submit {response.status_code}")
                continue
            result.next_ms.append((t1 - t0) * 1000)
            result.submit_ms.append((t3 - t2) * 1000)
            result.done_at.append(t3)


def run_clients(
    *,
    base_url: str,
    admin: httpx.Client,
    annotators: list[Annotator] | None,
    admin_token: str,
    clients: int,
    pool: int,
    duration: float,
    warmup: float,
    run_tag: str,
) -> dict:
    """One measurement with ``clients`` concurrent annotators."""
    if annotators:
        mode = "distinct annotators, one shared project"
        project_id = project_create(admin, f"bench {run_tag} {clients}c shared")
        for annotator in annotators[:clients]:
            expect(
                admin.post(
                    f"/api/v1/projects/{project_id}/memberships/",
                    json={"username": annotator.username, "role": "annotator"},
                ),
                201,
            )
        items_import(admin, project_id, jsonl_items(pool, f"{run_tag}-{clients}c"))
        plan = [(a.token, project_id) for a in annotators[:clients]]
    else:
        mode = "admin token shared, one project per client (no queue contention)"
        plan = []
        per_client = max(1, pool // clients)
        for index in range(clients):
            project_id = project_create(admin, f"bench {run_tag} {clients}c client{index}")
            items_import(
                admin, project_id, jsonl_items(per_client, f"{run_tag}-{clients}c-{index}")
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
                "base_url": base_url,
                "token": token,
                "project_id": project_id,
                "start": start,
                "deadline_box": deadline_box,
                "result": result,
            },
            daemon=True,
        )
        for (token, project_id), result in zip(plan, results, strict=True)
    ]
    for thread in threads:
        thread.start()
    cpu_before = time.process_time()
    start.wait()
    began = deadline_box[0] - warmup - duration
    for thread in threads:
        thread.join()
    ended = time.perf_counter()
    client_cpu = time.process_time() - cpu_before

    # Samples finished during the warm-up are left out of every figure.
    window_start = began + warmup
    window_end = min(deadline_box[0], ended)
    next_ms, submit_ms, completed = [], [], 0
    for result in results:
        for n_ms, s_ms, at in zip(result.next_ms, result.submit_ms, result.done_at, strict=True):
            if window_start <= at <= window_end:
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
        "window_s": round(window, 2),
        "submissions": completed,
        "submissions_per_s": round(completed / window, 1),
        "submit_ms": summary(submit_ms),
        "next_ms": summary(next_ms),
        "errors": errors,
        "queue_exhausted": any(r.exhausted for r in results),
        "client_cpu_ms_per_submission": round(client_cpu * 1000 / total, 2) if total else None,
    }


# --- output ----------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.1f}{unit}"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "not met")


def report(figures: dict) -> None:
    runs = figures["runs"]
    imp = figures["import"]
    print()
    print(f"Ballot API bench against {figures['base_url']} ({figures['started_at']})")
    print(
        f"Import: {imp['items']:,} items in one request ({imp['sent_as']}): "
        f"{imp['seconds']:.2f} s = {imp['items_per_s']:,.0f} items/s"
    )
    print()
    header = f"{'clients':>7} {'subm/s':>8} {'submit p50':>11} {'p95':>8} {'p99':>8} {'next p50':>9} {'p95':>8} {'p99':>8} {'errors':>6}"
    print(header)
    print("-" * len(header))
    for run in runs:
        s, n = run["submit_ms"], run["next_ms"]
        print(
            f"{run['clients']:>7} {run['submissions_per_s']:>8,.1f} {_fmt(s['p50'], ' ms'):>11} {_fmt(s['p95'], ' ms'):>8} "
            f"{_fmt(s['p99'], ' ms'):>8} {_fmt(n['p50'], ' ms'):>9} {_fmt(n['p95'], ' ms'):>8} {_fmt(n['p99'], ' ms'):>8} "
            f"{sum(run['errors'].values()):>6}"
        )
    for run in runs:
        note = f"  {run['clients']} client(s): {run['mode']}; {run['submissions']} submissions in {run['window_s']} s"
        if run["queue_exhausted"]:
            note += "; the queue ran dry before the deadline (raise --pool)"
        if run["errors"]:
            note += f"; errors {run['errors']}"
        print(note)
        print(
            f"    bench client CPU: {run['client_cpu_ms_per_submission']} ms per next+submit pair "
            "(shares the machine's cores with the server)"
        )

    by_clients = {run["clients"]: run for run in runs}
    eight = by_clients.get(8)
    first = runs[0] if runs else None
    aims = figures["aims"]
    print()
    print("Aims:")
    print(
        f"  >= {aims['submissions_per_s_8_clients']} submissions/s at 8 clients: "
        f"{_fmt(eight and eight['submissions_per_s'])} -> {_verdict(eight and eight['submissions_per_s'] >= aims['submissions_per_s_8_clients'])}"
    )
    p99 = eight["submit_ms"]["p99"] if eight else None
    print(
        f"  submit p99 < {aims['submit_p99_ms']} ms at 8 clients: {_fmt(p99, ' ms')} -> "
        f"{_verdict(None if p99 is None else p99 < aims['submit_p99_ms'])}"
    )
    n50 = first["next_ms"]["p50"] if first else None
    print(
        f"  next/ median < {aims['next_p50_ms']} ms ({first and first['clients']} client): {_fmt(n50, ' ms')} -> "
        f"{_verdict(None if n50 is None else n50 < aims['next_p50_ms'])}"
    )
    print(
        f"  >= {aims['import_items_per_s']:,} imported items/s: {imp['items_per_s']:,.0f} -> "
        f"{_verdict(imp['items_per_s'] >= aims['import_items_per_s'])}"
    )
    print()
    print("BENCH_JSON " + json.dumps(figures, separators=(",", ":")))


# --- main ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8765")
    parser.add_argument(
        "--token",
        required=True,
        help="a superuser's (or any user's) API token; it creates the bench projects",
    )
    parser.add_argument(
        "--annotator-tokens", type=Path, help="file of 'username token' lines, one annotator each"
    )
    parser.add_argument(
        "--clients", default="1,8", help="comma-separated concurrency levels (default 1,8)"
    )
    parser.add_argument(
        "--duration", type=float, default=20.0, help="measured seconds per level (default 20)"
    )
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds before measuring (default 3)"
    )
    parser.add_argument(
        "--pool", type=int, default=8000, help="items queued per level (default 8000)"
    )
    parser.add_argument(
        "--import-items",
        type=int,
        default=10_000,
        help="items in the import request (default 10000)",
    )
    args = parser.parse_args(argv)

    levels = [int(part) for part in args.clients.split(",") if part.strip()]
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
        with client(args.base_url, args.token, timeout=600) as admin:
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
            for clients in levels:
                run = run_clients(
                    base_url=args.base_url,
                    admin=admin,
                    annotators=annotators,
                    admin_token=args.token,
                    clients=clients,
                    pool=args.pool,
                    duration=args.duration,
                    warmup=args.warmup,
                    run_tag=run_tag,
                )
                figures["runs"].append(run)
                print(
                    f"{clients} client(s): {run['submissions_per_s']} submissions/s",
                    file=sys.stderr,
                )
    except (BenchError, httpx.HTTPError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    report(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
