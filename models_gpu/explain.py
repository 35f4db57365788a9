"""What's in a preference dataset: SAE features that say what annotators rewarded, and for whom.

Following WIMHF (What's In My Human Feedback?, ICLR 2026):

1. **Inputs.** Each distinct pair becomes ``Δ = e(A) − e(B)`` (responses alone by default,
   ``"prompt\\n\\nresponse"`` with ``include_prompt``). Pairs are split by prompt, so no prompt
   is on both sides of the train / held-out split.
2. **Dictionary.** A signed BatchTopK sparse autoencoder (:mod:`models_gpu.sae`) learns
   ``n_features`` directions over ``±Δ``; a feature's activation on a pair says how much
   more A than B has that direction, and flips sign when A and B are swapped.
3. **Link to the labels.** Per feature, a logistic regression of the label on the length
   difference and the standardised activation (no intercept: swapping A and B flips the
   label and every regressor), Wald intervals from the Hessian, Bonferroni over features.
   A sparse probe (L1 logistic regression tuned by bisection to keep exactly 5 and 10
   features, length always in) against the full linear probe on Δ gives the share of the
   signal the features explain: ``(AUC_sparse − 0.5) / (AUC_full − 0.5)`` on held-out pairs.
4. **Descriptions.** Top-activating pairs in both directions (swapped where the activation is
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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models_gpu.config import ExplainConfig, Progress, SAEConfig
from models_gpu.sae import SAEFit

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
]

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

    def sae_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """``(train, held_out)`` SAE rows: ``±Δ`` of the train and held-out pairs."""
        train, held = self.delta[~self.held_out], self.delta[self.held_out]
        return np.concatenate([train, -train]), np.concatenate([held, -held])


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
    orientation of its first judgement); ``held_out[i]`` says whether that pair's prompt was
    held out. ``features`` are ranked by |coef| among the significant ones (Bonferroni),
    then the rest by p-value.
    """

    pair_ids: list[str]
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


def prepare_inputs(
    pairs: Sequence[PreferencePair], embed: Embed, config: ExplainConfig | None = None
) -> PreparedInputs:
    """Deduplicate pairs and judgements, embed the texts, split by prompt."""
    raise NotImplementedError


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
    raise NotImplementedError


def name_features(
    explanation: Explanation,
    pairs: Sequence[PreferencePair],
    propose: Propose,
    rate: Rate,
    config: ExplainConfig | None = None,
    *,
    features: Sequence[int] | None = None,
) -> list[FeatureReport]:
    """Name features with a judge, keeping a name only if it passes the fidelity test.

    ``pairs`` are the ones given to :func:`explain_preferences`. Sets ``proposed_name``,
    ``fidelity_r``, ``fidelity_p`` and (when ``r > 0`` and ``p < alpha``) ``name`` on each
    report in place (all of them, or those in ``features``) and returns those reports.
    """
    raise NotImplementedError


def ngram_spans(text: str, ngrams: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of ``text`` where any of ``ngrams`` occurs (merged, sorted).

    Matching follows the n-gram tokenisation (lower-cased words), so
    ``ngram_spans("I hope this helps!", ["this helps"]) == [(7, 17)]``.
    """
    raise NotImplementedError
