"""Settings of the numerical core as frozen dataclasses, with their documented defaults.

This module imports only the standard library, so a web process can read the defaults
(to validate or describe a job's parameters) without loading numpy or torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_MODEL = "all-MiniLM-L6-v2"
WHEN_SHORT = ("fill", "stop")
PRECISIONS = ("auto", "float32", "bfloat16")

Progress = Callable[[float, str], None]
"""``progress(fraction, message)``: called with fractions rising from 0 to 1."""


@dataclass(frozen=True)
class EmbeddingConfig:
    """How to embed texts.

    Attributes:
        model: ``"all-MiniLM-L6-v2"`` (the bundled copy) or a local directory holding a
            sentence-transformers model or a Hugging Face encoder (mean-pooled).
        batch_size: Texts per forward pass.
        device: ``"cuda"``, ``"cpu"``, ... or None to use CUDA when present.
        normalize: L2-normalise the vectors (cosine geometry, distances in [0, 2]).
        max_length: Token limit; None keeps the model's own (256 for MiniLM).
        precision: The encoder's weights and arithmetic. ``"auto"`` takes bfloat16 where
            the device computes it natively (a CUDA GPU with bfloat16, a CPU with AMX or
            AVX-512 BF16: about 3.8x faster than float32 for MiniLM on one such core,
            with cosine similarity above 0.9998 to the float32 vectors) and float32
            elsewhere. ``"float32"`` or ``"bfloat16"`` force one. Vectors are returned
            as float32 either way, and the precision is part of the cache's identity.
    """

    model: str = DEFAULT_MODEL
    batch_size: int = 64
    device: str | None = None
    normalize: bool = True
    max_length: int | None = None
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


@dataclass(frozen=True)
class RewardConfig:
    """Training settings for :class:`models_gpu.BradleyTerryReward`.

    Attributes:
        hidden: Width of the MLP's hidden layer.
        epochs: Passes over the training pairs.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay; frozen embeddings overfit quickly without it.
        batch_size: Pairs per optimisation step.
        dropout: Dropout on the hidden layer.
        folds: Number of group folds for :func:`models_gpu.out_of_fold_margins`.
        duplicate_cosine: Prompts whose embeddings are at least this cosine-similar
            share a fold (clusters by connected components, joined with the exact
            groups), so a near-duplicate never scores its twin; 0.9 joins rephrasings
            and the same conversation with a changed word, yet on HH-RLHF its largest
            cluster has two prompts. 1.0 leaves only identical vectors together.
        seed: Seeds initialisation, dropout, shuffling and fold assignment. Training uses
            its own random streams, so the caller's global torch RNG is left as it was.
        device: None for CUDA when present, else CPU.
    """

    hidden: int = 128
    epochs: int = 12
    lr: float = 1e-3
    weight_decay: float = 0.05
    batch_size: int = 128
    dropout: float = 0.2
    folds: int = 5
    duplicate_cosine: float = 0.9
    seed: int = 0
    device: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.duplicate_cosine <= 1.0:
            raise ValueError(f"duplicate_cosine must be in (0, 1], got {self.duplicate_cosine}")


@dataclass(frozen=True)
class FiFAConfig:
    """Settings for :func:`models_gpu.fifa_select`.

    Attributes:
        alpha: Weight of text quality (q ∈ [0, 1]; 1.0 makes a broken text cost about
            one logit of margin).
        gamma: Weight of ``log ρ_k``; 1.0 as in the paper's unweighted sum.
        k: Neighbour rank for ``ρ_k`` (5: stable yet local).
        keep_fraction: Share of pairs to keep when ``keep_top`` is None.
        keep_top: Exact number of pairs to keep; overrides ``keep_fraction``.
        greedy: Re-score diversity against kept prompts (True) or take the static
            top-scoring pairs as in the paper (False).
        duplicate_radius: In greedy mode a prompt within this Euclidean distance of a
            kept prompt is never kept (0.05 on unit vectors ≈ cosine 0.9987, i.e. the
            same text up to punctuation).
        seed: Breaks score ties and draws the random baseline in summaries.
        when_short: What to do when greedy selection exhausts its candidates before
            reaching the requested size: ``"fill"`` up by importance or ``"stop"``.
            Filling is the default because the requested size is what the user asked
            for (a fraction of the data to train on); the diverse pairs still come first
            in ``kept_order``, and the result reports how many were filled.
    """

    alpha: float = 1.0
    gamma: float = 1.0
    k: int = 5
    keep_fraction: float = 0.5
    keep_top: int | None = None
    greedy: bool = True
    duplicate_radius: float = 0.05
    seed: int = 0
    when_short: str = "fill"

    def __post_init__(self) -> None:
        if self.when_short not in WHEN_SHORT:
            raise ValueError(f"when_short must be one of {WHEN_SHORT}, got {self.when_short!r}")


@dataclass(frozen=True)
class SuspectConfig:
    """Settings for :func:`models_gpu.flag_suspects` (confident learning on held-out margins).

    Attributes:
        threshold: Never flag a pair whose probability of carrying a wrong label (the
            per-pair ``confidence``) is below this; 0.5 flags only pairs more likely
            wrong than right.
        flag_share: Share of the estimated number of wrong labels to flag, most
            confident first. 1.0 flags as many pairs as confident learning estimates
            are wrong; a held-out model of modest accuracy (0.6 on HH-RLHF harmless)
            counts its own mistakes among them, and only the confident end of the
            ranking is worth a reviewer's time: on 1,000 HH-RLHF pairs with 10-40% of
            labels flipped, the flagged set held flips at 1.3-1.5x their base rate at
            1.0 and at 1.7-3x at 0.1.
        max_flagged: At most this many flags (a review budget); None for no cap.
        calibrate: Fit a temperature to the held-out margins before turning them into
            probabilities. It never changes the ranking, only the probabilities (and so
            the ``threshold`` test, the confidences and the expected precision).
        refit: Score a second time with held-out models trained without the pairs the
            first pass estimated wrong (as cleanlab's ``CleanLearning`` retrains on
            cleaned data), and flag by that second ranking. A model that no longer
            learns from flipped labels ranks the remaining ones more sharply.
    """

    threshold: float = 0.5
    flag_share: float = 0.1
    max_flagged: int | None = None
    calibrate: bool = True
    refit: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if not 0.0 <= self.flag_share <= 1.0:
            raise ValueError(f"flag_share must be in [0, 1], got {self.flag_share}")
        if self.max_flagged is not None and self.max_flagged < 0:
            raise ValueError(f"max_flagged must be at least 0, got {self.max_flagged}")


@dataclass(frozen=True)
class PipelineConfig:
    """Settings for :func:`models_gpu.score_pairs`; each part has its own documented defaults."""

    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    fifa: FiFAConfig = field(default_factory=FiFAConfig)
    suspects: SuspectConfig = field(default_factory=SuspectConfig)


ROUTING_STRATEGIES = ("gain", "error", "prior", "random")


@dataclass(frozen=True)
class RoutingConfig:
    """Settings for :func:`models_gpu.routing.route_items` (hybrid human/AI routing).

    Attributes:
        budget: Share of the items routed to humans (0–1); ``round(budget × N)`` items.
        strategy: ``"gain"``: the performance-prediction model (simulated human/AI mixes,
            a reward model trained on each, a linear model from feature counts among the
            human-routed items to its held-out accuracy); ``"error"``: a calibrated
            classifier of judge ≠ human; ``"prior"``: the documented prior (position
            inconsistency, then moderate safety concern and complex intents); ``"random"``.
            Without doubly labelled items, ``gain`` and ``error`` fall back to ``prior``.
        bins: Quantile bins of each lexical feature (3: thirds by percentile, as in the paper).
        clusters: k of the k-means semantic clusters (fewer when there are fewer items).
        folds: Cross-fitting folds: no item's human label is used to route that item.
        mixes: Simulated human/AI mixes per fit of the performance-prediction model.
        simulation_items: At most this many doubly labelled items enter the simulated mixes
            (a seeded sample), bounding the reward-model trainings on large projects.
        ridge: L2 penalty of the performance-prediction model (many features, few mixes).
        reward_steps: Optimiser steps of each reward model trained on a mix (epochs are
            set to reach about this many, so small sets are not left undertrained).
        reward_hidden: Hidden width of that reward model.
        min_labelled: Fewest doubly labelled items (with both classes of judge error) the
            learned strategies need; below it they fall back to the prior.
        seed: Seeds the clusters, folds, mixes, reward models and tie-breaks.
        tag_source: Where the instance tags come from: ``"auto"`` (the LM judge whose
            labels are routed on, when it is a configured chat or local judge, else the
            built-in tagger), ``"builtin"`` (the prototype tagger on embeddings), or a
            judge (its id or name). Items the judge cannot tag keep the built-in tags.
    """

    budget: float = 0.25
    strategy: str = "error"
    bins: int = 3
    clusters: int = 8
    folds: int = 5
    mixes: int = 48
    simulation_items: int = 2000
    ridge: float = 10.0
    reward_steps: int = 200
    reward_hidden: int = 64
    min_labelled: int = 20
    seed: int = 0
    tag_source: str = "auto"

    def __post_init__(self) -> None:
        if self.strategy not in ROUTING_STRATEGIES:
            raise ValueError(f"strategy must be one of {ROUTING_STRATEGIES}, got {self.strategy!r}")
        if not 0.0 <= self.budget <= 1.0:
            raise ValueError(f"budget must be within [0, 1], got {self.budget}")


@dataclass(frozen=True)
class SAEConfig:
    """Settings for :func:`models_gpu.sae.train_sae` (signed BatchTopK sparse autoencoder).

    Attributes:
        n_features: Dictionary size M (32 as in WIMHF: few enough to read every one).
        k_active: K: features active per row *on average over a batch* (BatchTopK keeps
            the ``K × batch`` largest |pre-activations| of the batch); at inference a
            threshold on |pre-activation| estimated during training replaces the batch.
        aux_k: Dead features the auxiliary loss lets reconstruct the residual per row
            (Gao et al. 2024 use a multiple of K).
        aux_coef: Weight of that auxiliary loss; 0 switches dead-feature revival off.
        dead_after: A feature that fired on no row for this many steps counts as dead.
        lr: Adam learning rate.
        batch_size: Rows per step.
        min_batches: Small sets shrink the batch so that an epoch still takes at least
            this many steps (2,000 rows at batch 2,048 would otherwise learn one step an
            epoch).
        max_epochs: Most passes over the training rows.
        patience: Stop after this many epochs without a better held-out loss (the best
            epoch's weights are kept).
        seed: Seeds initialisation and shuffling; training uses its own generator, so
            the caller's global torch RNG is left as it was.
        device: ``"auto"`` for CUDA when present, else ``"cpu"``, ``"cuda"``, ...
        threads: Torch CPU threads while training (restored after); None leaves torch's
            setting. The matrices are narrow (``n_features`` columns), so threads mostly
            wait on each other: on a busy 2-core machine one thread trained 5x faster.
    """

    n_features: int = 32
    k_active: int = 4
    aux_k: int = 8
    aux_coef: float = 1 / 32
    dead_after: int = 50
    lr: float = 3e-3
    batch_size: int = 4096
    min_batches: int = 16
    max_epochs: int = 40
    patience: int = 4
    seed: int = 0
    device: str = "auto"
    threads: int | None = 1

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1 or None, got {self.threads}")
        if self.n_features < 1:
            raise ValueError(f"n_features must be at least 1, got {self.n_features}")
        if not 1 <= self.k_active <= self.n_features:
            raise ValueError(f"k_active must be in [1, n_features], got {self.k_active}")
        if self.aux_k < 0 or self.aux_coef < 0:
            raise ValueError("aux_k and aux_coef must not be negative")
        if min(self.dead_after, self.batch_size, self.min_batches, self.max_epochs) < 1:
            raise ValueError(
                "dead_after, batch_size, min_batches and max_epochs must be at least 1"
            )
        if self.patience < 0 or not self.lr > 0:
            raise ValueError("patience must not be negative and lr must be positive")


@dataclass(frozen=True)
class ExplainConfig:
    """Settings for :func:`models_gpu.explain.explain_preferences` (WIMHF).

    Attributes:
        sae: The sparse autoencoder's settings.
        include_prompt: Embed ``"prompt\\n\\nresponse"`` instead of the response alone.
        held_out_fraction: Share of *prompts* held out (never trained on) for the SAE's
            early stopping, the probes' AUCs and the judge's fidelity check.
        top_examples: Top-activating pairs kept per direction and per feature.
        ngram_max: Longest contrastive n-gram (in words).
        ngram_pairs: The contrastive n-grams and format statistics read this many
            most-active pairs per direction.
        top_ngrams: Contrastive n-grams kept per side.
        min_group_annotators: A group needs at least this many distinct annotators ...
        min_group_judgements: ... and this many judgements to be reported.
        sparse_sizes: Feature counts of the sparse probes (length is always in, on top).
        full_probe_cs: Inverse L2 strengths tried for the full linear probe on Δ (picked
            on a prompt-grouped validation split of the training pairs).
        alpha: Significance level (Bonferroni-corrected over features for the pooled
            coefficients; also the level of the judge's fidelity test).
        ridge: Tiny L2 penalty in the Wald regressions, so a separable or collinear
            design still has a finite Hessian.
        fidelity_pairs: Held-out pairs the judge rates per feature name.
        seed: Seeds the split, the SAE (with ``sae.seed``) and the probes.
    """

    sae: SAEConfig = field(default_factory=SAEConfig)
    include_prompt: bool = False
    held_out_fraction: float = 0.2
    top_examples: int = 8
    ngram_max: int = 3
    ngram_pairs: int = 50
    top_ngrams: int = 10
    min_group_annotators: int = 3
    min_group_judgements: int = 30
    sparse_sizes: tuple[int, ...] = (5, 10)
    full_probe_cs: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    alpha: float = 0.05
    ridge: float = 1e-4
    fidelity_pairs: int = 40
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.held_out_fraction < 1.0:
            raise ValueError(f"held_out_fraction must be in (0, 1), got {self.held_out_fraction}")
        if self.ngram_max < 1 or self.top_examples < 0 or self.ngram_pairs < 1:
            raise ValueError("ngram_max and ngram_pairs must be at least 1, top_examples >= 0")
        if any(size < 1 for size in self.sparse_sizes):
            raise ValueError(f"sparse_sizes must be positive, got {self.sparse_sizes}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
