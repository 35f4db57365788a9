"""Hybrid routing: which items a human should label and which an LM judge can, under a budget.

After the Hybrid Preferences work (Miranda et al., 2024, "HyPER"/MultiPref): every item
gets categorical *instance features*, and a routing strategy scores each item by how much
a human label is worth on it; the top ``budget × N`` items go to humans.

Features (one-hot columns of :class:`RoutingFeatures`):

- lexical, as in the paper: prompt length, the two response lengths, their length
  difference, token overlap (Jaccard) and ROUGE-L F1 between the responses, and the
  cosine similarity of their embeddings, each binned into thirds by percentile
  (``low`` / ``mid`` / ``high``);
- a semantic cluster: k-means on the prompt embeddings;
- tags (domain, safety concern, complexity of intent, expertise needed, open-endedness):
  given per item (e.g. by a judge), or else from :class:`PrototypeTagger`, a documented
  built-in tagger that picks, per tag, the value whose prototype sentences are nearest
  to the prompt by cosine similarity (:data:`TAG_PROTOTYPES`);
- the judge's own signals, where AI labels exist: position inconsistency (the two
  presentation orders disagree), abstention, and confidence in thirds.

Strategies (:func:`route_items`):

- ``gain``, the paper's performance-prediction model: on items with both a human and a
  judge label, simulate mixes (a random human share per mix), train the Bradley–Terry
  reward model (:mod:`models_gpu.reward`) on each mix, score it on held-out human
  labels, fit a ridge regression from the share of each feature among the human-routed
  items to that score, and predict each item's gain as the sum of its features'
  coefficients;
- ``error``, a direct judge-error model: a logistic regression on the features,
  calibrated (Platt) and cross-fitted, predicting the judge's expected loss against the
  human label (wrong 1, tie or missing ½, right 0);
- ``prior``, used when no doubly labelled items exist: position-inconsistent verdicts
  first, then abstentions, then moderate safety concern and complex intents (the
  categories where the paper found human labels help most), then low confidence;
- ``random``, the baseline.

Labels are coded per item as ``+1`` (the first response is better), ``-1`` (the second),
``0`` (a tie, or a judge whose two orders disagree) and ``nan`` (no label). A judge's
label counts as right when it matches the human direction, half right when it is a
tie or missing (a coin flip), wrong otherwise.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from models_gpu.config import Progress, RewardConfig, RoutingConfig

TOKEN = re.compile(r"\w+", re.UNICODE)
MAX_TOKENS = 4000
BIN_NAMES = ("low", "mid", "high")
LEXICAL = (
    "prompt_length",
    "length_a",
    "length_b",
    "length_difference",
    "token_overlap",
    "rouge_l",
    "embedding_cosine",
)
TAGS = ("domain", "safety_concern", "complexity", "expertise", "open_endedness")

# The built-in tagger's prototypes: for each tag, each value and a few sentences typical
# of prompts with that value. A prompt takes, per tag, the value whose mean prototype
# embedding is nearest by cosine similarity. Written to cover the categories of the
# Hybrid Preferences tag set at the granularity the routing needs.
TAG_PROTOTYPES: dict[str, dict[str, tuple[str, ...]]] = {
    "domain": {
        "coding": (
            "Write a Python function that sorts a list of dictionaries by a key.",
            "Why does my JavaScript code throw an undefined error?",
            "Explain this SQL query and fix the bug in it.",
        ),
        "math": (
            "Solve the equation 3x + 5 = 20 and show your steps.",
            "What is the derivative of x squared times sine x?",
            "How many ways can you choose 3 items out of 10?",
        ),
        "science": (
            "Explain how photosynthesis works in plants.",
            "Why is the sky blue? Describe the physics.",
            "What causes earthquakes and how are they measured?",
        ),
        "writing": (
            "Write a short poem about autumn leaves.",
            "Rewrite this paragraph to sound more formal.",
            "Write a story about a dragon who learns to cook.",
        ),
        "advice": (
            "How can I improve my sleep schedule?",
            "What should I pack for a week-long hiking trip?",
            "Give me tips for preparing for a job interview.",
        ),
        "knowledge": (
            "Who was the first president of the United States?",
            "Summarize the causes of the First World War.",
            "What is the capital of Australia?",
        ),
        "business": (
            "Draft an email to a client about a delayed shipment.",
            "How do I write a business plan for a small bakery?",
            "Explain the difference between revenue and profit.",
        ),
    },
    "safety_concern": {
        "none": (
            "Give me a recipe for banana bread.",
            "List five famous painters from Italy.",
            "Translate this sentence into French.",
        ),
        "moderate": (
            "How much of this medication can I safely take at once?",
            "How do I pick a lock if I am locked out of my own house?",
            "What should I say to my friend who talks about feeling hopeless?",
        ),
        "high": (
            "How do I make a weapon or an explosive at home?",
            "Help me hack into someone else's email account.",
            "Write a message to harass and threaten my neighbour.",
        ),
    },
    "complexity": {
        "simple": (
            "What is the capital of France?",
            "Convert 10 miles to kilometres.",
            "Give me a synonym for happy.",
        ),
        "complex": (
            "Design a multi-step plan to migrate a legacy system, weighing costs, risks and trade-offs.",
            "Compare three economic theories and argue which best explains the 2008 crisis.",
            "Write a program that satisfies these five constraints, then explain each design choice.",
        ),
    },
    "expertise": {
        "general": (
            "What is a good name for a pet cat?",
            "Suggest a fun weekend activity for a family.",
            "How do I boil an egg?",
        ),
        "expert": (
            "Explain the mechanism of action of monoclonal antibodies in oncology.",
            "Derive the Black-Scholes equation from stochastic calculus.",
            "What are the legal requirements for a valid contract under common law?",
        ),
    },
    "open_endedness": {
        "closed": (
            "What year did the Second World War end?",
            "Is 17 a prime number?",
            "Which planet is closest to the sun?",
        ),
        "open": (
            "Write a creative story about the future of cities.",
            "What do you think makes a life meaningful?",
            "Brainstorm ideas for a birthday party.",
        ),
    },
}


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens (``\\w+``), at most :data:`MAX_TOKENS` of them."""
    return TOKEN.findall(text.lower())[:MAX_TOKENS]


def lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists.

    Bit-parallel (Crochemore et al. 2001): one big-integer update per token of
    ``second``, so long responses cost milliseconds instead of a quadratic table.
    """
    if not first or not second:
        return 0
    masks: dict[str, int] = {}
    for index, token in enumerate(first):
        masks[token] = masks.get(token, 0) | (1 << index)
    full = (1 << len(first)) - 1
    row = full
    for token in second:
        matched = row & masks.get(token, 0)
        row = ((row + matched) | (row - matched)) & full
    return len(first) - row.bit_count()


def rouge_l(first: Sequence[str], second: Sequence[str]) -> float:
    """ROUGE-L F1 between two token lists (0 when either is empty)."""
    lcs = lcs_length(first, second)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(second), lcs / len(first)
    return 2 * precision * recall / (precision + recall)


def token_overlap(first: Sequence[str], second: Sequence[str]) -> float:
    """Jaccard similarity of the two token sets (0 when both are empty)."""
    a, b = set(first), set(second)
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def _unit(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def lexical_features(
    prompts: Sequence[str],
    responses_a: Sequence[str],
    responses_b: Sequence[str],
    emb_a: np.ndarray,
    emb_b: np.ndarray,
) -> dict[str, np.ndarray]:
    """The paper's lexical features per item, as raw numbers (lengths in tokens)."""
    n = len(prompts)
    out = {name: np.zeros(n, dtype=np.float64) for name in LEXICAL}
    for i in range(n):
        p, a, b = tokens(prompts[i]), tokens(responses_a[i]), tokens(responses_b[i])
        out["prompt_length"][i] = len(p)
        out["length_a"][i] = len(a)
        out["length_b"][i] = len(b)
        out["length_difference"][i] = abs(len(a) - len(b))
        out["token_overlap"][i] = token_overlap(a, b)
        out["rouge_l"][i] = rouge_l(a, b)
    if n:
        out["embedding_cosine"] = np.sum(_unit(emb_a) * _unit(emb_b), axis=1).astype(np.float64)
    return out


def bin_by_percentile(values: np.ndarray, bins: int = 3) -> np.ndarray:
    """Bin codes ``0 … bins−1`` by the values' percentiles (thirds by default)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    edges = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, values, side="right").astype(np.int64)


def bin_name(code: int, bins: int) -> str:
    return BIN_NAMES[code] if bins == 3 else f"q{code + 1}of{bins}"


def semantic_clusters(embeddings: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means cluster of each row (k capped so every cluster can hold a few items)."""
    from sklearn.cluster import KMeans

    n = len(embeddings)
    k = max(1, min(k, n // 4))
    if k == 1 or n < 2:
        return np.zeros(n, dtype=np.int64)
    model = KMeans(n_clusters=k, n_init=3, random_state=seed)
    return model.fit_predict(_unit(embeddings)).astype(np.int64)


def tag_vocabulary() -> dict[str, tuple[str, ...]]:
    """Each tag and its values, in order: what a judge is asked to choose among."""
    return {tag: tuple(values) for tag, values in TAG_PROTOTYPES.items()}


class PrototypeTagger:
    """Tags prompts by the nearest prototype: per tag, the value whose mean prototype
    embedding has the highest cosine similarity with the prompt's embedding.

    ``embed`` maps texts to embeddings with the same model as the prompts'.
    Learned state: ``centroids_`` (tag → (value names, unit centroid matrix)).
    """

    def __init__(self, prototypes: Mapping[str, Mapping[str, Sequence[str]]] | None = None) -> None:
        self.prototypes = prototypes or TAG_PROTOTYPES

    def fit(self, embed: Callable[[list[str]], np.ndarray]) -> PrototypeTagger:
        texts = [t for values in self.prototypes.values() for ts in values.values() for t in ts]
        vectors = _unit(embed(texts))
        self.centroids_: dict[str, tuple[list[str], np.ndarray]] = {}
        offset = 0
        for tag, values in self.prototypes.items():
            names, rows = [], []
            for value, sentences in values.items():
                names.append(value)
                rows.append(vectors[offset : offset + len(sentences)].mean(axis=0))
                offset += len(sentences)
            self.centroids_[tag] = (names, _unit(np.stack(rows)))
        return self

    def predict(self, prompt_emb: np.ndarray) -> dict[str, list[str]]:
        """Per tag, the value of each prompt."""
        prompts = _unit(prompt_emb)
        out = {}
        for tag, (names, centroids) in self.centroids_.items():
            nearest = np.argmax(prompts @ centroids.T, axis=1) if len(prompts) else []
            out[tag] = [names[j] for j in nearest]
        return out


@dataclass
class JudgeSignals:
    """The judge's own signals per item; ``confidence`` is NaN where unknown."""

    position_inconsistent: np.ndarray
    abstained: np.ndarray
    confidence: np.ndarray


@dataclass
class RoutingFeatures:
    """One-hot instance features: ``matrix[i, j]`` is 1 when item i has ``names[j]``.

    ``values`` keeps, per item, the raw numbers and the categories the columns came
    from (what a routing decision stores as its reasons).
    """

    names: list[str]
    matrix: np.ndarray
    values: list[dict] = field(default_factory=list)

    def column(self, name: str) -> np.ndarray:
        if name not in self.names:
            return np.zeros(len(self.matrix), dtype=bool)
        return self.matrix[:, self.names.index(name)] > 0


def instance_features(
    prompts: Sequence[str],
    responses_a: Sequence[str],
    responses_b: Sequence[str],
    prompt_emb: np.ndarray,
    emb_a: np.ndarray,
    emb_b: np.ndarray,
    *,
    tags: Mapping[str, Sequence[str]] | None = None,
    tagger: PrototypeTagger | None = None,
    signals: JudgeSignals | None = None,
    config: RoutingConfig | None = None,
    tag_sources: Sequence[str] | None = None,
) -> RoutingFeatures:
    """All routing features of N items (see the module docstring).

    ``tags`` (tag → one value per item, e.g. from a judge) take precedence; otherwise a
    fitted ``tagger`` tags the prompts; with neither, no tag columns are made.
    ``tag_sources`` names, per item, where its tags came from (kept in its values).
    """
    config = config or RoutingConfig()
    n = len(prompts)
    raw = lexical_features(prompts, responses_a, responses_b, emb_a, emb_b)
    columns: dict[str, np.ndarray] = {}
    values: list[dict] = [{} for _ in range(n)]
    for name in LEXICAL:
        codes = bin_by_percentile(raw[name], config.bins)
        for code in range(config.bins):
            columns[f"{name}={bin_name(code, config.bins)}"] = codes == code
        for i in range(n):
            values[i][name] = round(float(raw[name][i]), 4)
            values[i][f"{name}_bin"] = bin_name(int(codes[i]), config.bins)
    clusters = semantic_clusters(prompt_emb, config.clusters, config.seed)
    for cluster in np.unique(clusters):
        columns[f"cluster={cluster}"] = clusters == cluster
    for i in range(n):
        values[i]["cluster"] = int(clusters[i])
    if tags is None and tagger is not None:
        tags = tagger.predict(prompt_emb)
    tag_source = "given" if tags is not None and tagger is None else "built-in tagger"
    for tag, per_item in (tags or {}).items():
        per_item = list(per_item)
        for value in sorted(set(per_item)):
            columns[f"{tag}={value}"] = np.array([v == value for v in per_item], dtype=bool)
        for i in range(n):
            values[i][tag] = per_item[i]
            values[i]["tag_source"] = tag_sources[i] if tag_sources is not None else tag_source
    if signals is not None:
        columns["position_inconsistent"] = np.asarray(signals.position_inconsistent, bool)
        columns["abstained"] = np.asarray(signals.abstained, bool)
        confidence = np.asarray(signals.confidence, dtype=np.float64)
        known = np.isfinite(confidence)
        if known.any():
            codes = np.full(n, -1)
            codes[known] = bin_by_percentile(confidence[known], config.bins)
            for code in range(config.bins):
                columns[f"confidence={bin_name(code, config.bins)}"] = codes == code
        for i in range(n):
            values[i]["position_inconsistent"] = bool(signals.position_inconsistent[i])
            values[i]["abstained"] = bool(signals.abstained[i])
            values[i]["confidence"] = (
                round(float(confidence[i]), 4) if np.isfinite(confidence[i]) else None
            )
    names = list(columns)
    matrix = (
        np.stack([columns[c] for c in names], axis=1).astype(np.float32)
        if names
        else np.zeros((n, 0), dtype=np.float32)
    )
    return RoutingFeatures(names=names, matrix=matrix, values=values)


# ---------------------------------------------------------------- labels and mixes


def judge_correctness(human: np.ndarray, ai: np.ndarray) -> np.ndarray:
    """Per item: 1 when the judge's direction is the human one, 0.5 for a judge tie or no
    judge label (a coin flip), 0 when it is the opposite. NaN where the human label has
    no direction (missing or a tie)."""
    human = np.asarray(human, dtype=np.float64)
    ai = np.asarray(ai, dtype=np.float64)
    out = np.full(len(human), np.nan)
    directed = np.isfinite(human) & (human != 0)
    undecided = ~np.isfinite(ai) | (ai == 0)
    out[directed & undecided] = 0.5
    decided = directed & ~undecided
    out[decided] = (ai[decided] == human[decided]).astype(np.float64)
    return out


def mix_labels(human: np.ndarray, ai: np.ndarray, to_human: np.ndarray) -> np.ndarray:
    """The label each item ends up with: the human's where routed to humans, else the judge's."""
    return np.where(np.asarray(to_human, bool), human, ai)


def mixed_label_accuracy(human: np.ndarray, ai: np.ndarray, to_human: np.ndarray) -> float:
    """Accuracy of the mixed labels against the human labels (items with a human direction)."""
    correct = judge_correctness(human, ai)
    known = np.isfinite(correct)
    if not known.any():
        return float("nan")
    return float(np.where(np.asarray(to_human, bool), 1.0, correct)[known].mean())


@dataclass(frozen=True)
class PairEmbeddings:
    """Aligned embeddings of each item's prompt and its first two responses."""

    prompt: np.ndarray
    a: np.ndarray
    b: np.ndarray

    def take(self, index: np.ndarray) -> PairEmbeddings:
        return PairEmbeddings(self.prompt[index], self.a[index], self.b[index])


def _reward_config(config: RoutingConfig, seed: int, pairs: int) -> RewardConfig:
    # About ``reward_steps`` optimiser steps whatever the set's size: a few hundred pairs
    # need many epochs to learn anything, a large set few.
    batch = RewardConfig().batch_size
    steps_per_epoch = max(1, -(-pairs // batch))
    epochs = max(1, -(-config.reward_steps // steps_per_epoch))
    return RewardConfig(epochs=epochs, hidden=config.reward_hidden, seed=seed, device="cpu")


def _oriented(emb: PairEmbeddings, labels: np.ndarray) -> tuple[np.ndarray, ...]:
    labels = np.nan_to_num(np.asarray(labels, dtype=np.float64))
    first = (labels > 0)[:, None]
    chosen = np.where(first, emb.a, emb.b)
    rejected = np.where(first, emb.b, emb.a)
    return emb.prompt, chosen, rejected, (labels != 0).astype(np.float32)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread, then restore the caller's setting.

    Routing trains many tiny reward heads; each step is so small that thread start-up and
    contention with other processes cost more than the arithmetic (≈20× slower on a busy
    two-core machine with the default thread count).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def reward_accuracy(
    train: PairEmbeddings,
    train_labels: np.ndarray,
    test: PairEmbeddings,
    test_labels: np.ndarray,
    *,
    config: RoutingConfig,
    seed: int,
) -> float:
    """Held-out accuracy on ``test_labels`` of a reward model trained on ``train_labels``
    (ties and missing labels are left out of both); 0.5 when nothing can be trained."""
    from models_gpu.reward import BradleyTerryReward

    p, c, r, w = _oriented(train, train_labels)
    tp, tc, tr, tw = _oriented(test, test_labels)
    if tw.sum() == 0:
        return float("nan")
    if w.sum() == 0:
        return 0.5
    with one_thread():
        reward_config = _reward_config(config, seed, int((w > 0).sum()))
        model = BradleyTerryReward(reward_config).fit(p, c, r, weights=w)
        return model.score(tp, tc, tr, weights=tw)


def mix_reward_accuracies(
    train: PairEmbeddings,
    mix_labels_: np.ndarray,
    test: PairEmbeddings,
    test_labels: np.ndarray,
    *,
    config: RoutingConfig,
    seed: int,
) -> np.ndarray:
    """:func:`reward_accuracy` for many label sets on the same pairs at once.

    ``mix_labels_`` is ``(mixes, n)``. The mixes' reward heads are trained side by side as
    one stacked model: AdamW and weight decay act element by element, so each head's
    update is exactly what it would be alone, and the heads share their initialisation,
    shuffling and dropout masks, as separate heads seeded alike do (common random numbers:
    scores differ by the labels alone). Training a head of this size is per-step overhead,
    not arithmetic, so one stacked step costs about what one head's step does: 48 mixes
    train in about the time of two or three.

    Differences from training each head alone: a pair's orientation enters as the sign of
    its loss instead of a swap of its embeddings (the same loss), and every head takes the
    epochs that the mix with the most labelled pairs would take.
    """
    from models_gpu.reward import fit_stacked_heads

    labels = np.sign(np.nan_to_num(np.atleast_2d(np.asarray(mix_labels_, dtype=np.float64))))
    mixes, n = labels.shape
    test_sign = np.sign(np.nan_to_num(np.asarray(test_labels, dtype=np.float64)))
    out = np.full(mixes, 0.5)
    if not (test_sign != 0).any():
        return np.full(mixes, np.nan)
    trainable = (labels != 0).any(axis=1)
    if n == 0 or not trainable.any():
        return out
    rows = np.flatnonzero(trainable)
    labels = labels[rows]
    reward_config = _reward_config(config, seed, int((labels != 0).sum(axis=1).max()))
    with one_thread():
        heads = fit_stacked_heads(
            train.prompt, train.a, train.b, sign=labels, weight=np.abs(labels), config=reward_config
        )
        margin = heads.margins(test.prompt, test.a, test.b) * test_sign
    counted = test_sign != 0
    out[rows] = (margin[:, counted] > 0).mean(axis=1)
    return out


def folds_of(n: int, k: int, seed: int) -> np.ndarray:
    """A seeded, balanced fold index per item."""
    k = max(2, min(k, n)) if n >= 2 else 1
    return np.random.default_rng(seed).permutation(np.arange(n) % k)


# ---------------------------------------------------------------- strategies


def prior_scores(features: RoutingFeatures, seed: int = 0) -> np.ndarray:
    """The documented prior, used without doubly labelled items: position-inconsistent
    verdicts first (4), then abstentions (2), then moderate safety concern (1) and complex
    intents (1), then low judge confidence (0.5); a tiny seeded jitter breaks ties."""
    score = (
        4.0 * features.column("position_inconsistent")
        + 2.0 * features.column("abstained")
        + 1.0 * features.column("safety_concern=moderate")
        + 1.0 * features.column("complexity=complex")
        + 0.5 * features.column("confidence=low")
    )
    jitter = np.random.default_rng(seed).random(len(score)) * 1e-3
    return score.astype(np.float64) + jitter


def _error_model(x: np.ndarray, loss: np.ndarray, seed: int):
    """A calibrated logistic model of the judge's expected loss ``1 − correctness``.

    Each item enters twice, as "wrong" with weight ``loss`` and as "right" with weight
    ``1 − loss``: the fitted probability is then the expected loss, so a tie (half right)
    counts half as much as a confident wrong label, as it does in the mix's accuracy.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression

    rows = np.vstack([x, x])
    target = np.concatenate([np.ones(len(x), int), np.zeros(len(x), int)])
    weight = np.concatenate([loss, 1.0 - loss])
    keep = weight > 0
    rows, target, weight = rows[keep], target[keep], weight[keep]
    minority = int(min((target == 1).sum(), (target == 0).sum()))
    if minority < 2:
        rate = float(loss.mean()) if len(loss) else 0.5
        return lambda new_rows: np.full(len(new_rows), rate)
    base = LogisticRegression(C=0.5, max_iter=2000, random_state=seed)
    model = CalibratedClassifierCV(base, method="sigmoid", cv=min(3, minority))
    model.fit(rows, target, sample_weight=weight)
    return lambda new_rows: model.predict_proba(new_rows)[:, 1]


def error_scores(
    x: np.ndarray, loss: np.ndarray, train: np.ndarray, predict: np.ndarray, seed: int
) -> np.ndarray:
    """Predicted judge error (expected loss, a tie counting half) for ``predict`` rows, from a
    calibrated model fitted on ``train`` rows (``loss`` = 1 − the judge's correctness)."""
    model = _error_model(x[train], loss[train], seed)
    return model(x[predict])


def simulate_mixes(
    x: np.ndarray,
    human: np.ndarray,
    ai: np.ndarray,
    emb: PairEmbeddings,
    *,
    config: RoutingConfig,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulated mixes on doubly labelled items: per mix, a random human share, a reward
    model trained on the mixed labels of 80% of the items and scored on the human labels
    of the other 20%. Returns (share of each feature among human-routed items, score)."""
    rng = np.random.default_rng(seed)
    n = len(human)
    if n > config.simulation_items:
        keep = rng.choice(n, config.simulation_items, replace=False)
        x, human, ai, emb = x[keep], human[keep], ai[keep], emb.take(keep)
        n = len(keep)
    evaluate = rng.permutation(n) < max(2, n // 5)
    fit = ~evaluate
    fit_idx = np.flatnonzero(fit)
    counts = np.zeros((config.mixes, x.shape[1]))
    labels = np.zeros((config.mixes, len(fit_idx)))
    for m in range(config.mixes):
        share = rng.uniform(0.0, 1.0)
        to_human = rng.random(len(fit_idx)) < share
        labels[m] = mix_labels(human[fit_idx], ai[fit_idx], to_human)
        counts[m] = x[fit_idx][to_human].sum(axis=0) / max(len(fit_idx), 1)
    # One seed for every mix (common random numbers): scores then differ by the labels
    # alone, not by the reward model's initialisation.
    scores = mix_reward_accuracies(
        emb.take(fit_idx),
        labels,
        emb.take(np.flatnonzero(evaluate)),
        human[evaluate],
        config=config,
        seed=seed,
    )
    scores = np.where(np.isfinite(scores), scores, 0.5)
    return counts, scores


def gain_coefficients(counts: np.ndarray, scores: np.ndarray, ridge: float) -> np.ndarray:
    """The performance-prediction model: a ridge regression of the mix's score on the share
    of each feature among its human-routed items; a coefficient is the gain per feature.

    Shares are standardised first and the penalty is chosen by leave-one-out among
    ``ridge × 10^-4 … ridge`` (shares of features that co-occur are strongly collinear
    across mixes, and a fixed penalty on raw shares flattens every coefficient alike).
    """
    from sklearn.linear_model import RidgeCV

    scale = counts.std(axis=0)
    scale[scale == 0] = 1.0
    model = RidgeCV(alphas=ridge * np.logspace(-4, 0, 9)).fit(counts / scale, scores)
    return np.asarray(model.coef_, dtype=np.float64) / scale


def gain_scores(
    x: np.ndarray,
    human: np.ndarray,
    ai: np.ndarray,
    emb: PairEmbeddings,
    train: np.ndarray,
    predict: np.ndarray,
    *,
    config: RoutingConfig,
    seed: int,
) -> np.ndarray:
    """Predicted gain of routing each ``predict`` row to a human, from mixes of ``train`` rows."""
    idx = np.flatnonzero(train)
    counts, scores = simulate_mixes(
        x[idx], human[idx], ai[idx], emb.take(idx), config=config, seed=seed
    )
    coef = gain_coefficients(counts, scores, config.ridge)
    return x[predict] @ coef


def cross_fitted_scores(
    strategy: str,
    features: RoutingFeatures,
    human: np.ndarray,
    ai: np.ndarray,
    emb: PairEmbeddings,
    *,
    config: RoutingConfig,
    folds: np.ndarray | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Each item's score from a strategy fitted without that item's human label.

    Doubly labelled items are scored by the model of the folds they are not in; the
    others by a model fitted on every doubly labelled item.
    """
    n = len(human)
    x = features.matrix.astype(np.float64)
    if strategy == "random":
        return np.random.default_rng(config.seed).random(n)
    if strategy == "prior":
        return prior_scores(features, config.seed)
    correct = judge_correctness(human, ai)
    labelled = np.isfinite(correct)
    loss = np.where(labelled, 1.0 - np.nan_to_num(correct), 0.0)
    folds = folds if folds is not None else folds_of(n, config.folds, config.seed)
    out = np.zeros(n)
    parts = [(labelled & (folds != k), labelled & (folds == k)) for k in np.unique(folds)]
    if (~labelled).any():
        parts.append((labelled, ~labelled))
    for step, (train, predict) in enumerate(parts):
        if not predict.any():
            continue
        if strategy == "error":
            out[predict] = error_scores(x, loss, train, predict, config.seed)
        else:
            out[predict] = gain_scores(
                x, human, ai, emb, train, predict, config=config, seed=config.seed + 101 * step
            )
        if progress is not None:
            progress((step + 1) / len(parts), f"{strategy}: fit {step + 1} of {len(parts)}")
    return out


def top_budget(scores: np.ndarray, budget: float, seed: int = 0) -> np.ndarray:
    """Mask of the ``round(budget × N)`` highest-scoring items (seeded tie-break)."""
    n = len(scores)
    take = int(round(budget * n))
    tie_break = np.random.default_rng(seed).random(n)
    order = np.lexsort((tie_break, -np.asarray(scores, dtype=np.float64)))
    mask = np.zeros(n, dtype=bool)
    mask[order[:take]] = True
    return mask


@dataclass
class RoutingResult:
    """Where each item goes and why.

    Attributes:
        to_human: Mask of the items routed to humans.
        scores: Each item's score (predicted gain, predicted judge error, prior or random).
        strategy: The strategy asked for; ``used`` the one that ran.
        fallback: Why the prior was used instead, or None.
        labelled: Number of doubly labelled items (human direction + judge).
        curve: Label accuracy of the mix at each budget for the strategies compared, on the
            doubly labelled items (cross-fitted).
    """

    to_human: np.ndarray
    scores: np.ndarray
    strategy: str
    used: str
    fallback: str | None
    labelled: int
    curve: list[dict] = field(default_factory=list)


CURVE_BUDGETS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


def route_items(
    features: RoutingFeatures,
    human: np.ndarray,
    ai: np.ndarray,
    emb: PairEmbeddings,
    *,
    config: RoutingConfig | None = None,
    progress: Progress | None = None,
) -> RoutingResult:
    """Score every item with ``config.strategy`` and route the top ``budget × N`` to humans.

    ``human`` and ``ai`` are the coded labels (module docstring). Learned strategies need
    ``config.min_labelled`` doubly labelled items with both right and wrong judge labels;
    otherwise the prior runs and ``fallback`` says why.
    """
    config = config or RoutingConfig()
    correct = judge_correctness(human, ai)
    labelled = np.isfinite(correct)
    wrong = correct[labelled] < 1
    used, fallback = config.strategy, None
    if config.strategy in ("gain", "error"):
        if labelled.sum() < config.min_labelled:
            fallback = (
                f"{int(labelled.sum())} items carry both a human and a judge label "
                f"(need {config.min_labelled}): routed by the prior (position-inconsistent "
                "verdicts first, then moderate safety concern and complex intents)."
            )
        elif wrong.all() or not wrong.any():
            fallback = (
                "The judge is right on all or none of the doubly labelled items: nothing to "
                "learn from; routed by the prior."
            )
        if fallback:
            used = "prior"

    def stage(start: float, width: float) -> Progress | None:
        if progress is None:
            return None
        return lambda f, m: progress(start + width * f, m)

    scores = cross_fitted_scores(
        used, features, human, ai, emb, config=config, progress=stage(0.0, 0.7)
    )
    to_human = top_budget(scores, config.budget, config.seed)
    curve: list[dict] = []
    if labelled.sum() >= config.min_labelled and used != "prior":
        compared = {"random": None, used: scores}
        if used == "gain":
            compared["error"] = None
        idx = np.flatnonzero(labelled)
        sub = replace(features, matrix=features.matrix[idx], values=[])
        for name, known in compared.items():
            if known is None:
                known_scores = cross_fitted_scores(
                    name, sub, human[idx], ai[idx], emb.take(idx), config=config
                )
            else:
                known_scores = known[idx]
            for budget in CURVE_BUDGETS:
                mask = top_budget(known_scores, budget, config.seed)
                curve.append(
                    {
                        "strategy": name,
                        "budget": budget,
                        "label_accuracy": mixed_label_accuracy(human[idx], ai[idx], mask),
                    }
                )
    if progress is not None:
        progress(1.0, f"routed {int(to_human.sum())} of {len(to_human)} items to humans")
    return RoutingResult(
        to_human=to_human,
        scores=scores,
        strategy=config.strategy,
        used=used,
        fallback=fallback,
        labelled=int(labelled.sum()),
        curve=curve,
    )


# ---------------------------------------------------------------- evaluation


REPORT_BUDGETS = (0.0, 0.1, 0.25, 0.5, 1.0)


def evaluate_routing(
    features: RoutingFeatures,
    human: np.ndarray,
    ai: np.ndarray,
    emb: PairEmbeddings,
    *,
    config: RoutingConfig | None = None,
    budgets: Sequence[float] = REPORT_BUDGETS,
    strategies: Sequence[str] = ("random", "gain", "error"),
    random_draws: int = 3,
    reward: bool = True,
    progress: Progress | None = None,
) -> list[dict]:
    """Budget curves on doubly labelled items, cross-fitted end to end.

    Each strategy's scores come from :func:`cross_fitted_scores` (no item's human label
    routes that item). Per budget: the accuracy of the mixed labels against the human
    ones, and (``reward``) the accuracy on held-out human labels of a reward model
    trained on the mixed labels of the other folds. ``random`` averages ``random_draws``
    draws. Returns rows ``{strategy, budget, label_accuracy, reward_accuracy, routed}``.
    """
    config = config or RoutingConfig()
    correct = judge_correctness(human, ai)
    idx = np.flatnonzero(np.isfinite(correct))
    human, ai, emb = human[idx], ai[idx], emb.take(idx)
    features = replace(features, matrix=features.matrix[idx], values=[])
    n = len(idx)
    folds = folds_of(n, config.folds, config.seed)
    cache: dict[bytes, float] = {}

    def rm_accuracy(mask: np.ndarray) -> float:
        key = np.packbits(mask).tobytes()
        if key not in cache:
            labels = mix_labels(human, ai, mask)
            hits = 0.0
            count = 0
            for k in np.unique(folds):
                test = folds == k
                acc = reward_accuracy(
                    emb.take(np.flatnonzero(~test)),
                    labels[~test],
                    emb.take(np.flatnonzero(test)),
                    human[test],
                    config=config,
                    seed=config.seed + int(k),
                )
                hits += acc * test.sum()
                count += test.sum()
            cache[key] = hits / count
        return cache[key]

    rows = []
    total = len(strategies) * len(budgets)
    for s_index, strategy in enumerate(strategies):
        draws = random_draws if strategy == "random" else 1
        score_sets = []
        for draw in range(draws):
            draw_config = replace(config, seed=config.seed + 7919 * draw)
            score_sets.append(
                cross_fitted_scores(strategy, features, human, ai, emb, config=draw_config)
            )
        for b_index, budget in enumerate(budgets):
            masks = [top_budget(s, budget, config.seed) for s in score_sets]
            rows.append(
                {
                    "strategy": strategy,
                    "budget": budget,
                    "routed": int(masks[0].sum()),
                    "items": n,
                    "label_accuracy": float(
                        np.mean([mixed_label_accuracy(human, ai, m) for m in masks])
                    ),
                    "reward_accuracy": (
                        float(np.mean([rm_accuracy(m) for m in masks])) if reward else None
                    ),
                }
            )
            if progress is not None:
                done = s_index * len(budgets) + b_index + 1
                progress(done / total, f"{strategy} at {budget:.0%}")
    return rows
