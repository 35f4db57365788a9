"""Throughput of the curation core (models_gpu): embeddings, reward + FiFA, cache.

Usage::

    python bench/bench_curation_core.py                       # full: 10k and 50k pairs
    python bench/bench_curation_core.py --sizes 500 --embed-sample 256   # quick

Pairs are drawn from HH-RLHF harmless with ~5% of words swapped for random vocabulary,
so every text is distinct and has to be embedded. Sizes above ``--embed-limit`` are not
embedded for real (150k MiniLM forwards take most of an hour on 2 CPU cores): their
embeddings are real HH embeddings plus noise, the cache is filled with them, and the
cold embedding time is projected from the measured texts/s. Output says which is which.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models_gpu import (  # noqa: E402
    EmbeddingCache,
    EmbeddingConfig,
    FiFAConfig,
    OutOfFoldCache,
    PipelineConfig,
    RewardConfig,
    embed_texts,
    get_embedder,
    model_fingerprint,
    score_pairs,
    text_digests,
)
from models_gpu.config import PRECISIONS  # noqa: E402

SEPARATOR = "\n\nAssistant:"


def load_hh(path: Path) -> list[tuple[str, str, str]]:
    rows = []
    for line in path.open():
        row = json.loads(line)
        cut_c, cut_r = row["chosen"].rfind(SEPARATOR), row["rejected"].rfind(SEPARATOR)
        rows.append(
            (
                row["chosen"][:cut_c],
                row["chosen"][cut_c + len(SEPARATOR) :].strip(),
                row["rejected"][cut_r + len(SEPARATOR) :].strip(),
            )
        )
    return rows


def synthesize(rows: list[tuple[str, str, str]], n: int, seed: int) -> tuple[list[str], ...]:
    """``n`` distinct pairs: HH rows with ~5% of their words replaced at random."""
    rng = np.random.default_rng(seed)
    vocabulary = sorted({w for row in rows[:300] for w in row[1].split()})
    out: tuple[list[str], list[str], list[str]] = ([], [], [])
    for i, source in enumerate(rng.integers(0, len(rows), n)):
        for column, text in zip(out, rows[source], strict=True):
            words = text.split(" ")
            for j in np.flatnonzero(rng.random(len(words)) < 0.05):
                words[j] = vocabulary[rng.integers(len(vocabulary))]
            column.append(" ".join(words) + f" #{i}")
    return out


def report_run(label: str, n: int, timings: dict[str, float], forward: float) -> float:
    total = sum(timings.values())
    core = total - timings["embed"]
    print(
        f"  {label:<5} total {total:8.2f}s | embed stage {timings['embed']:8.2f}s "
        f"(model forward {forward:8.2f}s) | reward {timings['reward']:.2f}s "
        f"quality {timings['quality']:.2f}s fifa {timings['fifa']:.2f}s "
        f"suspects {timings['suspects']:.3f}s | core {n / core:,.0f} pairs/s"
    )
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("/work/shared/datasets/hh_rlhf_harmless/harmless-base_test.jsonl"),
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--embed-sample", type=int, default=512, help="texts for texts/s")
    parser.add_argument(
        "--embed-limit", type=int, default=1_000, help="largest size embedded for real"
    )
    parser.add_argument(
        "--max-length", type=int, default=None, help="token limit (default: model's)"
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="the encoder's precision (auto: bfloat16 where the device computes it natively)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows = load_hh(args.data)
    embedding = EmbeddingConfig(max_length=args.max_length, precision=args.precision)
    config = PipelineConfig(
        embedding=embedding, reward=RewardConfig(seed=args.seed), fifa=FiFAConfig(seed=args.seed)
    )
    embedder = get_embedder(embedding)

    sample = [
        t for triple in synthesize(rows, args.embed_sample // 3 + 1, args.seed + 1) for t in triple
    ]
    embed_texts(sample[:8], config=embedding)  # load the model outside the timing
    began = time.perf_counter()
    embed_texts(sample[: args.embed_sample], config=embedding)
    texts_per_second = args.embed_sample / (time.perf_counter() - began)
    print(
        f"device {embedder.device_}, {embedder.dtype_}; "
        f"embedding throughput {texts_per_second:,.1f} texts/s"
    )

    for n in args.sizes:
        prompts, chosen, rejected = synthesize(rows, n, args.seed)
        with tempfile.TemporaryDirectory() as root:
            cache = EmbeddingCache(Path(root) / "embeddings")
            oof_cache = OutOfFoldCache(Path(root) / "oof")
            projected = n > args.embed_limit
            print(f"\n{n:,} pairs ({'cold embedding projected' if projected else 'measured'}):")
            projected_forward = 0.0
            if projected:
                # Fill the cache as a cold run would, with noisy copies of real embeddings.
                pool = embed_texts([r[i] for r in rows[:300] for i in range(3)], config=embedding)
                rng = np.random.default_rng(args.seed)
                texts = list(dict.fromkeys([*prompts, *chosen, *rejected]))
                vectors = pool[rng.integers(0, len(pool), len(texts))]
                vectors = vectors + 0.05 * rng.standard_normal(vectors.shape).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                began = time.perf_counter()
                cache.put(model_fingerprint(embedding), text_digests(texts), vectors)
                put_seconds = time.perf_counter() - began
                projected_forward = len(texts) / texts_per_second
            forward_before = embedder.forward_seconds_
            scoring = score_pairs(
                prompts,
                chosen,
                rejected,
                config=config,
                embedding_cache=cache,
                oof_cache=oof_cache,
            )
            first_forward = embedder.forward_seconds_ - forward_before
            first = report_run(
                "cold" if not projected else "warm", n, scoring.timings, first_forward
            )
            if projected:
                cold_total = first + projected_forward + put_seconds
                cold_embed = scoring.timings["embed"] + projected_forward + put_seconds
                warm_total, warm_embed = first, scoring.timings["embed"]
                forward = projected_forward
                print(
                    f"  cold  total {cold_total:8.2f}s projected ({projected_forward:.0f}s of model forward at {texts_per_second:.1f} texts/s)"
                )
            else:
                cold_total, cold_embed, forward = first, scoring.timings["embed"], first_forward
                again = score_pairs(
                    prompts,
                    chosen,
                    rejected,
                    config=config,
                    embedding_cache=cache,
                    oof_cache=oof_cache,
                )
                warm_total = report_run("warm", n, again.timings, 0.0)
                warm_embed = again.timings["embed"]
            print(
                f"  cached re-run: end-to-end {cold_total / warm_total:,.1f}x faster, "
                f"embedding stage {cold_embed / warm_embed:,.0f}x faster"
            )
            print(
                f"  share of cold end-to-end that is not the model forward pass: {1 - forward / cold_total:.1%}"
            )


if __name__ == "__main__":
    main()
