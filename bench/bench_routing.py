"""Routing-job time without embeddings: instance features and each strategy on N items.

Usage::

    python bench/bench_routing.py                     # 10,000 items, 2,000 doubly labelled
    python bench/bench_routing.py --items 2000 --labelled 0.5

Embeddings are random unit vectors (384 dimensions, MiniLM's width) because the
embedding step is measured by ``bench_curation_core.py``; texts are synthetic with
realistic lengths (20–400 words), so the lexical features (token overlap, ROUGE-L)
cost what they would. The judge errs where its two orders disagree and on a third of
the long prompts. Prints seconds per stage and per strategy.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models_gpu.config import RoutingConfig  # noqa: E402
from models_gpu.routing import (  # noqa: E402
    JudgeSignals,
    PairEmbeddings,
    PrototypeTagger,
    instance_features,
    route_items,
)

VOCABULARY = [f"w{i}" for i in range(3000)]


def synthetic(n: int, labelled: float, seed: int):
    rng = np.random.default_rng(seed)

    def text(low: int, high: int) -> str:
        return " ".join(rng.choice(VOCABULARY, size=int(rng.integers(low, high))))

    prompts = [text(5, 120) for _ in range(n)]
    responses_a = [text(20, 400) for _ in range(n)]
    responses_b = [text(20, 400) for _ in range(n)]
    dim = 384
    emb = PairEmbeddings(*(rng.normal(size=(n, dim)).astype(np.float32) for _ in range(3)))
    human = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    inconsistent = rng.random(n) < 0.15
    long = np.array([len(p) > 400 for p in prompts])
    wrong = inconsistent | (long & (rng.random(n) < 0.33))
    ai = np.where(inconsistent, 0.0, np.where(wrong, -human, human))
    human[rng.random(n) >= labelled] = np.nan
    signals = JudgeSignals(
        position_inconsistent=inconsistent,
        abstained=np.zeros(n, bool),
        confidence=np.where(inconsistent, 0.5, 1.0),
    )
    return prompts, responses_a, responses_b, emb, human, ai, signals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--labelled", type=float, default=0.2, help="share with a human label")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategies", default="prior,error,gain")
    args = parser.parse_args()

    prompts, a, b, emb, human, ai, signals = synthetic(args.items, args.labelled, args.seed)
    config = RoutingConfig(seed=args.seed)
    rng = np.random.default_rng(1)
    tagger = PrototypeTagger().fit(lambda texts: rng.normal(size=(len(texts), 384)))
    started = time.perf_counter()
    features = instance_features(
        prompts, a, b, emb.prompt, emb.a, emb.b, tagger=tagger, signals=signals, config=config
    )
    feature_seconds = time.perf_counter() - started
    print(
        f"items {args.items}, doubly labelled {int(np.isfinite(human).sum())}, "
        f"feature columns {len(features.names)}"
    )
    print(f"features (lexical, clusters, tags, judge signals): {feature_seconds:.2f} s")
    for strategy in args.strategies.split(","):
        started = time.perf_counter()
        result = route_items(features, human, ai, emb, config=replace(config, strategy=strategy))
        seconds = time.perf_counter() - started
        curve = {
            (p["strategy"], p["budget"]): p["label_accuracy"]
            for p in result.curve
            if p["budget"] == 0.25
        }
        at_25 = ", ".join(f"{s} {100 * v:.1f}%" for (s, _), v in sorted(curve.items()))
        print(
            f"strategy {strategy:<6} route + curve: {seconds:7.2f} s"
            f"  (total without embeddings {seconds + feature_seconds:7.2f} s)"
            + (f"  label accuracy at 25%: {at_25}" if at_25 else "")
        )


if __name__ == "__main__":
    main()
