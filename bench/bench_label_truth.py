"""Label accuracy against votes spent: fixed overlap, adaptive overlap, majority and Dawid–Skene.

A simulated crowd labels pairwise items whose true label is known: A better, B better or a
tie (the tie is a label of its own, as in the product). Most annotators answer the truth
with their own accuracy and otherwise one of the two wrong labels at random; a share of
them (20 % by default) are spammers who answer uniformly at random.

Every item's first ``max`` votes are drawn up front from distinct annotators, so each
strategy reads a prefix of the same votes (common random numbers: the strategies differ
by what they collect, not by luck):

- ``fixed 3`` and ``fixed 5``: the first 3 or 5 votes of every item;
- ``adaptive 3-5``: the product's rule (``models_gpu.overlap.needs_another_vote``, imported,
  with the product's default agreement threshold) in rounds, as votes arrive over time:
  every item gets 3 votes, then each round gives one more vote to every item the rule
  still asks one for, until none does or it has 5;
- ``adaptive 3-5 + reliability``: the same rounds, and between rounds Dawid–Skene is refit
  on every vote so far; an item whose posterior confidence is under
  ``--confidence-threshold`` also asks for another vote (the rule's ``confidence``
  argument). Before the first round ends no fit exists; the first decision is taken after
  the 3 first votes, when one does, so the posterior from majority is never needed here.

Each strategy's votes are then aggregated by majority (ties between labels broken at
random, seeded) and by Dawid–Skene (``models_gpu.reliability``); the label accuracy
against the truth and the votes spent are printed. The aim: adaptive + reliability reaches
the accuracy of fixed 5 with majority using at most 70 % of its votes. Last, the time of one
Dawid–Skene fit over 1,000,000 votes (aim: under 30 s on 2 cores).

Usage::

    python bench/bench_label_truth.py                     # 20,000 items, 1M-vote fit
    python bench/bench_label_truth.py --items 2000 --fit-votes 100000   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models_gpu.overlap import needs_another_vote  # noqa: E402
from models_gpu.reliability import DawidSkeneConfig, fit_dawid_skene  # noqa: E402

N_CLASSES = 3  # 0: A better, 1: B better, 2: tie
AIM_VOTE_SHARE = 0.70
AIM_FIT_SECONDS = 30.0
# The product's defaults (annotation.models.Project).
DEFAULT_AGREEMENT_THRESHOLD = 0.75


@dataclass(frozen=True)
class CrowdConfig:
    """The simulated crowd. Accuracies of non-spammers are uniform in the given range."""

    n_items: int = 20_000
    n_annotators: int = 60
    spammer_share: float = 0.2
    accuracy_low: float = 0.65
    accuracy_high: float = 0.95
    tie_share: float = 0.1
    max_votes: int = 5
    seed: int = 0


@dataclass
class Crowd:
    """The truth, who the annotators are, and every item's first ``max_votes`` votes."""

    truth: np.ndarray  # (n_items,)
    accuracy: np.ndarray  # (n_annotators,): probability of answering the truth
    spammer: np.ndarray  # (n_annotators,) bool
    voters: np.ndarray  # (n_items, max_votes): the annotator of each vote, distinct per item
    votes: np.ndarray  # (n_items, max_votes): the label each of them gives


def simulate_crowd(config: CrowdConfig) -> Crowd:
    """Draw the truth, the annotators and every item's votes, seeded by ``config.seed``."""
    rng = np.random.default_rng(config.seed)
    n_spammers = round(config.spammer_share * config.n_annotators)
    spammer = np.zeros(config.n_annotators, dtype=bool)
    spammer[rng.choice(config.n_annotators, size=n_spammers, replace=False)] = True
    accuracy = rng.uniform(config.accuracy_low, config.accuracy_high, size=config.n_annotators)
    # A spammer answers one of three labels at random: right one time in three.
    accuracy[spammer] = 1.0 / N_CLASSES
    share_ab = (1.0 - config.tie_share) / 2.0
    truth = rng.choice(N_CLASSES, size=config.n_items, p=[share_ab, share_ab, config.tie_share])
    # Distinct annotators per item: the first max_votes of a random order of everyone.
    order = np.argsort(rng.random((config.n_items, config.n_annotators)), axis=1)
    voters = order[:, : config.max_votes]
    right = rng.random(voters.shape) < accuracy[voters]
    # A wrong answer is one of the two other labels, at random.
    wrong = (truth[:, None] + rng.integers(1, N_CLASSES, size=voters.shape)) % N_CLASSES
    votes = np.where(right, truth[:, None], wrong)
    return Crowd(truth=truth, accuracy=accuracy, spammer=spammer, voters=voters, votes=votes)


def vote_counts(crowd: Crowd, taken: np.ndarray) -> np.ndarray:
    """``(n_items, N_CLASSES)``: each item's label counts over its first ``taken`` votes."""
    mask = np.arange(crowd.votes.shape[1])[None, :] < taken[:, None]
    counts = np.zeros((crowd.votes.shape[0], N_CLASSES), dtype=int)
    for label in range(N_CLASSES):
        counts[:, label] = ((crowd.votes == label) & mask).sum(axis=1)
    return counts


def majority_labels(counts: np.ndarray, seed: int) -> np.ndarray:
    """The most voted label of each item; labels tied for the top are drawn at random."""
    rng = np.random.default_rng(seed)
    noise = rng.random(counts.shape)
    top = counts == counts.max(axis=1, keepdims=True)
    return np.argmax(np.where(top, noise, -1.0), axis=1)


def fit_votes(crowd: Crowd, taken: np.ndarray):
    """Dawid–Skene over every item's first ``taken`` votes."""
    mask = np.arange(crowd.votes.shape[1])[None, :] < taken[:, None]
    items = np.broadcast_to(np.arange(crowd.votes.shape[0])[:, None], crowd.votes.shape)[mask]
    return fit_dawid_skene(
        items,
        crowd.voters[mask],
        crowd.votes[mask],
        N_CLASSES,
        config=DawidSkeneConfig(),
        n_items=crowd.votes.shape[0],
        n_annotators=crowd.accuracy.size,
    )


def collect_adaptive(
    crowd: Crowd,
    *,
    min_votes: int,
    max_votes: int,
    agreement_threshold: float,
    confidence_threshold: float | None = None,
) -> tuple[np.ndarray, int]:
    """Votes taken per item by adaptive overlap, in rounds; returns (taken, rounds).

    Each round asks the product's rule about every item with the votes it has so far (and,
    with ``confidence_threshold``, the posterior confidence of a Dawid–Skene fit refit on
    every vote so far) and gives one more vote to every item it asks one for. A refit can
    reopen an item an earlier round closed, as the product's reliability job does
    (``items_low_confidence_reopen``); so rounds may exceed ``max_votes - min_votes``.
    """
    taken = np.full(crowd.votes.shape[0], min_votes)
    rounds = 0
    while True:
        counts = vote_counts(crowd, taken)
        confidence = (
            fit_votes(crowd, taken).confidence
            if confidence_threshold is not None
            else np.full(taken.size, np.nan)
        )
        wanted = np.array(
            [
                needs_another_vote(
                    {label: int(n) for label, n in enumerate(row) if n},
                    min_votes=min_votes,
                    max_votes=max_votes,
                    agreement_threshold=agreement_threshold,
                    confidence=None if np.isnan(item_confidence) else float(item_confidence),
                    confidence_threshold=confidence_threshold,
                )
                for row, item_confidence in zip(counts, confidence, strict=True)
            ],
            dtype=int,
        )
        if not wanted.any():
            return taken, rounds
        taken = taken + wanted
        rounds += 1


@dataclass
class Outcome:
    strategy: str
    votes_per_item: float
    accuracy_majority: float
    accuracy_reliability: float
    rounds: int


def evaluate(crowd: Crowd, strategy: str, taken: np.ndarray, rounds: int, seed: int) -> Outcome:
    """Accuracy of majority and of Dawid–Skene over the votes ``taken``."""
    majority = majority_labels(vote_counts(crowd, taken), seed)
    reliability = fit_votes(crowd, taken).labels
    return Outcome(
        strategy=strategy,
        votes_per_item=float(taken.mean()),
        accuracy_majority=float((majority == crowd.truth).mean()),
        accuracy_reliability=float((reliability == crowd.truth).mean()),
        rounds=rounds,
    )


@dataclass(frozen=True)
class Strategy:
    """How votes are collected: a fixed count, or adaptive overlap with its thresholds."""

    name: str
    fixed: int | None = None
    agreement_threshold: float | None = None
    confidence_threshold: float | None = None


def strategies(
    *, agreement_thresholds: list[float], confidence_thresholds: list[float], reliability_at: float
) -> list[Strategy]:
    """Fixed 3 and 5; adaptive 3-5 at each agreement threshold; and adaptive 3-5 at
    ``reliability_at`` with each confidence threshold from refit Dawid–Skene posteriors."""
    out = [Strategy("fixed 3", fixed=3), Strategy("fixed 5", fixed=5)]
    out += [
        Strategy(f"adaptive 3-5, agree>={t:g}", agreement_threshold=t) for t in agreement_thresholds
    ]
    out += [
        Strategy(
            f"adaptive 3-5, agree>={reliability_at:g}, conf>={c:g}",
            agreement_threshold=reliability_at,
            confidence_threshold=c,
        )
        for c in confidence_thresholds
    ]
    return out


def compare_strategies(config: CrowdConfig, plans: list[Strategy]) -> list[Outcome]:
    """Every strategy in ``plans`` on one simulated crowd, aggregated both ways."""
    crowd = simulate_crowd(config)
    outcomes = []
    for plan in plans:
        if plan.fixed is not None:
            taken, rounds = np.full(config.n_items, plan.fixed), 0
        else:
            assert plan.agreement_threshold is not None
            taken, rounds = collect_adaptive(
                crowd,
                min_votes=3,
                max_votes=5,
                agreement_threshold=plan.agreement_threshold,
                confidence_threshold=plan.confidence_threshold,
            )
        outcomes.append(evaluate(crowd, plan.name, taken, rounds, config.seed))
    return outcomes


def time_fit(n_votes: int, *, seed: int = 1) -> tuple[float, int, bool]:
    """Seconds of one Dawid–Skene fit over ``n_votes`` simulated votes (5 per item)."""
    per_item = 5
    config = CrowdConfig(
        n_items=n_votes // per_item, n_annotators=1000, max_votes=per_item, seed=seed
    )
    crowd = simulate_crowd(config)
    taken = np.full(config.n_items, per_item)
    started = time.perf_counter()
    fit = fit_votes(crowd, taken)
    return time.perf_counter() - started, fit.iterations, bool(fit.converged)


def _floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--annotators", type=int, default=60)
    parser.add_argument("--spammers", type=float, default=0.2, help="share of spammers")
    parser.add_argument("--seeds", type=int, default=3, help="crowds simulated (figures averaged)")
    parser.add_argument(
        "--agreement-thresholds",
        type=_floats,
        default=[DEFAULT_AGREEMENT_THRESHOLD, 0.6],
        help="adaptive overlap without a fit, one row each (0.75 is the product default)",
    )
    parser.add_argument(
        "--reliability-agreement",
        type=float,
        default=0.6,
        help="agreement threshold of the rows that also use refit Dawid-Skene confidence",
    )
    parser.add_argument("--confidence-thresholds", type=_floats, default=[0.7, 0.8, 0.9, 0.95])
    parser.add_argument("--fit-votes", type=int, default=1_000_000)
    args = parser.parse_args()

    plans = strategies(
        agreement_thresholds=args.agreement_thresholds,
        confidence_thresholds=args.confidence_thresholds,
        reliability_at=args.reliability_agreement,
    )
    print(
        f"{args.items:,} pairwise items (A, B or tie), {args.annotators} annotators "
        f"({args.spammers:.0%} spammers answering at random, the others right with a probability "
        f"uniform in [0.65, 0.95]), figures averaged over {args.seeds} seeds"
    )
    runs: dict[str, list[Outcome]] = {}
    for seed in range(args.seeds):
        config = CrowdConfig(
            n_items=args.items,
            n_annotators=args.annotators,
            spammer_share=args.spammers,
            seed=seed,
        )
        for outcome in compare_strategies(config, plans):
            runs.setdefault(outcome.strategy, []).append(outcome)
    summary: dict[str, dict[str, float]] = {}
    for strategy, outcomes in runs.items():
        summary[strategy] = {
            "votes_per_item": float(np.mean([o.votes_per_item for o in outcomes])),
            "accuracy_majority": float(np.mean([o.accuracy_majority for o in outcomes])),
            "accuracy_reliability": float(np.mean([o.accuracy_reliability for o in outcomes])),
            "rounds": float(np.mean([o.rounds for o in outcomes])),
        }
    target = summary["fixed 5"]
    print(
        f"\n{'strategy':<40}{'votes/item':>11}{'of fixed 5':>11}{'majority':>10}"
        f"{'reliability':>13}{'rounds':>8}"
    )
    for strategy, row in summary.items():
        row["vote_share"] = row["votes_per_item"] / target["votes_per_item"]
        print(
            f"{strategy:<40}{row['votes_per_item']:>11.3f}{row['vote_share']:>11.1%}"
            f"{row['accuracy_majority']:>10.4f}{row['accuracy_reliability']:>13.4f}"
            f"{row['rounds']:>8.1f}"
        )
    # The aim: adaptive overlap with reliability-weighted labels at fixed 5 + majority's
    # accuracy for at most 70 % of its votes. The cheapest adaptive row that reaches it.
    reaching = [
        (row["vote_share"], strategy)
        for strategy, row in summary.items()
        if strategy.startswith("adaptive")
        and row["accuracy_reliability"] >= target["accuracy_majority"]
    ]
    if reaching:
        share, cheapest = min(reaching)
        met = share <= AIM_VOTE_SHARE
        print(
            f"\ncheapest adaptive setting whose reliability-weighted accuracy reaches fixed 5 + "
            f"majority ({target['accuracy_majority']:.4f}): {cheapest}, accuracy "
            f"{summary[cheapest]['accuracy_reliability']:.4f} with {share:.1%} of its votes"
        )
    else:
        share, cheapest, met = float("nan"), None, False
        print("\nno adaptive setting reaches fixed 5 + majority's accuracy")
    print(
        f"aim (that accuracy with at most {AIM_VOTE_SHARE:.0%} of fixed 5's votes): "
        f"{'met' if met else 'not met'}"
    )

    seconds, iterations, converged = time_fit(args.fit_votes)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"\nDawid-Skene fit of {args.fit_votes:,} votes ({args.fit_votes // 5:,} items, 1,000 "
        f"annotators): {seconds:.2f} s, {iterations} iterations, "
        f"{'converged' if converged else 'not converged'}, on {cores} cores; "
        f"aim under {AIM_FIT_SECONDS:.0f} s: {'met' if seconds < AIM_FIT_SECONDS else 'not met'}"
    )
    print(
        "BENCH_JSON "
        + json.dumps(
            {
                "strategies": summary,
                "cheapest_reaching": cheapest,
                "vote_share": share,
                "aim_met": bool(met),
                "fit_votes": args.fit_votes,
                "fit_seconds": seconds,
                "fit_iterations": iterations,
                "fit_converged": converged,
            }
        )
    )


if __name__ == "__main__":
    main()
