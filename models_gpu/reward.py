"""Bradley–Terry reward models: a small MLP head on frozen embeddings, and a local HF scorer.

The head scores ``r(prompt, response)`` from ``[e_p, e_r, e_p * e_r]`` and is trained on
preference pairs with the weighted Bradley–Terry loss ``-w · log σ(r_chosen − r_rejected)``.
:func:`out_of_fold_margins` scores every pair with a model that never saw it, nor any pair
sharing its prompt group, which is what curation (FiFA, suspect labels) needs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sklearn.model_selection import GroupKFold
from torch import nn

from models_gpu.embeddings import resolve_device


@dataclass(frozen=True)
class RewardConfig:
    """Training settings for :class:`BradleyTerryReward`.

    Attributes:
        hidden: Width of the MLP's hidden layer.
        epochs: Passes over the training pairs.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay; frozen embeddings overfit quickly without it.
        batch_size: Pairs per optimisation step.
        dropout: Dropout on the hidden layer.
        folds: Number of group folds for :func:`out_of_fold_margins`.
        seed: Seeds initialisation, shuffling and fold assignment.
        device: None for CUDA when present, else CPU.
    """

    hidden: int = 128
    epochs: int = 12
    lr: float = 1e-3
    weight_decay: float = 0.05
    batch_size: int = 128
    dropout: float = 0.2
    folds: int = 5
    seed: int = 0
    device: str | None = None


MAX_STEPS_PER_EPOCH = 100


class RewardHead(nn.Module):
    """``r(p, x) = MLP([e_p, e_x, e_p * e_x])``; the first layer is split by input block
    so the prompt's share is computed once per pair, not once per response."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.prompt_proj = nn.Linear(dim, hidden)
        self.response_proj = nn.Linear(dim, hidden, bias=False)
        self.interaction_proj = nn.Linear(dim, hidden, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, 1)

    def forward(self, prompt: torch.Tensor, *responses: torch.Tensor) -> list[torch.Tensor]:
        prompt_part = self.prompt_proj(prompt)
        scores = []
        for response in responses:
            hidden = prompt_part + self.response_proj(response)
            hidden = hidden + self.interaction_proj(prompt * response)
            scores.append(self.out(self.dropout(nn.functional.gelu(hidden))).squeeze(-1))
        return scores


def _tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(array, dtype=np.float32), device=device)


class BradleyTerryReward:
    """Bradley–Terry reward model on frozen embeddings (scikit-learn style estimator).

    Learned state: ``head_`` (the torch module), ``dim_``, ``loss_history_`` (mean
    weighted loss per epoch).
    """

    def __init__(self, config: RewardConfig | None = None) -> None:
        self.config = config or RewardConfig()

    def fit(
        self,
        prompt_emb: np.ndarray,
        chosen_emb: np.ndarray,
        rejected_emb: np.ndarray,
        weights: np.ndarray | None = None,
    ) -> BradleyTerryReward:
        """Train on pairs; ``weights`` scale each pair's loss (0 ignores the pair, e.g. a tie)."""
        cfg = self.config
        device = resolve_device(cfg.device)
        generator = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        n, dim = prompt_emb.shape
        w = np.ones(n, dtype=np.float32) if weights is None else np.asarray(weights, np.float32)
        prompts, chosen, rejected = (
            _tensor(a, device) for a in (prompt_emb, chosen_emb, rejected_emb)
        )
        pair_weights = _tensor(w, device)
        total_weight = float(w.sum())
        self.dim_ = dim
        self.head_ = RewardHead(dim, cfg.hidden, cfg.dropout).to(device)
        optimizer = torch.optim.AdamW(
            self.head_.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.loss_history_: list[float] = []
        self.head_.train()
        # Large sets get larger batches (at most ~MAX_STEPS_PER_EPOCH steps per epoch):
        # the head is tiny, so per-step overhead, not arithmetic, sets the training time.
        batch_size = max(cfg.batch_size, -(-n // MAX_STEPS_PER_EPOCH))
        for _ in range(cfg.epochs):
            epoch_loss = 0.0
            for batch in torch.randperm(n, generator=generator).to(device).split(batch_size):
                r_chosen, r_rejected = self.head_(prompts[batch], chosen[batch], rejected[batch])
                per_pair = -nn.functional.logsigmoid(r_chosen - r_rejected) * pair_weights[batch]
                # Normalise by the epoch's total weight so batch size and ties don't rescale lr.
                loss = per_pair.sum() * (n / max(total_weight, 1e-12)) / len(batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                epoch_loss += float(per_pair.detach().sum())
            self.loss_history_.append(epoch_loss / max(total_weight, 1e-12))
        self.head_.eval()
        return self

    @torch.inference_mode()
    def score(self, prompt_emb: np.ndarray, response_emb: np.ndarray) -> np.ndarray:
        """Reward ``r(prompt, response)`` for aligned rows of embeddings."""
        device = next(self.head_.parameters()).device
        (scores,) = self.head_(_tensor(prompt_emb, device), _tensor(response_emb, device))
        return scores.float().cpu().numpy()

    @torch.inference_mode()
    def margin(
        self, prompt_emb: np.ndarray, chosen_emb: np.ndarray, rejected_emb: np.ndarray
    ) -> np.ndarray:
        """``r(p, chosen) − r(p, rejected)`` per pair; positive means the model agrees."""
        device = next(self.head_.parameters()).device
        r_chosen, r_rejected = self.head_(
            _tensor(prompt_emb, device), _tensor(chosen_emb, device), _tensor(rejected_emb, device)
        )
        return (r_chosen - r_rejected).float().cpu().numpy()

    def save(self, path: str | Path) -> None:
        """Write the head's weights and config to a safetensors file."""
        metadata = {"config": json.dumps(asdict(self.config)), "dim": str(self.dim_)}
        state = {k: v.detach().cpu().contiguous() for k, v in self.head_.state_dict().items()}
        save_file(state, str(path), metadata=metadata)

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None) -> BradleyTerryReward:
        """Read a model written by :meth:`save` (safetensors only, nothing is unpickled)."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
        config = RewardConfig(**{**json.loads(metadata["config"]), "device": device})
        model = cls(config)
        model.dim_ = int(metadata["dim"])
        model.head_ = RewardHead(model.dim_, config.hidden, config.dropout)
        model.head_.load_state_dict(load_file(str(path)))
        model.head_.to(resolve_device(device)).eval()
        return model


@dataclass
class OutOfFoldResult:
    """Held-out scores of every pair.

    Attributes:
        margins: ``r(p, chosen) − r(p, rejected)`` from the model that did not see the pair.
        prob_chosen: ``σ(margin)``, the model's probability that the label is right.
        fold: Index of the fold the pair was held out in.
        accuracy: Share of weighted (weight > 0) pairs with a positive margin.
        fold_accuracy: The same per fold.
    """

    margins: np.ndarray
    prob_chosen: np.ndarray
    fold: np.ndarray
    accuracy: float
    fold_accuracy: list[float] = field(default_factory=list)


def group_folds(groups: Sequence[object] | np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Assign each row a fold so that rows of one group share a fold (GroupKFold).

    Group labels are relabelled by a seeded permutation first: GroupKFold itself is
    deterministic in the labels, and we want folds independent of how ids were issued.
    """
    _, codes = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    if n_groups < 2:
        raise ValueError("out-of-fold scoring needs at least two prompt groups")
    shuffled = np.random.default_rng(seed).permutation(n_groups)[codes]
    fold = np.empty(len(codes), dtype=np.int64)
    splitter = GroupKFold(n_splits=min(n_folds, n_groups))
    for index, (_, test) in enumerate(splitter.split(codes, groups=shuffled)):
        fold[test] = index
    return fold


def out_of_fold_margins(
    prompt_emb: np.ndarray,
    chosen_emb: np.ndarray,
    rejected_emb: np.ndarray,
    *,
    groups: Sequence[object] | np.ndarray,
    weights: np.ndarray | None = None,
    config: RewardConfig,
) -> OutOfFoldResult:
    """Score each pair with a Bradley–Terry model trained on the other folds.

    Folds are grouped by ``groups`` (normally the prompt), so no pair is scored by a
    model that saw it or another pair on the same prompt. Ties: pass them with weight 0
    (they get a margin but neither train the model nor count in the accuracy) or drop
    them before calling. Weighted pairs (e.g. by annotator agreement) train proportionally.
    """
    n = len(prompt_emb)
    w = np.ones(n, dtype=np.float32) if weights is None else np.asarray(weights, np.float32)
    fold = group_folds(groups, config.folds, config.seed)
    margins = np.zeros(n, dtype=np.float32)
    fold_accuracy = []
    for index in range(int(fold.max()) + 1):
        held_out = fold == index
        train = ~held_out
        model = BradleyTerryReward(config).fit(
            prompt_emb[train], chosen_emb[train], rejected_emb[train], w[train]
        )
        margins[held_out] = model.margin(
            prompt_emb[held_out], chosen_emb[held_out], rejected_emb[held_out]
        )
        fold_accuracy.append(_weighted_accuracy(margins[held_out], w[held_out]))
    return OutOfFoldResult(
        margins=margins,
        prob_chosen=1.0 / (1.0 + np.exp(-margins.astype(np.float64))),
        fold=fold,
        accuracy=_weighted_accuracy(margins, w),
        fold_accuracy=fold_accuracy,
    )


def _weighted_accuracy(margins: np.ndarray, weights: np.ndarray) -> float:
    counted = weights > 0
    if not counted.any():
        return float("nan")
    return float(np.average(margins[counted] > 0, weights=weights[counted]))


class HFRewardModel:
    """Scores ``(prompt, response)`` with a local ``AutoModelForSequenceClassification``.

    The reward is the single logit, or for multi-class heads the last class's logit
    minus the first's. Loads lazily from ``path`` (never from a hub).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        batch_size: int = 16,
        max_length: int = 512,
        device: str | None = None,
    ) -> None:
        self.path = path
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self._model: nn.Module | None = None

    def _load(self) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer_ = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(self.path), local_files_only=True
        )
        self._model = model.to(resolve_device(self.device)).eval()

    @torch.inference_mode()
    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """Reward of each response to its prompt, as float32."""
        if self._model is None:
            self._load()
        assert self._model is not None
        device = next(self._model.parameters()).device
        out = []
        for start in range(0, len(prompts), self.batch_size):
            batch = self.tokenizer_(
                list(prompts[start : start + self.batch_size]),
                list(responses[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(device)
            logits = self._model(**batch).logits.float()
            out.append(logits[:, 0] if logits.shape[-1] == 1 else logits[:, -1] - logits[:, 0])
        return torch.cat(out).cpu().numpy() if out else np.zeros(0, dtype=np.float32)

    def margin(
        self, prompts: Sequence[str], chosen: Sequence[str], rejected: Sequence[str]
    ) -> np.ndarray:
        """``r(p, chosen) − r(p, rejected)`` per pair."""
        return self.score(prompts, chosen) - self.score(prompts, rejected)
