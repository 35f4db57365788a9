"""Throughput of LM judges: judged pairs/s over HTTP at concurrency 1 and 16, and a local LM.

Usage::

    python bench/bench_judges.py                   # 400 pairs, stub latency 20 ms
    python bench/bench_judges.py --pairs 2000 --delay 0.05
    python bench/bench_judges.py --lm-path /models/qwen2.5-0.5b-instruct   # a real local LM

The HTTP judge is Ballot's own client (``models_gpu.judges.ChatJudge`` over the
outbound client of ``curation.outbound``: address check, pinned connection, one
connection per request) against the stub OpenAI-compatible server of the tests,
run in its own process with ``--delay`` seconds of simulated model latency per
request. Every pair costs two requests (both orders). The stub alone is measured
with the same number of concurrent plain ``http.client`` clients sending the same
requests, which is the ceiling the judge can reach; the script prints the judge's
share of it.

The local LM figure is pairs/s of next-token scoring, batched, of the tiny test
causal LM (or ``--lm-path``); on CUDA when present, otherwise it prints "no CUDA"
and the CPU figure.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ["BALLOT_OUTBOUND_ALLOW_PRIVATE"] = "1"

STUB = """
import sys, time
sys.path.insert(0, {root!r})
from tests.judge_stub import JudgeStub
stub = JudgeStub(delay={delay}).start()
print(stub.server.server_address[1], flush=True)
while True:
    time.sleep(3600)
"""


def start_stub(delay: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-c", STUB.format(root=str(ROOT), delay=delay)],
        stdout=subprocess.PIPE,
        text=True,
    )
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}/v1"


def tasks(count: int):
    from models_gpu.judges import PairTask

    out = []
    for i in range(count):
        pair = (f"GOOD answer number {i}, with some detail.", f"weak answer {i}.")
        out.append(PairTask(f"user: question {i} about a topic", pair if i % 2 else pair[::-1]))
    return out


def stub_alone(base_url: str, requests: int, concurrency: int) -> float:
    """Requests/s the stub serves to plain clients (a fresh connection per request)."""
    from models_gpu.judges import DEFAULT_PROMPTS, pairwise_text

    host, port = base_url.split("//", 1)[1].split("/", 1)[0].split(":")
    bodies = [
        json.dumps(
            {
                "model": "stub",
                "messages": [
                    {
                        "role": "user",
                        "content": pairwise_text(DEFAULT_PROMPTS["pairwise"], t, swapped=s),
                    }
                ],
                "temperature": 0,
                "max_tokens": 16,
            }
        ).encode()
        for t in tasks(max(requests // 2, 1))
        for s in (False, True)
    ]

    def send(body: bytes) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request(
            "POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        response.read()
        connection.close()
        assert response.status == 200

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(send, bodies))
    return len(bodies) / (time.perf_counter() - started)


def judge_rate(base_url: str, pairs: int, concurrency: int) -> tuple[float, int]:
    """Judged pairs/s through Ballot's client and the outbound client, and the labels right."""
    from curation.judges.runner import outbound_transport
    from models_gpu.judges import ChatJudge, ChatJudgeConfig

    judge = ChatJudge(
        ChatJudgeConfig(base_url=base_url, model="stub", concurrency=concurrency, timeout=30),
        outbound_transport,
    )
    work = tasks(pairs)
    started = time.perf_counter()
    verdicts = judge.judge_pairs(work)
    elapsed = time.perf_counter() - started
    # tasks(): odd pairs put GOOD first (winner 0), even pairs second (winner 1).
    right = sum(v.winner == (1 if i % 2 == 0 else 0) for i, v in enumerate(verdicts))
    return pairs / elapsed, right


def local_rate(path: str | None, pairs: int, batch_size: int) -> None:
    import torch

    from models_gpu.judges import LocalJudgeConfig, LocalLMJudge
    from tests.tiny_models import build_tiny_causal_lm

    with tempfile.TemporaryDirectory() as folder:
        model_path = path or str(build_tiny_causal_lm(Path(folder) / "tiny-lm"))
        name = path or "tiny test causal LM (2 layers, hidden 16)"
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        if not torch.cuda.is_available():
            print("local LM: no CUDA; CPU only")
        for device in devices:
            judge = LocalLMJudge(
                LocalJudgeConfig(path=model_path, batch_size=batch_size, device=device)
            ).fit()
            judge.judge_pairs(tasks(batch_size))  # warm-up
            work = tasks(pairs)
            started = time.perf_counter()
            judge.judge_pairs(work)
            elapsed = time.perf_counter() - started
            print(
                f"local LM {name} on {device}, batch {batch_size}: "
                f"{pairs / elapsed:,.1f} pairs/s ({2 * pairs / elapsed:,.1f} prompts/s)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--delay", type=float, default=0.02, help="stub latency per request (s)")
    parser.add_argument("--lm-path", default=None, help="a local causal LM folder (default: tiny)")
    parser.add_argument("--lm-pairs", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip-local", action="store_true")
    args = parser.parse_args()

    import django

    django.setup()
    process, base_url = start_stub(args.delay)
    try:
        print(
            f"stub server in its own process, {args.delay * 1000:.0f} ms per request; "
            f"{args.pairs} pairs = {2 * args.pairs} requests (both orders)"
        )
        for concurrency in (1, 16):
            requests = 2 * (args.pairs if concurrency > 1 else max(args.pairs // 8, 10))
            # Best of three each: the machine is shared, and the best run is the least disturbed.
            alone = max(stub_alone(base_url, requests, concurrency) for _ in range(3))
            pairs = args.pairs if concurrency > 1 else max(args.pairs // 8, 10)
            rate, right = max(judge_rate(base_url, pairs, concurrency) for _ in range(3))
            print(
                f"concurrency {concurrency:>2}: stub alone {alone:,.1f} req/s = {alone / 2:,.1f} pairs/s; "
                f"judge {rate:,.1f} pairs/s ({rate / (alone / 2):.0%} of the stub alone); "
                f"{right}/{pairs} labels right"
            )
    finally:
        process.terminate()
        process.wait(timeout=10)
    if not args.skip_local:
        local_rate(args.lm_path, args.lm_pairs, args.batch_size)


if __name__ == "__main__":
    main()
