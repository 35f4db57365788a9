"""Ballot's numerical core: embeddings, reward models, FiFA scores, kNN entropy, suspects,
annotator reliability (Dawid–Skene), sparse-autoencoder explanations of preferences (WIMHF).

Pure Python + numpy + torch, usable from a notebook::

    from models_gpu import EmbeddingConfig, embed_texts, out_of_fold_margins, fifa_select

This package never imports Django, and importing it has no side effects: no
environment variable is set and no global random seed is touched (seeds travel in the
config dataclasses). The configs load with the package; everything else loads on first
use, so a web process can read ``FiFAConfig()``'s defaults without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from models_gpu.config import (
    DEFAULT_MODEL,
    ROUTING_STRATEGIES,
    WHEN_SHORT,
    EmbeddingConfig,
    ExplainConfig,
    FiFAConfig,
    PipelineConfig,
    Progress,
    RewardConfig,
    RoutingConfig,
    SAEConfig,
    SuspectConfig,
)

if TYPE_CHECKING:
    from models_gpu.duplicates import fold_groups, near_duplicate_groups
    from models_gpu.embeddings import (
        Embedder,
        EmbeddingCache,
        embed_texts,
        get_embedder,
        model_fingerprint,
        text_digests,
    )
    from models_gpu.entropy import knn_distances, knn_entropy
    from models_gpu.explain import (
        Explanation,
        FeatureReport,
        GroupEffect,
        GroupProbe,
        PreferencePair,
        PreparedInputs,
        ProbeReport,
        explain_preferences,
        name_features,
        ngram_spans,
        prepare_inputs,
    )
    from models_gpu.fifa import (
        FiFAResult,
        SelectionSummary,
        fifa_select,
        selection_summary,
        text_quality,
    )
    from models_gpu.pipeline import PairScoring, score_pairs
    from models_gpu.reliability import DawidSkeneConfig, DawidSkeneFit, fit_dawid_skene
    from models_gpu.reward import (
        BradleyTerryReward,
        HFRewardModel,
        OutOfFoldCache,
        OutOfFoldResult,
        StackedHeads,
        fit_stacked_heads,
        group_folds,
        out_of_fold_key,
        out_of_fold_margins,
    )
    from models_gpu.sae import SAEFit, SparseAutoencoder, load_sae, save_sae, train_sae
    from models_gpu.suspects import (
        NoiseEstimate,
        SuspectResult,
        calibrate_temperature,
        estimate_noise,
        find_suspects,
        flag_suspects,
    )

_LAZY = {
    "models_gpu.duplicates": ("fold_groups", "near_duplicate_groups"),
    "models_gpu.embeddings": (
        "EmbeddingCache",
        "Embedder",
        "embed_texts",
        "get_embedder",
        "model_fingerprint",
        "text_digests",
    ),
    "models_gpu.entropy": ("knn_distances", "knn_entropy"),
    "models_gpu.explain": (
        "Explanation",
        "FeatureReport",
        "GroupEffect",
        "GroupProbe",
        "PreferencePair",
        "PreparedInputs",
        "ProbeReport",
        "explain_preferences",
        "name_features",
        "ngram_spans",
        "prepare_inputs",
    ),
    "models_gpu.fifa": (
        "FiFAResult",
        "SelectionSummary",
        "fifa_select",
        "selection_summary",
        "text_quality",
    ),
    "models_gpu.pipeline": ("PairScoring", "score_pairs"),
    "models_gpu.reward": (
        "BradleyTerryReward",
        "HFRewardModel",
        "OutOfFoldCache",
        "OutOfFoldResult",
        "StackedHeads",
        "fit_stacked_heads",
        "group_folds",
        "out_of_fold_key",
        "out_of_fold_margins",
    ),
    "models_gpu.reliability": ("DawidSkeneConfig", "DawidSkeneFit", "fit_dawid_skene"),
    "models_gpu.sae": ("SAEFit", "SparseAutoencoder", "load_sae", "save_sae", "train_sae"),
    "models_gpu.suspects": (
        "NoiseEstimate",
        "SuspectResult",
        "calibrate_temperature",
        "estimate_noise",
        "find_suspects",
        "flag_suspects",
    ),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}

__all__ = [
    "DEFAULT_MODEL",
    "WHEN_SHORT",
    "EmbeddingConfig",
    "ExplainConfig",
    "FiFAConfig",
    "PipelineConfig",
    "Progress",
    "RewardConfig",
    "ROUTING_STRATEGIES",
    "RoutingConfig",
    "SAEConfig",
    "SuspectConfig",
    "fold_groups",
    "near_duplicate_groups",
    "EmbeddingCache",
    "Embedder",
    "embed_texts",
    "get_embedder",
    "model_fingerprint",
    "text_digests",
    "knn_distances",
    "knn_entropy",
    "FiFAResult",
    "SelectionSummary",
    "fifa_select",
    "selection_summary",
    "text_quality",
    "PairScoring",
    "score_pairs",
    "BradleyTerryReward",
    "HFRewardModel",
    "OutOfFoldCache",
    "OutOfFoldResult",
    "StackedHeads",
    "fit_stacked_heads",
    "group_folds",
    "out_of_fold_key",
    "out_of_fold_margins",
    "NoiseEstimate",
    "SuspectResult",
    "calibrate_temperature",
    "estimate_noise",
    "find_suspects",
    "flag_suspects",
    "DawidSkeneConfig",
    "DawidSkeneFit",
    "fit_dawid_skene",
    "SAEFit",
    "SparseAutoencoder",
    "load_sae",
    "save_sae",
    "train_sae",
    "Explanation",
    "FeatureReport",
    "GroupEffect",
    "GroupProbe",
    "PreferencePair",
    "PreparedInputs",
    "ProbeReport",
    "explain_preferences",
    "name_features",
    "ngram_spans",
    "prepare_inputs",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'models_gpu' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
