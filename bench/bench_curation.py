"""End-to-end curation throughput through the database: import → pairs → FiFA job, cold and warm.

Usage::

    python bench/bench_curation.py --sizes 2000            # a few minutes on 2 CPU cores
    python bench/bench_curation.py --sizes 10000 50000     # long on CPU; minutes on a GPU worker

For each size it creates a scratch SQLite database and storage root, imports N synthetic
preference pairs (HH-RLHF harmless with ~5% of words swapped, so every text is distinct),
runs a FiFA job twice (cold caches, then warm) and prints embedding texts/s, scoring
pairs/s excluding embeddings, end-to-end seconds, the warm/cold ratio and the share of
the cold run that is not the embedding forward pass. ``bench/bench_curation_core.py``
measures the numerical core alone and projects sizes too large to embed on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def run_size(n: int, seed: int, hh: Path) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="ballot-bench-curation-"))
    os.environ["DATABASE_URL"] = f"sqlite:///{scratch / 'db.sqlite3'}"
    os.environ["BALLOT_STORAGE_ROOT"] = str(scratch / "storage")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django

    django.setup()
    from bench_curation_core import load_hh, synthesize
    from django.core.management import call_command

    from annotation.services import items_import, project_create
    from curation.jobs.kinds.fifa import run as run_scoring
    from curation.models import Job
    from curation.pairs import iter_preference_pairs
    from tests.factories import UserFactory

    call_command("migrate", verbosity=0)
    prompts, chosen, rejected = synthesize(load_hh(hh), n, seed)
    lines = [
        json.dumps({"prompt": p, "chosen": c, "rejected": r})
        for p, c, r in zip(prompts, chosen, rejected, strict=True)
    ]
    project = project_create(user=UserFactory(username="bench"), name=f"bench {n}")
    started = time.perf_counter()
    items_import(project=project, lines=lines, fmt="trl")
    import_seconds = time.perf_counter() - started
    started = time.perf_counter()
    pairs = sum(1 for _ in iter_preference_pairs(project=project))
    pairs_seconds = time.perf_counter() - started
    params = {
        "alpha": 1.0,
        "gamma": 1.0,
        "k": 5,
        "keep_fraction": 0.3,
        "keep_top": None,
        "greedy": True,
        "folds": 5,
        "epochs": 12,
        "hidden": 128,
        "seed": 0,
        "suspect_threshold": 0.7,
        "shards": 1,
        "batch_size": 64,
    }
    runs = []
    for label in ("cold", "warm"):
        job = Job.objects.create(project=project, kind="fifa", params=params, status="running")
        started = time.perf_counter()
        result = run_scoring(job, lambda fraction, message: None)
        runs.append((label, time.perf_counter() - started, result["timings"]))
    cold, warm = runs[0], runs[1]
    texts = 3 * pairs
    embed_seconds = cold[2]["embed"]
    non_embed = cold[1] - embed_seconds
    return {
        "pairs": pairs,
        "import_items_per_s": round(n / import_seconds),
        "pair_building_pairs_per_s": round(pairs / pairs_seconds),
        "embedding_texts_per_s": round(texts / embed_seconds, 1),
        "scoring_pairs_per_s_excluding_embeddings": round(pairs / max(non_embed, 1e-9), 1),
        "end_to_end_cold_s": round(cold[1], 2),
        "end_to_end_warm_s": round(warm[1], 2),
        "warm_speedup": round(cold[1] / warm[1], 1),
        "non_embedding_share_of_cold": round(non_embed / cold[1], 3),
        "cold_stage_seconds": {k: round(v, 2) for k, v in cold[2].items()},
        "warm_stage_seconds": {k: round(v, 2) for k, v in warm[2].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--hh",
        type=Path,
        default=ROOT.parent
        / "shared"
        / "datasets"
        / "hh_rlhf_harmless"
        / "harmless-base_test.jsonl",
    )
    args = parser.parse_args()
    if not args.hh.exists():
        sys.exit(f"HH-RLHF file not found: {args.hh} (pass --hh)")
    print(
        "Aims: non-embedding work < 10% of end-to-end; warm re-run >= 20x faster; > 10,000 texts/s on a GPU."
    )
    for n in args.sizes:
        # Each size in a fresh interpreter: Django is set up once per process.
        if len(args.sizes) > 1:
            import subprocess

            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--sizes",
                    str(n),
                    "--seed",
                    str(args.seed),
                    "--hh",
                    str(args.hh),
                ],
                check=True,
            )
            continue
        figures = run_size(n, args.seed, args.hh)
        print(f"\n{n:,} pairs")
        for key, value in figures.items():
            print(f"  {key:<42} {value}")
        print("BENCH_JSON " + json.dumps({"size": n, **figures}))


if __name__ == "__main__":
    main()
