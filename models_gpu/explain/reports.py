"""What an explanation returns: pairs in, reports out, all JSON-ready (``to_dict``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from models_gpu.sae import SAEFit

Embed = Callable[[list[str]], np.ndarray]
Propose = Callable[[list[tuple[str, str]]], str]
"""``propose([(high_text, low_text), ...]) -> name``: a short name of what high has more of."""
Rate = Callable[[str, str, str], float]
"""``rate(name, text_a, text_b) -> score``: how much more A than B has the property (signed)."""


@dataclass(frozen=True)
class PreferencePair:
    """One judgement: ``label`` 1 when A was preferred, 0 when B was (no ties).

    ``groups`` maps a profile field to the annotator's group in it, e.g.
    ``{"country": "US", "age": "25-34"}``.
    """

    pair_id: str
    prompt: str
    text_a: str
    text_b: str
    label: int
    annotator: str = ""
    groups: Mapping[str, str] = field(default_factory=dict)


@dataclass
class PreparedInputs:
    """Pairs and judgements as arrays (see the module docstring for pair vs judgement).

    Attributes:
        pair_ids: ``(n_pairs,)``: the first pair id seen for each distinct pair.
        pair_index: Index into the caller's ``pairs`` of each distinct pair's first judgement
            (its texts and orientation are the pair's).
        delta: ``(n_pairs, dim)``: ``e(A) − e(B)`` in that orientation.
        length: ``(n_pairs,)``: length difference ``log((1 + words A) / (1 + words B))``.
        prompt_group: ``(n_pairs,)`` int: the prompt each pair belongs to.
        held_out: ``(n_pairs,)`` bool: the pair's prompt is in the held-out split.
        judgement_pair: ``(n_judgements,)``: the pair of each judgement.
        judgement_label: ``(n_judgements,)``: 1 when the pair's A was preferred.
        judgement_annotator: The annotator of each judgement.
        judgement_groups: The groups of each judgement's annotator.
    """

    pair_ids: list[str]
    pair_index: np.ndarray
    delta: np.ndarray
    length: np.ndarray
    prompt_group: np.ndarray
    held_out: np.ndarray
    judgement_pair: np.ndarray
    judgement_label: np.ndarray
    judgement_annotator: list[str]
    judgement_groups: list[Mapping[str, str]]

    @property
    def n_pairs(self) -> int:
        return len(self.pair_ids)


@dataclass
class GroupEffect:
    """A feature's standardised coefficient among one group's judgements.

    ``interaction_p``: Wald test that the group's coefficient differs from that of the
    other annotators who have a value for the same field.
    """

    field: str
    value: str
    coef: float
    ci_low: float
    ci_high: float
    n_annotators: int
    n_judgements: int
    interaction_p: float

    def to_dict(self) -> dict[str, Any]:
        return _plain(self.__dict__)


@dataclass
class FeatureReport:
    """One SAE feature: its effect on preference, its examples and its description.

    Attributes:
        index: The feature's column in ``Explanation.activations``.
        coef: Standardised coefficient (per RMS of the activation) in the logistic
            regression of the label on [length difference, activation]; positive: the pairs
            where A has more of it are the ones where A wins.
        ci_low, ci_high: Its Wald confidence interval at ``1 − alpha``.
        p_value, p_bonferroni: Its Wald p-value, and that times the number of features (≤ 1).
        prevalence: Share of pairs where it is active (non-zero).
        examples: Up to ``top_examples`` per direction, most active first:
            ``{"pair_id", "activation", "swapped", "high_preferred"}``; ``swapped`` is True
            where the activation is negative, so B is the high side.
        ngrams_high, ngrams_low: ``{"ngram", "z"}``: n-grams the high (low) side of the most
            active pairs uses more, by log-odds z-score; :func:`ngram_spans` finds them in text.
        stats: ``{"high": {...}, "low": {...}}`` mean words and rates of lists, code,
            headings, refusals and questions back to the user on each side.
        group_effects: Per annotator group (groups below the minimum size omitted).
        name: The judge's name when it passed the fidelity test, else None.
        proposed_name: What the judge proposed (kept even when rejected).
        fidelity_r, fidelity_p: Pearson r (and p) of the judge's ratings of the name against
            the activation on held-out pairs; None without a judge.
    """

    index: int
    coef: float
    ci_low: float
    ci_high: float
    p_value: float
    p_bonferroni: float
    prevalence: float
    examples: list[dict[str, Any]] = field(default_factory=list)
    ngrams_high: list[dict[str, Any]] = field(default_factory=list)
    ngrams_low: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, dict[str, float]] = field(default_factory=dict)
    group_effects: list[GroupEffect] = field(default_factory=list)
    name: str | None = None
    proposed_name: str | None = None
    fidelity_r: float | None = None
    fidelity_p: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["group_effects"] = [effect.to_dict() for effect in self.group_effects]
        return _plain(data)


@dataclass
class ProbeReport:
    """Held-out AUCs of the probes and the share of the signal the features explain.

    ``share_explained[k] = (auc_sparse[k] − 0.5) / (auc_full − 0.5)``; None when the full
    probe is no better than chance. ``selected[k]``: the feature indices of the k-probe
    (length is always in besides), ``weights[k]``: their standardised weights.
    """

    auc_length_only: float | None
    auc_full: float | None
    auc_sparse: dict[int, float | None]
    selected: dict[int, list[int]]
    weights: dict[int, list[float]]
    share_explained: dict[int, float | None]

    def to_dict(self) -> dict[str, Any]:
        return _plain(self.__dict__)


@dataclass
class GroupProbe:
    """One annotator group's sparse probe: the features its judgements weigh most."""

    field: str
    value: str
    n_annotators: int
    n_judgements: int
    top_features: list[dict[str, Any]]  # {"index", "weight"}, by |weight|
    auc: float | None

    def to_dict(self) -> dict[str, Any]:
        return _plain(self.__dict__)


@dataclass
class Explanation:
    """Everything :func:`explain_preferences` found; ``to_dict`` gives JSON for the database.

    ``activations[i]`` belongs to ``pair_ids[i]`` (one row per distinct pair, in the
    orientation of its first judgement, which is ``pairs[pair_index[i]]`` of the caller's
    list: positive means its ``text_a`` has more of the feature); ``held_out[i]`` says whether that pair's prompt was
    held out. ``features`` are ranked by |coef| among the significant ones (Bonferroni),
    then the rest by p-value.
    """

    pair_ids: list[str]
    pair_index: np.ndarray
    activations: np.ndarray
    held_out: np.ndarray
    features: list[FeatureReport]
    probes: ProbeReport
    groups: list[GroupProbe]
    history: list[dict[str, float]]
    n_pairs: int
    n_judgements: int
    n_train: int
    n_held_out: int
    sae: SAEFit

    def feature(self, index: int) -> FeatureReport:
        return next(report for report in self.features if report.index == index)

    def to_dict(self, *, include_activations: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "features": [report.to_dict() for report in self.features],
            "probes": self.probes.to_dict(),
            "groups": [group.to_dict() for group in self.groups],
            "history": self.history,
            "sae": {
                "config": asdict(self.sae.config),
                "best_epoch": self.sae.best_epoch,
                "input_scale": self.sae.input_scale,
            },
            "n_pairs": self.n_pairs,
            "n_judgements": self.n_judgements,
            "n_train": self.n_train,
            "n_held_out": self.n_held_out,
        }
        if include_activations:
            data["pair_ids"] = list(self.pair_ids)
            data["activations"] = self.activations.tolist()
            data["held_out"] = self.held_out.tolist()
        return _plain(data)


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars to Python, NaN to None, int dict keys to str."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if not np.isfinite(value) else float(value)
    return value
