"""The explanation itself: train the SAE, link features to labels, describe, per group."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from models_gpu.config import ExplainConfig, Progress
from models_gpu.explain.inputs import prepare_inputs
from models_gpu.explain.reports import (
    Embed,
    Explanation,
    FeatureReport,
    GroupEffect,
    GroupProbe,
    PreferencePair,
    PreparedInputs,
    ProbeReport,
)
from models_gpu.explain.stats import auc, l1_select, logit_wald, rms
from models_gpu.explain.text import contrastive_ngrams, ngram_counts, text_stats
from models_gpu.sae import SAEFit, train_sae


def oriented_texts(
    pairs: Sequence[PreferencePair], position: int, swapped: bool
) -> tuple[str, str]:
    pair = pairs[position]
    return (pair.text_b, pair.text_a) if swapped else (pair.text_a, pair.text_b)


def top_pairs(activation: np.ndarray, count: int, mask: np.ndarray | None = None) -> list[int]:
    """Pairs by |activation|, positive first then negative, ``count`` per direction."""
    chosen: list[int] = []
    for sign in (1.0, -1.0):
        signed = sign * activation
        candidates = np.flatnonzero((signed > 0) & (True if mask is None else mask))
        order = candidates[np.argsort(-signed[candidates], kind="stable")]
        chosen.extend(order[:count].tolist())
    return chosen


# ---------------------------------------------------------------------------------------
# The explanation


@dataclass
class _Design:
    """Judgement-level regressors: standardised length and activations, and the labels."""

    length: np.ndarray  # (n_judgements,)
    activations: np.ndarray  # (n_judgements, n_features)
    label: np.ndarray
    held_out: np.ndarray

    def columns(self, features: Sequence[int]) -> np.ndarray:
        return np.column_stack([self.length, self.activations[:, list(features)]])


def _stage(progress: Progress | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(fraction, message)


def _full_probe(
    rows: np.ndarray, label: np.ndarray, groups: np.ndarray, config: ExplainConfig
) -> np.ndarray:
    """Weights of the L2 linear probe on [length, Δ], its C picked among ``full_probe_cs`` on a
    prompt-grouped validation split of the training rows (then refit on all of them)."""

    def fit(c: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        model = LogisticRegression(C=c, fit_intercept=False, max_iter=2000)
        model.fit(np.concatenate([x, -x]), np.concatenate([y, 1 - y]))
        return model.coef_[0]

    best_c = config.full_probe_cs[len(config.full_probe_cs) // 2]
    distinct = np.unique(groups)
    if len(config.full_probe_cs) > 1 and len(distinct) >= 5:
        rng = np.random.default_rng(config.seed)
        valid = np.isin(groups, rng.permutation(distinct)[: max(1, len(distinct) // 5)])
        scores = [
            auc(rows[valid] @ fit(c, rows[~valid], label[~valid]), label[valid]) or 0.0
            for c in config.full_probe_cs
        ]
        best_c = config.full_probe_cs[int(np.argmax(scores))]
    return fit(best_c, rows, label)


def _probe_report(
    design: _Design,
    config: ExplainConfig,
    delta: np.ndarray,
    judgement_pair: np.ndarray,
    groups: np.ndarray,
) -> ProbeReport:
    train, held = ~design.held_out, design.held_out
    y_train, y_held = design.label[train], design.label[held]
    length_fit = logit_wald(design.length[train, None], y_train, config.ridge)
    auc_length = auc(design.length[held] * length_fit.coef[0], y_held)

    # The full probe sees Δ and the length difference, so it knows all the sparse probe does.
    rows = np.column_stack(
        [design.length, delta[judgement_pair] / rms(delta[judgement_pair][train]).mean()]
    )
    auc_full = None
    if train.any() and held.any():
        full_weights = _full_probe(rows[train], y_train, groups[train], config)
        auc_full = auc(rows[held] @ full_weights, y_held)

    auc_sparse: dict[int, float | None] = {}
    selected: dict[int, list[int]] = {}
    weights: dict[int, list[float]] = {}
    share: dict[int, float | None] = {}
    for size in config.sparse_sizes:
        chosen = (
            l1_select(
                design.columns(range(design.activations.shape[1]))[train],
                y_train,
                size,
                config.seed,
            )
            if train.any()
            else []
        )
        fit = logit_wald(design.columns(chosen)[train], y_train, config.ridge)
        selected[size] = chosen
        weights[size] = fit.coef[1:].tolist()
        auc_sparse[size] = auc(design.columns(chosen)[held] @ fit.coef, y_held)
        share[size] = (
            (auc_sparse[size] - 0.5) / (auc_full - 0.5)
            if auc_full is not None and auc_sparse[size] is not None and auc_full > 0.5
            else None
        )
    return ProbeReport(auc_length, auc_full, auc_sparse, selected, weights, share)


def _groups_of(
    prepared: PreparedInputs, config: ExplainConfig
) -> list[tuple[str, str, np.ndarray, int]]:
    """(field, value, judgement mask, distinct annotators) of every group big enough to show."""
    values: dict[tuple[str, str], list[int]] = {}
    for row, groups in enumerate(prepared.judgement_groups):
        for field_name, value in groups.items():
            values.setdefault((str(field_name), str(value)), []).append(row)
    found = []
    for (field_name, value), rows in sorted(values.items()):
        annotators = len({prepared.judgement_annotator[row] for row in rows})
        if annotators < config.min_group_annotators or len(rows) < config.min_group_judgements:
            continue
        mask = np.zeros(len(prepared.judgement_label), dtype=bool)
        mask[rows] = True
        found.append((field_name, value, mask, annotators))
    return found


def _group_effect(
    design: _Design,
    feature: int,
    field_name: str,
    value: str,
    mask: np.ndarray,
    in_field: np.ndarray,
    annotators: int,
    config: ExplainConfig,
) -> GroupEffect:
    x = design.columns([feature])
    within = logit_wald(x[mask], design.label[mask], config.ridge)
    low, high = within.interval(config.alpha)
    interaction_p = float("nan")
    rest = in_field & ~mask
    if rest.any():
        # Length and activation each get a group × term interaction; the test is on the
        # activation's: does this group weigh the feature differently from the others?
        member = mask[in_field].astype(float)[:, None]
        rows = x[in_field]
        joint = logit_wald(
            np.column_stack([rows, rows * member]), design.label[in_field], config.ridge
        )
        interaction_p = float(joint.p_values()[3])
    return GroupEffect(
        field=field_name,
        value=value,
        coef=float(within.coef[1]),
        ci_low=float(low[1]),
        ci_high=float(high[1]),
        n_annotators=annotators,
        n_judgements=int(mask.sum()),
        interaction_p=interaction_p,
    )


def explain_preferences(
    pairs: Sequence[PreferencePair],
    embed: Embed,
    config: ExplainConfig | None = None,
    *,
    progress: Progress | None = None,
) -> Explanation:
    """Train the SAE on ``pairs`` and describe its features (see the module docstring).

    ``embed(texts) -> (len(texts), dim)`` array, e.g.
    ``lambda texts: embed_texts(texts, config=EmbeddingConfig())``.
    ``progress(fraction, message)`` is called with fractions rising from 0 to 1.
    Raises ValueError on empty input or labels other than 0 and 1.
    """
    config = config or ExplainConfig()
    _stage(progress, 0.0, "embedding responses")
    prepared = prepare_inputs(pairs, embed, config)
    held = prepared.held_out
    # With one prompt nothing is held out; the SAE then stops on its training loss.
    train_rows, held_rows = prepared.delta[~held], prepared.delta[held]

    def sae_progress(fraction: float, message: str) -> None:
        if progress is not None:
            progress(0.3 + 0.4 * fraction, message)

    fit = train_sae(train_rows, held_rows, config.sae, progress=sae_progress)
    activations = fit.encode(prepared.delta)
    n_features = activations.shape[1]
    background: Counter[str] = Counter()
    sample = np.random.default_rng(config.seed).permutation(prepared.n_pairs)[:2000]
    for i in sample:
        pair = pairs[prepared.pair_index[i]]
        background.update(ngram_counts(pair.text_a, config.ngram_max))
        background.update(ngram_counts(pair.text_b, config.ngram_max))
    _orient_features(fit, activations, prepared, pairs, background, config)

    _stage(progress, 0.7, "linking features to the labels")
    pair_of = prepared.judgement_pair
    act_scale = rms(activations)
    design = _Design(
        length=prepared.length[pair_of] / rms(prepared.length[:, None])[0],
        activations=(activations / act_scale)[pair_of],
        label=prepared.judgement_label,
        held_out=held[pair_of],
    )
    reports: list[FeatureReport] = []
    for feature in range(n_features):
        wald = logit_wald(design.columns([feature]), design.label, config.ridge)
        low, high = wald.interval(config.alpha)
        p_value = float(wald.p_values()[1])
        reports.append(
            FeatureReport(
                index=feature,
                coef=float(wald.coef[1]),
                ci_low=float(low[1]),
                ci_high=float(high[1]),
                p_value=p_value,
                p_bonferroni=min(1.0, p_value * n_features),
                prevalence=float((activations[:, feature] != 0).mean()),
            )
        )
    probes = _probe_report(design, config, prepared.delta, pair_of, prepared.prompt_group[pair_of])

    groups = _groups_of(prepared, config)
    group_probes: list[GroupProbe] = []
    fields_present = {
        name: np.array([name in g for g in prepared.judgement_groups]) for name, *_ in groups
    }
    for field_name, value, mask, annotators in groups:
        in_field = fields_present[field_name]
        for report in reports:
            report.group_effects.append(
                _group_effect(
                    design, report.index, field_name, value, mask, in_field, annotators, config
                )
            )
        group_probes.append(_group_probe(design, field_name, value, mask, annotators, config))

    _stage(progress, 0.85, "describing features")
    wins = np.bincount(pair_of, weights=design.label, minlength=prepared.n_pairs)
    votes = np.bincount(pair_of, minlength=prepared.n_pairs)
    for report in reports:
        _describe(
            report, activations[:, report.index], prepared, pairs, wins, votes, background, config
        )

    significant = [r for r in reports if r.p_bonferroni < config.alpha]
    rest = [r for r in reports if r.p_bonferroni >= config.alpha]
    ranked = sorted(significant, key=lambda r: -abs(r.coef)) + sorted(rest, key=lambda r: r.p_value)
    if progress is not None:
        progress(1.0, f"explained {prepared.n_pairs} pairs with {n_features} features")
    return Explanation(
        pair_ids=prepared.pair_ids,
        pair_index=prepared.pair_index,
        activations=activations,
        held_out=held,
        features=ranked,
        probes=probes,
        groups=group_probes,
        history=fit.history,
        n_pairs=prepared.n_pairs,
        n_judgements=len(prepared.judgement_label),
        n_train=int((~held).sum()),
        n_held_out=int(held.sum()),
        sae=fit,
    )


def _orient_features(
    fit: SAEFit,
    activations: np.ndarray,
    prepared: PreparedInputs,
    pairs: Sequence[PreferencePair],
    background: Counter[str],
    config: ExplainConfig,
) -> None:
    """Give each feature the sign whose high side is the more distinctive one.

    An odd SAE's signs are arbitrary: a feature and its negation explain Δ equally well.
    A curator reads a feature from its high side, so the high side should be the one that
    *has* something (a phrase, a refusal, a list) rather than lacks it: a feature flips
    when its low side's strongest contrastive n-gram beats its high side's. The SAE's
    weights flip with it, so the saved model encodes the reported signs. In place.
    """
    for feature in range(activations.shape[1]):
        activation = activations[:, feature]
        high_texts, low_texts = _sides(activation, prepared, pairs, config.ngram_pairs)
        up, down = contrastive_ngrams(high_texts, low_texts, background, config.ngram_max, 1)
        strongest_up = up[0]["z"] if up else 0.0
        strongest_down = -down[0]["z"] if down else 0.0
        if strongest_down > strongest_up:
            activations[:, feature] *= -1
            with torch.no_grad():
                fit.model.W_enc[feature] *= -1
                fit.model.W_dec[:, feature] *= -1


def _sides(
    activation: np.ndarray, prepared: PreparedInputs, pairs: Sequence[PreferencePair], count: int
) -> tuple[list[str], list[str]]:
    """High-side and low-side texts of the ``count`` most active pairs per direction."""
    high_texts, low_texts = [], []
    for i in top_pairs(activation, count):
        high, low = oriented_texts(pairs, int(prepared.pair_index[i]), bool(activation[i] < 0))
        high_texts.append(high)
        low_texts.append(low)
    return high_texts, low_texts


def _group_probe(
    design: _Design,
    field_name: str,
    value: str,
    mask: np.ndarray,
    annotators: int,
    config: ExplainConfig,
) -> GroupProbe:
    size = min(config.sparse_sizes)
    train = mask & ~design.held_out
    held = mask & design.held_out
    all_features = range(design.activations.shape[1])
    chosen = (
        l1_select(design.columns(all_features)[train], design.label[train], size, config.seed)
        if train.any()
        else []
    )
    fit = logit_wald(design.columns(chosen)[train], design.label[train], config.ridge)
    weights = fit.coef[1:]
    order = np.argsort(-np.abs(weights), kind="stable")
    return GroupProbe(
        field=field_name,
        value=value,
        n_annotators=annotators,
        n_judgements=int(mask.sum()),
        top_features=[{"index": chosen[i], "weight": float(weights[i])} for i in order],
        auc=auc(design.columns(chosen)[held] @ fit.coef, design.label[held]),
    )


def _describe(
    report: FeatureReport,
    activation: np.ndarray,
    prepared: PreparedInputs,
    pairs: Sequence[PreferencePair],
    wins: np.ndarray,
    votes: np.ndarray,
    background: Counter[str],
    config: ExplainConfig,
) -> None:
    for i in top_pairs(activation, config.top_examples):
        swapped = bool(activation[i] < 0)
        a_share = wins[i] / votes[i] if votes[i] else float("nan")
        report.examples.append(
            {
                "pair_id": prepared.pair_ids[i],
                "activation": float(activation[i]),
                "swapped": swapped,
                # Share of the pair's judgements that preferred the high side.
                "high_preferred": float(1 - a_share if swapped else a_share),
            }
        )
    high_texts, low_texts = _sides(activation, prepared, pairs, config.ngram_pairs)
    report.ngrams_high, report.ngrams_low = contrastive_ngrams(
        high_texts, low_texts, background, config.ngram_max, config.top_ngrams
    )
    report.stats = {"high": text_stats(high_texts), "low": text_stats(low_texts)}


# ---------------------------------------------------------------------------------------
# Names checked for fidelity
