"""Where a feature's contrastive n-grams occur in a text, as character offsets.

Computed on the server so the page only wraps ranges of text it inserts with
``textContent`` (never HTML). The matching is the core's
(:func:`models_gpu.explain.ngram_spans`), so a highlighted span is exactly what
the n-gram counts saw.
"""

from __future__ import annotations

from collections.abc import Iterable

from models_gpu.explain import ngram_spans

MAX_SPANS = 200


def ngram_text(entry: object) -> str | None:
    """The n-gram of an entry as the core reports it (``{"ngram", "z"}``) or a plain string."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("ngram"), str):
        return entry["ngram"]
    return None


def _grams(entries: Iterable[object]) -> list[str]:
    return [g for g in (ngram_text(e) for e in entries) if g]


def text_spans(text: str, *, high: Iterable[object], low: Iterable[object]) -> list[dict]:
    """Spans ``{start, end, side}`` of the feature's high and low n-grams, in text order.

    Where a high and a low span overlap, the high one wins (it is what the example
    is shown for).
    """
    high_spans = [
        {"start": start, "end": end, "side": "high"}
        for start, end in ngram_spans(text, _grams(high))
    ]
    low_spans = [
        {"start": start, "end": end, "side": "low"}
        for start, end in ngram_spans(text, _grams(low))
        if not any(start < h["end"] and h["start"] < end for h in high_spans)
    ]
    return sorted(high_spans + low_spans, key=lambda s: s["start"])[:MAX_SPANS]
