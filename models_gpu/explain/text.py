"""Contrastive n-grams and length and format rates of texts."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np


def word_count(text: str) -> int:
    return len(text.split())


_TOKEN = re.compile(r"\w+")
_LIST = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S", re.MULTILINE)
_CODE = re.compile(r"```|^(?: {4}|\t)\S", re.MULTILINE)
_HEADING = re.compile(r"^\s*#{1,6}\s+\S|^\s*\*\*[^*\n]+\*\*\s*$", re.MULTILINE)
_REFUSAL = re.compile(
    r"\b(?:I(?:'m| am) (?:sorry|not able|unable)|I can(?:no|')t|I won't|I will not|"
    r"as an AI|I'm not comfortable|I do not feel comfortable|I must decline)\b",
    re.IGNORECASE,
)
_QUESTION = re.compile(r"\?\s*$|\?[\"')\]]?\s*$")
_PRIOR_STRENGTH = 500.0


def _tokens(text: str) -> list[tuple[str, int, int]]:
    return [(m.group().lower(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def ngram_counts(text: str, longest: int) -> Counter[str]:
    """The distinct n-grams of ``text`` (each counted once: presence, not frequency)."""
    words = [token for token, _, _ in _tokens(text)]
    return Counter(
        {
            " ".join(words[start : start + n]): 1
            for n in range(1, longest + 1)
            for start in range(len(words) - n + 1)
        }
    )


def ngram_spans(text: str, ngrams: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of ``text`` where any of ``ngrams`` occurs (merged, sorted).

    Matching follows the n-gram tokenisation (lower-cased ``\\w+`` words), so
    ``ngram_spans("I hope this helps!", ["this helps"]) == [(7, 17)]``.
    """
    tokens = _tokens(text)
    words = [token for token, _, _ in tokens]
    spans: list[tuple[int, int]] = []
    for ngram in ngrams:
        target = ngram.lower().split()
        n = len(target)
        if n == 0:
            continue
        for start in range(len(words) - n + 1):
            if words[start : start + n] == target:
                spans.append((tokens[start][1], tokens[start + n - 1][2]))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def contrastive_ngrams(
    high: Sequence[str], low: Sequence[str], prior: Counter[str], longest: int, top: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Log-odds ratios with an informative Dirichlet prior (Monroe, Colaresi & Quinn 2008).

    Counts are of texts containing the n-gram, not of occurrences: one long text repeating
    "the" must not outweigh a phrase every high-side text carries once.

    ``δ_w = log((y_w^H + α_w) / (n^H + α_0 − y_w^H − α_w)) − (the same for L)``, with the
    prior ``α`` the background counts of all texts scaled to ``α_0``; ``z = δ / √(1/(y^H+α)
    + 1/(y^L+α))``. The prior shrinks rare n-grams, so a word seen twice does not top the list.
    """
    high_counts: Counter[str] = Counter()
    low_counts: Counter[str] = Counter()
    for text in high:
        high_counts.update(ngram_counts(text, longest))
    for text in low:
        low_counts.update(ngram_counts(text, longest))
    vocabulary = [
        w for w in set(high_counts) | set(low_counts) if high_counts[w] + low_counts[w] >= 3
    ]
    if not vocabulary:
        return [], []
    prior_total = max(sum(prior.values()), 1)
    alpha = np.array([max(prior[w], 1) for w in vocabulary], dtype=float)
    alpha *= _PRIOR_STRENGTH / prior_total
    alpha_0 = _PRIOR_STRENGTH
    y_high = np.array([high_counts[w] for w in vocabulary], dtype=float)
    y_low = np.array([low_counts[w] for w in vocabulary], dtype=float)
    n_high, n_low = y_high.sum(), y_low.sum()
    delta = np.log((y_high + alpha) / (n_high + alpha_0 - y_high - alpha)) - np.log(
        (y_low + alpha) / (n_low + alpha_0 - y_low - alpha)
    )
    z = delta / np.sqrt(1 / (y_high + alpha) + 1 / (y_low + alpha))
    order = np.argsort(-z, kind="stable")
    words = np.array(vocabulary, dtype=object)
    up = [{"ngram": str(words[i]), "z": float(z[i])} for i in order[:top] if z[i] > 0]
    down = [{"ngram": str(words[i]), "z": float(z[i])} for i in order[::-1][:top] if z[i] < 0]
    return up, down


def text_stats(texts: Sequence[str]) -> dict[str, float]:
    """Mean words, and the shares of texts with lists, code, headings, refusals, questions."""
    if not texts:
        return {}
    share = lambda pattern: float(np.mean([bool(pattern.search(t)) for t in texts]))  # noqa: E731
    return {
        "words": float(np.mean([word_count(t) for t in texts])),
        "lists": share(_LIST),
        "code": share(_CODE),
        "headings": share(_HEADING),
        "refusals": share(_REFUSAL),
        "questions": share(_QUESTION),
    }
