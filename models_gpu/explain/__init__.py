"""What's in a preference dataset: SAE features that say what annotators rewarded, and for whom.

Following WIMHF (What's In My Human Feedback?, ICLR 2026):

1. **Inputs.** Each distinct pair becomes ``Δ = e(A) − e(B)`` (responses alone by default,
   ``"prompt\\n\\nresponse"`` with ``include_prompt``). Pairs are split by prompt, so no prompt
   is on both sides of the train / held-out split.
2. **Dictionary.** A signed BatchTopK sparse autoencoder (:mod:`models_gpu.sae`) learns
   ``n_features`` directions over ``±Δ``; a feature's activation on a pair says how much
   more A than B has that direction, and flips sign when A and B are swapped. The model is
   odd, so a ``−Δ`` row has exactly the loss and gradient of its ``Δ`` twin: the SAE is
   trained on ``Δ`` once, which is training on ``±Δ`` at half the cost.
3. **Link to the labels.** Per feature, a logistic regression of the label on the length
   difference and the standardised activation (no intercept: swapping A and B flips the
   label and every regressor), Wald intervals from the Hessian, Bonferroni over features.
   A sparse probe (L1 logistic regression tuned by bisection to keep exactly 5 and 10
   features, length always in) against the full linear probe on Δ gives the share of the
   signal the features explain: ``(AUC_sparse − 0.5) / (AUC_full − 0.5)`` on held-out pairs.
4. **Descriptions.** Each feature's sign is set so that its high side is the one with the
   more distinctive n-grams (the side that has a phrase or a refusal, not the side that
   lacks it; an odd SAE's signs are otherwise arbitrary). Top-activating pairs in both directions (swapped where the activation is
   negative, so every example reads high side first), contrastive n-grams (log-odds with an
   informative Dirichlet prior, Monroe et al. 2008), length and format rates, and, with a
   judge, a proposed name kept only when the judge's reading of it correlates with the
   activation on held-out pairs (:func:`name_features`).
5. **Pluralism.** The same regression within each annotator group with an interaction test
   against the rest of the annotators, and a per-group sparse probe.

Rows and judgements: a *pair* is one prompt with an unordered pair of responses, so
``(A, B)`` and ``(B, A)`` under one prompt are one pair (one Δ, in the orientation first
seen; a later judgement in the other orientation has its label flipped to match). A
*judgement* is one annotator's label on one pair: the same annotator judging the same pair
twice (under one or two pair ids, or anonymously) keeps the last judgement only; different
annotators' judgements of one pair are separate rows. The SAE trains on pairs; the
regressions, probes and group analyses use judgements. Ties must be dropped by the caller.

Pure numpy / scipy / scikit-learn / torch; no Django.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from models_gpu.config import ExplainConfig, SAEConfig

if TYPE_CHECKING:
    from models_gpu.explain.fit import explain_preferences
    from models_gpu.explain.inputs import prepare_inputs
    from models_gpu.explain.naming import name_features
    from models_gpu.explain.reports import (
        Explanation,
        FeatureReport,
        GroupEffect,
        GroupProbe,
        PreferencePair,
        PreparedInputs,
        ProbeReport,
    )
    from models_gpu.explain.text import ngram_spans, text_stats

# Imported on first use, as in ``models_gpu``: the fit needs torch and scikit-learn, and a
# web process or a Celery worker that never explains anything should not pay for them at
# start-up (importing this package cost 5.5 s of a worker's 6.7 s start).
_LAZY = {
    "explain_preferences": "models_gpu.explain.fit",
    "prepare_inputs": "models_gpu.explain.inputs",
    "name_features": "models_gpu.explain.naming",
    "Explanation": "models_gpu.explain.reports",
    "FeatureReport": "models_gpu.explain.reports",
    "GroupEffect": "models_gpu.explain.reports",
    "GroupProbe": "models_gpu.explain.reports",
    "PreferencePair": "models_gpu.explain.reports",
    "PreparedInputs": "models_gpu.explain.reports",
    "ProbeReport": "models_gpu.explain.reports",
    "ngram_spans": "models_gpu.explain.text",
    "text_stats": "models_gpu.explain.text",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ExplainConfig",
    "Explanation",
    "FeatureReport",
    "GroupEffect",
    "GroupProbe",
    "PreferencePair",
    "PreparedInputs",
    "ProbeReport",
    "SAEConfig",
    "explain_preferences",
    "name_features",
    "ngram_spans",
    "prepare_inputs",
    "text_stats",
]
