"""SAE explanations (WIMHF): training time, and the share of the preference signal explained.

1. **Training time** of the signed BatchTopK SAE (``models_gpu.sae.train_sae``, default
   ``SAEConfig``: 32 features, K = 4) on 10,000 and 100,000 pairs once the embeddings exist:
   Δ rows are random 384-dimensional vectors (MiniLM's width; the time per step does not
   depend on what the rows hold, the number of epochs early stopping runs a little does),
   20 % held out. On the CPU (aim: 100,000 pairs in under 60 s on 2 cores), and on CUDA
   when present.
2. **Share of the signal explained** on two real datasets, embedded with MiniLM (cached
   under ``--cache``): ``(AUC_sparse − 0.5) / (AUC_full − 0.5)`` on held-out prompts, with
   the length-only and full probes' AUCs, for sparse probes of 5 and 10 features.
   ``hh_rlhf_harmless`` (chosen / rejected, shown in a random order) and
   ``tulu1_human_eval`` (graded pairwise judgements by 16 annotators, ties dropped, repeated
   judgements of one instance kept as separate judgements of one pair).

Usage::

    python bench/bench_sae.py                         # everything
    python bench/bench_sae.py --sizes 10000 --hh 1000 --tulu 0   # quick

Prints one line per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models_gpu import (  # noqa: E402
    EmbeddingCache,
    EmbeddingConfig,
    ExplainConfig,
    PreferencePair,
    SAEConfig,
    embed_texts,
    explain_preferences,
    train_sae,
)

DATASETS = Path(
    os.environ.get("BALLOT_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets")
)
SEPARATOR = "\n\nAssistant:"
AIM_SECONDS = 60.0


def time_training(n_pairs: int, device: str, *, every_epoch: bool = False, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    delta = rng.normal(size=(n_pairs, 384)).astype(np.float32)
    held = rng.random(n_pairs) < 0.2
    config = SAEConfig(device=device)
    if every_epoch:  # the worst case: early stopping never triggers
        config = replace(config, patience=config.max_epochs)
    if device == "cuda":
        train_sae(delta[:1000], delta[:100], replace(config, max_epochs=1))  # CUDA start-up
        torch.cuda.synchronize()
    start = time.perf_counter()
    fit = train_sae(delta[~held], delta[held], config)
    seconds = time.perf_counter() - start
    epochs = len(fit.history)
    aim = f" (aim < {AIM_SECONDS:.0f} s)" if n_pairs >= 100_000 and device == "cpu" else ""
    mode = "all epochs" if every_epoch else "early stopping"
    print(
        f"SAE training {device}, {mode}: {n_pairs:,} pairs in {seconds:.1f} s{aim}; "
        f"{epochs} epochs ({seconds / epochs:.2f} s each, best {fit.best_epoch}), "
        f"held-out NMSE {fit.history[fit.best_epoch - 1]['held_out_nmse']:.3f}, "
        f"torch threads {config.threads}"
    )


def hh_pairs(limit: int, seed: int) -> list[PreferencePair]:
    path = DATASETS / "hh_rlhf_harmless" / "harmless-base_test.jsonl"
    rng = np.random.default_rng(seed)
    pairs = []
    with path.open() as handle:
        for i, line in enumerate(handle):
            if i == limit:
                break
            row = json.loads(line)
            cut = row["chosen"].rfind(SEPARATOR)
            prompt, chosen = row["chosen"][:cut], row["chosen"][cut + len(SEPARATOR) :].strip()
            rejected = row["rejected"][row["rejected"].rfind(SEPARATOR) + len(SEPARATOR) :].strip()
            if rng.random() < 0.5:
                pairs.append(PreferencePair(str(i), prompt, chosen, rejected, 1))
            else:
                pairs.append(PreferencePair(str(i), prompt, rejected, chosen, 0))
    return pairs


def tulu_pairs(limit: int) -> list[PreferencePair]:
    path = DATASETS / "tulu1_human_eval" / "eval_annotations_tulu_1.jsonl"
    pairs = []
    with path.open() as handle:
        for line in handle:
            row = json.loads(line)
            preference = row["preference"] or "tie"
            if preference == "tie":
                continue
            pairs.append(
                PreferencePair(
                    pair_id=str(row["id"]),
                    prompt=row["prompt"],
                    text_a=row["completion_a"] or "",
                    text_b=row["completion_b"] or "",
                    label=1 if preference.startswith("a-") else 0,
                    annotator=row["evaluator"] or "",
                )
            )
            if len(pairs) == limit:
                break
    return pairs


def share_explained(name: str, pairs: list[PreferencePair], cache: Path) -> None:
    embedding = EmbeddingConfig()
    store = EmbeddingCache(cache)

    def embed(texts: list[str]) -> np.ndarray:
        return embed_texts(texts, config=embedding, cache=store)

    start = time.perf_counter()
    explanation = explain_preferences(pairs, embed, ExplainConfig())
    seconds = time.perf_counter() - start
    probes = explanation.probes
    shares = ", ".join(
        f"k={k}: AUC {probes.auc_sparse[k]:.3f} share {probes.share_explained[k]:.2f}"
        if probes.share_explained[k] is not None
        else f"k={k}: AUC {probes.auc_sparse[k]:.3f} share n/a"
        for k in probes.auc_sparse
    )
    significant = sum(report.p_bonferroni < 0.05 for report in explanation.features)
    print(
        f"{name}: {explanation.n_pairs} pairs, {explanation.n_judgements} judgements "
        f"({explanation.n_held_out} pairs held out); AUC length only {probes.auc_length_only:.3f}, "
        f"full {probes.auc_full:.3f}; {shares}; {significant} significant features; "
        f"{seconds:.1f} s with embeddings (cached after the first run)"
    )
    for report in explanation.features[:3]:
        words = ", ".join(g["ngram"] for g in report.ngrams_high[:4])
        print(
            f"  feature {report.index}: coef {report.coef:+.2f} "
            f"[{report.ci_low:+.2f}, {report.ci_high:+.2f}], p_bonf {report.p_bonferroni:.2g}, "
            f"prevalence {report.prevalence:.2f}; high side: {words}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--hh", type=int, default=2312, help="HH-RLHF pairs (0 skips)")
    parser.add_argument("--tulu", type=int, default=2000, help="Tulu judgements (0 skips)")
    parser.add_argument("--cache", type=Path, default=Path("var/bench-sae-embeddings"))
    args = parser.parse_args()

    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    for device in devices:
        for n_pairs in args.sizes:
            for every_epoch in (False, True):
                time_training(n_pairs, device, every_epoch=every_epoch)
    if not torch.cuda.is_available():
        print("CUDA not present: no GPU line")
    for name, count, load in (
        ("hh_rlhf_harmless", args.hh, hh_pairs),
        ("tulu1_human_eval", args.tulu, tulu_pairs),
    ):
        if count <= 0:
            continue
        if not (DATASETS / name).exists():
            print(f"{name}: not found under {DATASETS}; skipped")
            continue
        pairs = load(count, 0) if load is hh_pairs else load(count)
        share_explained(name, pairs, args.cache)


if __name__ == "__main__":
    main()
