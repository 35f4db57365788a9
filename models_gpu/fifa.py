"""FiFA-style importance scores and diversity-aware subset selection.

Importance of pair i (after FiFA, "Automated Feedback Filtering", Yang et al. 2024)::

    s_i = m_i + α · q_i + γ · log ρ_k(i)

``m`` is the proxy reward margin (out-of-fold, so a pair never grades itself), ``q`` a
text-quality score in [0, 1] and ``ρ_k(i)`` the distance from the pair's prompt embedding
to its k-th nearest prompt: pairs from dense, over-represented regions lose importance.

Beyond the paper, selection is greedy: a candidate's distance term becomes
``min(ρ_k(i), distance to the nearest already-kept prompt)``, so a second copy of a kept
prompt loses its diversity, and one within ``duplicate_radius`` is never kept at all.
The term only shrinks as the kept set grows, so lazy greedy with a max-heap is exact:
a popped candidate is re-scored against the prompts kept since its last evaluation, and
kept only if it still beats the best stale upper bound.

Greedy selection can run out before it reaches the size asked for: with few distinct
prompts (a demo project: 89 pairs over 6 prompts), every pair whose prompt repeats a kept
one is a duplicate, so only 6 pairs are kept whatever the fraction. ``when_short`` says
what happens then: ``"fill"`` (the default) tops the selection up with the remaining pairs
by importance, after the diverse ones; ``"stop"`` keeps only the diverse pairs. Either way
:attr:`FiFAResult.short_reason` says why the diverse selection fell short.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models_gpu.config import FiFAConfig
from models_gpu.entropy import distance_floor, knn_distances, knn_entropy


@dataclass
class FiFAResult:
    """Per-pair FiFA scores and the selection.

    Attributes:
        importance: ``margin + α·quality + γ·diversity`` with diversity as used.
        quality: Text quality in [0, 1].
        diversity: ``log ρ`` used in the final decision on each pair (for greedy: at the
            time it was kept, or its last evaluation if it was not).
        margin: Proxy reward margin.
        knn_distance: Static ``ρ_k`` of each prompt among all prompts.
        kept: Boolean mask of kept pairs.
        kept_order: Indices of kept pairs in the order they were chosen.
        requested: How many pairs were asked for (``keep_top`` or the fraction).
        kept_diverse: How many the (greedy) diversity selection kept.
        filled: How many were added by importance after it fell short.
        short_reason: Why the diversity selection kept fewer than requested, or None.
    """

    importance: np.ndarray
    quality: np.ndarray
    diversity: np.ndarray
    margin: np.ndarray
    knn_distance: np.ndarray
    kept: np.ndarray
    kept_order: np.ndarray
    requested: int = 0
    kept_diverse: int = 0
    filled: int = 0
    short_reason: str | None = None


def fifa_select(
    margins: np.ndarray,
    quality: np.ndarray,
    prompt_emb: np.ndarray,
    *,
    config: FiFAConfig,
) -> FiFAResult:
    """Score every pair and select the most important, diverse subset."""
    n = len(margins)
    margins = np.asarray(margins, dtype=np.float64)
    quality = np.asarray(quality, dtype=np.float64)
    n_keep = config.keep_top if config.keep_top is not None else round(config.keep_fraction * n)
    n_keep = int(min(max(n_keep, 0), n))
    if n > config.k:
        rho = knn_distances(prompt_emb, config.k)[:, config.k - 1].astype(np.float64)
    else:
        rho = np.ones(n)
    floor = distance_floor(rho)
    diversity = np.log(np.maximum(rho, floor))
    base = margins + config.alpha * quality
    importance = base + config.gamma * diversity
    tiebreak = np.random.default_rng(config.seed).random(n)
    short_reason = None
    filled = 0
    if config.greedy:
        order = _lazy_greedy(base, diversity, prompt_emb, n_keep, floor, tiebreak, config)
        importance = base + config.gamma * diversity
        kept_diverse = len(order)
        if kept_diverse < n_keep:
            short_reason = (
                f"diversity selection kept {kept_diverse} of the {n_keep} pairs asked for: "
                f"every other pair's prompt lies within duplicate_radius "
                f"({config.duplicate_radius}) of a kept prompt, so the data has about "
                f"{kept_diverse} distinct prompts"
            )
            if config.when_short == "fill":
                chosen = np.zeros(n, dtype=bool)
                chosen[order] = True
                rest = [i for i in np.lexsort((tiebreak, -importance)) if not chosen[i]]
                extra = rest[: n_keep - kept_diverse]
                filled = len(extra)
                order = [*order, *(int(i) for i in extra)]
                short_reason += f"; filled the other {filled} by importance (when_short='fill')"
            else:
                short_reason += "; kept only those (when_short='stop')"
    else:
        order = np.lexsort((tiebreak, -importance))[:n_keep]
        kept_diverse = len(order)
    kept = np.zeros(n, dtype=bool)
    kept[order] = True
    return FiFAResult(
        importance=importance,
        quality=quality,
        diversity=diversity,
        margin=margins,
        knn_distance=rho,
        kept=kept,
        kept_order=np.asarray(order, dtype=np.int64),
        requested=n_keep,
        kept_diverse=kept_diverse,
        filled=filled,
        short_reason=short_reason,
    )


def _lazy_greedy(
    base: np.ndarray,
    diversity: np.ndarray,
    prompt_emb: np.ndarray,
    n_keep: int,
    floor: float,
    tiebreak: np.ndarray,
    config: FiFAConfig,
) -> list[int]:
    """Greedy selection; updates ``diversity`` in place to the values used."""
    emb = np.ascontiguousarray(prompt_emb, dtype=np.float32)
    sq_norms = np.einsum("ij,ij->i", emb, emb)
    kept_emb = np.empty((n_keep, emb.shape[1]), dtype=np.float32)
    kept_sq = np.empty(n_keep, dtype=np.float32)
    nearest_kept = np.full(len(base), np.inf)
    evaluated_at = np.zeros(len(base), dtype=np.int64)  # kept-set size at last evaluation
    static_rho = np.exp(diversity)
    heap = [
        (-(b + config.gamma * d), t, i)
        for i, (b, d, t) in enumerate(zip(base, diversity, tiebreak, strict=True))
    ]
    heapq.heapify(heap)
    order: list[int] = []
    while heap and len(order) < n_keep:
        _, tie, i = heapq.heappop(heap)
        n_kept = len(order)
        if evaluated_at[i] < n_kept:
            new = kept_emb[evaluated_at[i] : n_kept]
            sq = sq_norms[i] + kept_sq[evaluated_at[i] : n_kept] - 2.0 * (new @ emb[i])
            nearest_kept[i] = min(nearest_kept[i], float(np.sqrt(max(sq.min(), 0.0))))
            evaluated_at[i] = n_kept
            rho = max(min(static_rho[i], nearest_kept[i]), floor)
            diversity[i] = np.log(rho)
            if nearest_kept[i] <= config.duplicate_radius:
                continue
            score = base[i] + config.gamma * diversity[i]
            # Still at least as good as every other (upper-bound) score: keep it now.
            if heap and -score > heap[0][0]:
                heapq.heappush(heap, (-score, tie, i))
                continue
        kept_emb[n_kept] = emb[i]
        kept_sq[n_kept] = sq_norms[i]
        order.append(i)
    return order


@dataclass
class SelectionSummary:
    """Kept set versus the full set and a random subset of the same size."""

    n_kept: int
    mean_margin_kept: float
    mean_margin_full: float
    mean_margin_random: float
    entropy_kept: float
    entropy_full: float
    entropy_random: float


def selection_summary(
    result: FiFAResult, prompt_emb: np.ndarray, *, k: int = 5, seed: int = 0
) -> SelectionSummary:
    """Mean margin and prompt kNN entropy (nats) of kept, full and random (seeded) sets."""
    n = len(result.margin)
    kept = result.kept_order
    random_subset = np.random.default_rng(seed).choice(n, size=len(kept), replace=False)

    def entropy(indices: np.ndarray) -> float:
        return knn_entropy(prompt_emb[indices], k) if len(indices) > k else float("nan")

    return SelectionSummary(
        n_kept=len(kept),
        mean_margin_kept=float(result.margin[kept].mean()) if len(kept) else float("nan"),
        mean_margin_full=float(result.margin.mean()),
        mean_margin_random=float(result.margin[random_subset].mean())
        if len(kept)
        else float("nan"),
        entropy_kept=entropy(kept),
        entropy_full=entropy(np.arange(n)),
        entropy_random=entropy(random_subset),
    )


_WORD = re.compile(r"\w+", re.UNICODE)
# Typical UTF-8-read-as-Latin-1 sequences, the replacement character and C0 controls.
_BROKEN = re.compile(r"Ã[\x80-\xbf]|â€|Â[\xa0-\xbf]|ðŸ|\ufffd|[\x00-\x08\x0b\x0c\x0e-\x1f]")
_CHAR_RUN = re.compile(r"(.)\1{9,}")
# Canned assistant disclaimers, not refusals as such: in harmlessness data a plain
# "I won't help with that" is often the preferred answer and must not be penalised.
_BOILERPLATE = re.compile(
    r"as an ai (language )?model|i(?:'m| am) (?:just |only )?an ai\b|"
    r"as a large language model|i do not have personal (?:opinions|feelings|beliefs)",
    re.IGNORECASE,
)


def text_quality(texts: Sequence[str]) -> np.ndarray:
    """Heuristic text quality in [0, 1]: the product of four factors.

    - length: empty text scores 0, under 5 words ramps up linearly, over 2,000 words
      decays as 2000 / words (rambling), floor 0.3;
    - repetition: share of distinct word trigrams, mapped so ≥ 0.7 is clean and ≤ 0.2
      (a looping generation) is 0; a run of 10+ identical characters costs 0.3;
    - broken encoding: mojibake sequences, U+FFFD and control characters per 100
      characters; one per 200 characters gives 0.8, one per 20 gives 0.29;
    - boilerplate: canned "as an AI language model" disclaimers multiply by 0.6.
    """
    scores = np.empty(len(texts), dtype=np.float64)
    for row, text in enumerate(texts):
        words = _WORD.findall(text.lower())
        n_words = len(words)
        if n_words == 0:
            scores[row] = 0.0
            continue
        length = min(1.0, n_words / 5) if n_words < 2000 else max(0.3, 2000 / n_words)
        repetition = 1.0
        if n_words >= 8:
            trigrams = list(zip(words, words[1:], words[2:], strict=False))
            distinct = len(set(trigrams)) / len(trigrams)
            repetition = float(np.clip((distinct - 0.2) / 0.5, 0.0, 1.0))
        if _CHAR_RUN.search(text):
            repetition *= 0.7
        broken_rate = 100 * len(_BROKEN.findall(text)) / max(len(text), 1)
        encoding = 1.0 / (1.0 + 0.5 * broken_rate)
        boilerplate = 0.6 if _BOILERPLATE.search(text) else 1.0
        scores[row] = length * repetition * encoding * boilerplate
    return scores
