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

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import special, stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from models_gpu.config import ExplainConfig, Progress, SAEConfig
from models_gpu.sae import SAEFit, train_sae

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


def _words(text: str) -> int:
    return len(text.split())


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
        [np.log1p(_words(pairs[p].text_a)) - np.log1p(_words(pairs[p].text_b)) for p in first]
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


@dataclass
class _Wald:
    coef: np.ndarray
    se: np.ndarray

    def p_values(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(self.se > 0, self.coef / self.se, 0.0)
        return 2 * stats.norm.sf(np.abs(z))

    def interval(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        half = stats.norm.ppf(1 - alpha / 2) * self.se
        return self.coef - half, self.coef + half


def _logit_wald(x: np.ndarray, y: np.ndarray, ridge: float, *, max_iter: int = 100) -> _Wald:
    """Newton–Raphson for ``P(y=1) = σ(xβ)`` with an L2 penalty ``ridge/2 ‖β‖²``.

    Standard errors from the inverse of the penalised Hessian (Wald). The tiny ridge keeps
    the Hessian invertible for an all-zero column (a feature never active) or separable
    data (one pair), where the estimate would run off to infinity.
    """
    n_cols = x.shape[1]
    beta = np.zeros(n_cols)
    penalty = ridge * np.eye(n_cols)
    hessian = penalty
    for _ in range(max_iter):
        prob = special.expit(x @ beta)
        weight = prob * (1 - prob)
        gradient = x.T @ (y - prob) - ridge * beta
        hessian = (x * weight[:, None]).T @ x + penalty
        step = np.linalg.solve(hessian, gradient)
        norm = np.abs(step).max()
        if norm > 5.0:  # damped: separable data would otherwise overshoot wildly
            step *= 5.0 / norm
        beta += step
        if norm < 1e-8:
            break
    prob = special.expit(x @ beta)
    hessian = (x * (prob * (1 - prob))[:, None]).T @ x + penalty
    cov = np.linalg.pinv(hessian)
    return _Wald(beta, np.sqrt(np.clip(np.diag(cov), 0.0, None)))


def _auc(score: np.ndarray, label: np.ndarray) -> float | None:
    """Held-out AUC of an antisymmetric score, over ±rows so both classes are always present."""
    if len(score) == 0:
        return None
    return float(roc_auc_score(np.concatenate([label, 1 - label]), np.concatenate([score, -score])))


def _rms(values: np.ndarray) -> np.ndarray:
    scale = np.sqrt((values**2).mean(axis=0)) if len(values) else np.ones(values.shape[1:])
    return np.where(scale > 0, scale, 1.0)


# Sklearn's L1 penalty cannot spare one column; scaling the length column up makes its
# weight (and so its penalty) this many times smaller, which leaves length in at any C.
_LENGTH_BOOST = 100.0


def _l1_select(design: np.ndarray, label: np.ndarray, size: int, seed: int) -> list[int]:
    """Indices (into design[:, 1:], the features) an L1 probe keeps, tuned to keep ``size``.

    Column 0 is length, always in. Bisection on log C; where no C keeps exactly ``size``
    (ties along the path), the smallest C keeping more wins and its largest weights stay.
    """
    n_features = design.shape[1] - 1
    active = np.flatnonzero(np.abs(design[:, 1:]).sum(axis=0) > 0)
    if len(active) <= size:
        return active.tolist()
    boosted = design.copy()
    boosted[:, 0] *= _LENGTH_BOOST
    rows = np.concatenate([boosted, -boosted])
    labels = np.concatenate([label, 1 - label])

    def fit(log_c: float) -> np.ndarray:
        model = LogisticRegression(
            l1_ratio=1.0,
            C=float(np.exp(log_c)),
            solver="liblinear",
            fit_intercept=False,
            random_state=seed,
            max_iter=1000,
            tol=1e-6,
        )
        model.fit(rows, labels)
        return model.coef_[0, 1:]

    low, high = np.log(1e-4), np.log(1e3)
    best: np.ndarray | None = None
    for _ in range(30):
        middle = (low + high) / 2
        weights = fit(middle)
        count = int((weights != 0).sum())
        if count == size:
            return sorted(np.flatnonzero(weights).tolist())
        if count > size:
            best, high = weights, middle
        else:
            low = middle
    if best is None:
        best = fit(np.log(1e3))
    order = np.argsort(-np.abs(best), kind="stable")[:size]
    return sorted(int(i) for i in order if i < n_features)


# ---------------------------------------------------------------------------------------
# Descriptions

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


def _ngrams(text: str, longest: int) -> Counter[str]:
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


def _contrastive_ngrams(
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
        high_counts.update(_ngrams(text, longest))
    for text in low:
        low_counts.update(_ngrams(text, longest))
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
        "words": float(np.mean([_words(t) for t in texts])),
        "lists": share(_LIST),
        "code": share(_CODE),
        "headings": share(_HEADING),
        "refusals": share(_REFUSAL),
        "questions": share(_QUESTION),
    }


def _oriented(pairs: Sequence[PreferencePair], position: int, swapped: bool) -> tuple[str, str]:
    pair = pairs[position]
    return (pair.text_b, pair.text_a) if swapped else (pair.text_a, pair.text_b)


def _top_pairs(activation: np.ndarray, count: int, mask: np.ndarray | None = None) -> list[int]:
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
            _auc(rows[valid] @ fit(c, rows[~valid], label[~valid]), label[valid]) or 0.0
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
    length_fit = _logit_wald(design.length[train, None], y_train, config.ridge)
    auc_length = _auc(design.length[held] * length_fit.coef[0], y_held)

    # The full probe sees Δ and the length difference, so it knows all the sparse probe does.
    rows = np.column_stack(
        [design.length, delta[judgement_pair] / _rms(delta[judgement_pair][train]).mean()]
    )
    auc_full = None
    if train.any() and held.any():
        full_weights = _full_probe(rows[train], y_train, groups[train], config)
        auc_full = _auc(rows[held] @ full_weights, y_held)

    auc_sparse: dict[int, float | None] = {}
    selected: dict[int, list[int]] = {}
    weights: dict[int, list[float]] = {}
    share: dict[int, float | None] = {}
    for size in config.sparse_sizes:
        chosen = (
            _l1_select(
                design.columns(range(design.activations.shape[1]))[train],
                y_train,
                size,
                config.seed,
            )
            if train.any()
            else []
        )
        fit = _logit_wald(design.columns(chosen)[train], y_train, config.ridge)
        selected[size] = chosen
        weights[size] = fit.coef[1:].tolist()
        auc_sparse[size] = _auc(design.columns(chosen)[held] @ fit.coef, y_held)
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
    within = _logit_wald(x[mask], design.label[mask], config.ridge)
    low, high = within.interval(config.alpha)
    interaction_p = float("nan")
    rest = in_field & ~mask
    if rest.any():
        # Length and activation each get a group × term interaction; the test is on the
        # activation's: does this group weigh the feature differently from the others?
        member = mask[in_field].astype(float)[:, None]
        rows = x[in_field]
        joint = _logit_wald(
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
        background.update(_ngrams(pair.text_a, config.ngram_max))
        background.update(_ngrams(pair.text_b, config.ngram_max))
    _orient_features(fit, activations, prepared, pairs, background, config)

    _stage(progress, 0.7, "linking features to the labels")
    pair_of = prepared.judgement_pair
    act_scale = _rms(activations)
    design = _Design(
        length=prepared.length[pair_of] / _rms(prepared.length[:, None])[0],
        activations=(activations / act_scale)[pair_of],
        label=prepared.judgement_label,
        held_out=held[pair_of],
    )
    reports: list[FeatureReport] = []
    for feature in range(n_features):
        wald = _logit_wald(design.columns([feature]), design.label, config.ridge)
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
        up, down = _contrastive_ngrams(high_texts, low_texts, background, config.ngram_max, 1)
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
    for i in _top_pairs(activation, count):
        high, low = _oriented(pairs, int(prepared.pair_index[i]), bool(activation[i] < 0))
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
        _l1_select(design.columns(all_features)[train], design.label[train], size, config.seed)
        if train.any()
        else []
    )
    fit = _logit_wald(design.columns(chosen)[train], design.label[train], config.ridge)
    weights = fit.coef[1:]
    order = np.argsort(-np.abs(weights), kind="stable")
    return GroupProbe(
        field=field_name,
        value=value,
        n_annotators=annotators,
        n_judgements=int(mask.sum()),
        top_features=[{"index": chosen[i], "weight": float(weights[i])} for i in order],
        auc=_auc(design.columns(chosen)[held] @ fit.coef, design.label[held]),
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
    for i in _top_pairs(activation, config.top_examples):
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
    report.ngrams_high, report.ngrams_low = _contrastive_ngrams(
        high_texts, low_texts, background, config.ngram_max, config.top_ngrams
    )
    report.stats = {"high": text_stats(high_texts), "low": text_stats(low_texts)}


# ---------------------------------------------------------------------------------------
# Names checked for fidelity


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

    ``pairs`` are the ones given to :func:`explain_preferences`. For each feature the judge
    proposes a name from the top training examples (high side first); then it rates, on up
    to ``fidelity_pairs`` held-out pairs (half the most active, half drawn at random), how
    much more A than B has the named property. The name is kept when that rating's Pearson
    correlation with the activation is positive and significant at ``alpha``. Sets
    ``proposed_name``, ``fidelity_r``, ``fidelity_p`` and ``name`` in place on the chosen
    reports (all by default) and returns them.
    """
    config = config or ExplainConfig()
    chosen = [r for r in explanation.features if features is None or r.index in set(features)]
    rng = np.random.default_rng(config.seed)
    held = explanation.held_out
    for report in chosen:
        activation = explanation.activations[:, report.index]
        examples = [
            _oriented(pairs, int(explanation.pair_index[i]), bool(activation[i] < 0))
            for i in _top_pairs(activation, config.top_examples, ~held)
        ]
        report.proposed_name = propose(examples) if examples else None
        report.name = report.fidelity_r = report.fidelity_p = None
        if not report.proposed_name:
            continue
        candidates = np.flatnonzero(held)
        half = config.fidelity_pairs // 2
        strongest = candidates[np.argsort(-np.abs(activation[candidates]), kind="stable")[:half]]
        others = np.setdiff1d(candidates, strongest)
        extra = rng.permutation(others)[: config.fidelity_pairs - len(strongest)]
        sample = np.concatenate([strongest, extra]).astype(int)
        if len(sample) < 3:
            continue
        ratings = []
        for i in sample:
            pair = pairs[int(explanation.pair_index[i])]
            ratings.append(float(rate(report.proposed_name, pair.text_a, pair.text_b)))
        if np.ptp(ratings) == 0 or np.ptp(activation[sample]) == 0:
            report.fidelity_r, report.fidelity_p = 0.0, 1.0
            continue
        r, p = stats.pearsonr(ratings, activation[sample])
        report.fidelity_r, report.fidelity_p = float(r), float(p)
        if r > 0 and p < config.alpha:
            report.name = report.proposed_name
    return chosen
