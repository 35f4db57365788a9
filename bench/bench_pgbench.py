"""The machine's PostgreSQL yardstick: pgbench tps, to quote API figures as a ratio.

Submissions per second depend on the machine as much as on Ballot. pgbench's
simple-update workload (``-N``: three UPDATE/INSERT statements and a SELECT
per transaction, no branch-table hot spot) run on the same PostgreSQL gives a
number that moves with the machine in the same way, so
``submissions/s ÷ pgbench tps`` is comparable across machines.

It creates a scratch database ``ballot_pgbench``, initialises it at scale 10
(1M accounts), runs ``pgbench -N -c 8 -j 2 -T 20`` and drops the database
again, even when interrupted.

Usage::

    python bench/bench_pgbench.py
    python bench/bench_pgbench.py --api-json "$(grep '^BENCH_JSON' bench-api.out)"

``--api-json`` takes bench_api.py's ``BENCH_JSON {...}`` line (with or
without the prefix, or ``@file`` holding it) and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

SCRATCH_DB = "ballot_pgbench"


def pg_env(password: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = password
    return env


def run(command: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    print("$ " + " ".join(command), file=sys.stderr)
    return subprocess.run(command, env=env, check=check, capture_output=True, text=True)


def parse_tps(output: str) -> float:
    # pgbench 15+: "tps = 1234.5 (without initial connection time)";
    # older ones print "(excluding connections establishing)" as well.
    matches = re.findall(
        r"^tps = ([0-9.]+) \((?:without initial connection time|excluding connections establishing)\)",
        output,
        re.M,
    )
    if not matches:
        matches = re.findall(r"^tps = ([0-9.]+)", output, re.M)
    if not matches:
        raise ValueError(f"no tps line in pgbench output:\n{output}")
    return float(matches[-1])


def parse_latency(output: str) -> float | None:
    match = re.search(r"^latency average = ([0-9.]+) ms", output, re.M)
    return float(match.group(1)) if match else None


def load_api_json(value: str) -> dict:
    if value.startswith("@"):
        value = Path(value[1:]).read_text()
    for line in value.splitlines():
        line = line.strip()
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON ") :])
    return json.loads(value.strip())


def pgbench_measure(
    *,
    host: str = "127.0.0.1",
    port: str = "5432",
    user: str = "postgres",
    password: str | None = None,
    scale: int = 10,
    clients: int = 8,
    threads: int = 2,
    seconds: int = 20,
) -> dict:
    """Run ``pgbench -N`` on a scratch database (dropped again) and return its figures.

    Raises ``RuntimeError`` when pgbench or psql is missing or a step fails.
    """
    for tool in ("pgbench", "psql"):
        if shutil.which(tool) is None:
            raise RuntimeError(
                f"{tool} is not on PATH (Debian: apt-get install postgresql-client)."
            )
    env = pg_env(password)
    conn = ["-h", host, "-p", str(port), "-U", user]
    drop = [
        "psql",
        *conn,
        "-d",
        "postgres",
        "-v",
        "ON_ERROR_STOP=1",
        "-qc",
        f"DROP DATABASE IF EXISTS {SCRATCH_DB}",
    ]
    try:
        run(drop, env)
        run(
            [
                "psql",
                *conn,
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-qc",
                f"CREATE DATABASE {SCRATCH_DB}",
            ],
            env,
        )
        run(["pgbench", *conn, "-i", "-q", "-s", str(scale), SCRATCH_DB], env)
        result = run(
            [
                "pgbench",
                *conn,
                "-N",
                "-c",
                str(clients),
                "-j",
                str(threads),
                "-T",
                str(seconds),
                SCRATCH_DB,
            ],
            env,
        )
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"failed: {' '.join(exc.cmd)}\n{exc.stdout}\n{exc.stderr}") from exc
    finally:
        run(drop, env, check=False)
    tps = parse_tps(result.stdout)
    server_version = subprocess.run(
        ["psql", *conn, "-d", "postgres", "-tAc", "SHOW server_version"],
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "pgbench_tps": round(tps, 1),
        "pgbench_latency_ms": parse_latency(result.stdout),
        "workload": f"pgbench -N -c {clients} -j {threads} -T {seconds}, scale {scale}",
        "server_version": server_version,
        "cpu_count": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="5432")
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--password", default=os.environ.get("PGPASSWORD"))
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--api-json", help="bench_api.py's BENCH_JSON line (or @file holding it)")
    args = parser.parse_args(argv)

    try:
        figures = pgbench_measure(
            host=args.host,
            port=args.port,
            user=args.user,
            password=args.password,
            scale=args.scale,
            clients=args.clients,
            threads=args.threads,
            seconds=args.seconds,
        )
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    tps, latency = figures["pgbench_tps"], figures["pgbench_latency_ms"]
    print(f"PostgreSQL {figures['server_version']}, {os.cpu_count()} CPU(s): {figures['workload']}")
    print(
        f"  pgbench tps: {tps:,.1f}"
        + (f" (average latency {latency} ms)" if latency is not None else "")
    )

    if args.api_json:
        api = load_api_json(args.api_json)
        ratios = {}
        for run_figures in api.get("runs", []):
            ratio = run_figures["submissions_per_s"] / tps
            ratios[str(run_figures["clients"])] = round(ratio, 4)
            print(
                f"  {run_figures['clients']} client(s): {run_figures['submissions_per_s']:,.1f} submissions/s "
                f"= {ratio:.3f} x pgbench tps ({ratio * 100:.1f} %)"
            )
        figures["submissions_per_pgbench_tps"] = ratios
        aim = api.get("aims", {}).get("submissions_per_s_8_clients")
        if aim:
            print(
                f"  the aim of {aim} submissions/s at 8 clients is {aim / tps:.3f} x this machine's pgbench tps"
            )
    print("PGBENCH_JSON " + json.dumps(figures, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
