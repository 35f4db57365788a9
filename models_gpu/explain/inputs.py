"""Pairs to Δ rows and judgements, split by prompt (see the package docstring)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models_gpu.config import ExplainConfig
from models_gpu.explain.reports import Embed, PreferencePair, PreparedInputs
from models_gpu.explain.text import word_count

# ---------------------------------------------------------------------------------------
# Inputs


def _validate(pairs: Sequence[PreferencePair]) -> None:
    if len(pairs) == 0:
        raise ValueError("pairs is empty: an explanation needs at least one preference pair")
    for position, pair in enumerate(pairs):
        if pair.label not in (0, 1):
            raise ValueError(
                f"pairs[{position}] (pair {pair.pair_id!r}) has label {pair.label!r}: "
                "labels must be 1 (A preferred) or 0 (B preferred); drop ties first"
            )


def prepare_inputs(
    pairs: Sequence[PreferencePair], embed: Embed, config: ExplainConfig | None = None
) -> PreparedInputs:
    """Deduplicate pairs and judgements, embed the texts, split by prompt.

    A pair is a prompt with an *unordered* pair of responses: ``(A, B)`` and ``(B, A)``
    are one pair, oriented as first seen, and a judgement given in the other orientation
    has its label flipped. One judgement per (pair, annotator) is kept, the last one
    (anonymous judgements share the annotator ``""``). A share ``held_out_fraction`` of
    the distinct prompts, drawn with ``seed``, is held out (none when there is one prompt).
    """
    config = config or ExplainConfig()
    _validate(pairs)
    pair_of: dict[tuple[str, str, str], int] = {}
    first: list[int] = []
    judgements: dict[tuple[int, str], tuple[int, int]] = {}  # -> (label, position)
    for position, pair in enumerate(pairs):
        low, high = sorted((pair.text_a, pair.text_b))
        key = (pair.prompt, low, high)
        index = pair_of.get(key)
        if index is None:
            index = pair_of[key] = len(first)
            first.append(position)
        reference = pairs[first[index]]
        swapped = pair.text_a != reference.text_a
        label = 1 - pair.label if swapped else pair.label
        judgements.pop((index, pair.annotator), None)  # the last judgement, in its own place
        judgements[(index, pair.annotator)] = (label, position)

    texts: list[str] = []
    for position in first:
        pair = pairs[position]
        for response in (pair.text_a, pair.text_b):
            texts.append(f"{pair.prompt}\n\n{response}" if config.include_prompt else response)
    vectors = np.asarray(embed(texts), dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(texts):
        raise ValueError(
            f"embed returned shape {vectors.shape} for {len(texts)} texts; expected (n_texts, dim)"
        )
    delta = vectors[0::2] - vectors[1::2]
    length = np.array(
        [
            np.log1p(word_count(pairs[p].text_a)) - np.log1p(word_count(pairs[p].text_b))
            for p in first
        ]
    )

    prompts: dict[str, int] = {}
    prompt_group = np.array([prompts.setdefault(pairs[p].prompt, len(prompts)) for p in first])
    n_prompts = len(prompts)
    n_held = int(round(config.held_out_fraction * n_prompts))
    n_held = min(max(n_held, 1), n_prompts - 1) if n_prompts > 1 else 0
    held_prompts = np.random.default_rng(config.seed).permutation(n_prompts)[:n_held]
    held_out = np.isin(prompt_group, held_prompts)

    keys = list(judgements)
    return PreparedInputs(
        pair_ids=[pairs[p].pair_id for p in first],
        pair_index=np.array(first, dtype=np.int64),
        delta=delta,
        length=length,
        prompt_group=prompt_group,
        held_out=held_out,
        judgement_pair=np.array([index for index, _ in keys], dtype=np.int64),
        judgement_label=np.array([judgements[key][0] for key in keys], dtype=np.float64),
        judgement_annotator=[annotator for _, annotator in keys],
        judgement_groups=[dict(pairs[judgements[key][1]].groups) for key in keys],
    )


# ---------------------------------------------------------------------------------------
# Logistic regressions without intercept: swapping A and B negates every regressor and
# flips the label, so P(A wins) = σ(βᵀx) with no intercept is the antisymmetric model, and
# fitting it on the judgements as given equals fitting it on ±rows with flipped labels.
