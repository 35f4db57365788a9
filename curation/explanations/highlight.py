"""Where a feature's contrastive n-grams occur in a text, as character offsets.

Computed on the server so the page only wraps ranges of text it inserts with
``textContent`` (never HTML). Words are matched case-insensitively on word
boundaries, as the core counts them; overlapping matches merge into one span.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

WORD = re.compile(r"\w+", re.UNICODE)
MAX_SPANS = 200


def ngram_text(entry: object) -> str | None:
    """The n-gram of an entry as the core reports it (a string, or a dict with ``ngram``)."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict):
        value = entry.get("ngram", entry.get("text"))
        return value if isinstance(value, str) else None
    if isinstance(entry, (list, tuple)) and entry and isinstance(entry[0], str):
        return entry[0]
    return None


def ngram_spans(text: str, ngrams: Iterable[object], side: str) -> list[dict]:
    """Spans ``{start, end, side, ngram}`` of ``text`` covered by any of ``ngrams``."""
    words = [(m.start(), m.end(), m.group().lower()) for m in WORD.finditer(text)]
    tokens = [w for _, _, w in words]
    found: list[tuple[int, int, str]] = []
    for entry in ngrams:
        gram = ngram_text(entry)
        if not gram:
            continue
        needle = [w.lower() for w in WORD.findall(gram)]
        if not needle:
            continue
        size = len(needle)
        for i in range(len(tokens) - size + 1):
            if tokens[i : i + size] == needle:
                found.append((words[i][0], words[i + size - 1][1], gram))
    return _merge(found, side)


def _merge(found: Sequence[tuple[int, int, str]], side: str) -> list[dict]:
    spans: list[dict] = []
    for start, end, gram in sorted(found):
        if spans and start <= spans[-1]["end"]:
            last = spans[-1]
            last["end"] = max(last["end"], end)
            if gram not in last["ngrams"]:
                last["ngrams"].append(gram)
            continue
        spans.append({"start": start, "end": end, "side": side, "ngrams": [gram]})
    return spans[:MAX_SPANS]


def text_spans(text: str, *, high: Iterable[object], low: Iterable[object]) -> list[dict]:
    """Spans of the n-grams on the feature's high side and on its low side, in text order.

    Where a high and a low n-gram overlap, the high one wins (it is what the
    feature rewards, and what the example is shown for).
    """
    high_spans = ngram_spans(text, high, "high")
    low_spans = [
        s
        for s in ngram_spans(text, low, "low")
        if not any(s["start"] < h["end"] and h["start"] < s["end"] for h in high_spans)
    ]
    return sorted(high_spans + low_spans, key=lambda s: s["start"])
