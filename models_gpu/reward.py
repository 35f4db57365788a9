"""Bradley–Terry reward models: a small MLP head on frozen embeddings, and a local HF scorer.

The head scores ``r(prompt, response)`` from ``[e_p, e_r, e_p * e_r]`` and is trained on
preference pairs with the weighted Bradley–Terry loss ``-w · log σ(r_chosen − r_rejected)``.
:func:`out_of_fold_margins` scores every pair with a model that never saw it, nor any pair
sharing its prompt group, which is what curation (FiFA, suspect labels) needs; an
:class:`OutOfFoldCache` passed to it keeps re-runs with the same inputs from retraining.

Both models follow the scikit-learn estimator contract: ``__init__`` stores settings,
``fit`` returns the estimator, learned state ends in ``_``, ``predict`` gives rewards,
``decision_function`` margins and ``score`` the share of pairs ranked the right way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GroupKFold
from torch import nn

from models_gpu.config import RewardConfig
from models_gpu.duplicates import fold_groups
from models_gpu.embeddings import resolve_device, text_digests

MAX_STEPS_PER_EPOCH = 100
# Part of the out-of-fold cache key: results of another training method are not reused.
OUT_OF_FOLD_METHOD = "stacked-folds-1"


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


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the default generators that initialisation and dropout draw from, and restore
    them afterwards: training is reproducible and the caller's random streams are untouched."""
    cuda = []
    if device.type == "cuda":
        cuda = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda):
        # Not torch.manual_seed: that would also reseed every other GPU, outside the fork.
        torch.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


def _weighted_accuracy(margins: np.ndarray, weights: np.ndarray) -> float:
    counted = weights > 0
    if not counted.any():
        return float("nan")
    return float(np.average(margins[counted] > 0, weights=weights[counted]))


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
        device = resolve_device(self.config.device)
        with _seeded(self.config.seed, device):
            self._fit(prompt_emb, chosen_emb, rejected_emb, weights, device)
        return self

    def _fit(
        self,
        prompt_emb: np.ndarray,
        chosen_emb: np.ndarray,
        rejected_emb: np.ndarray,
        weights: np.ndarray | None,
        device: torch.device,
    ) -> None:
        cfg = self.config
        generator = torch.Generator().manual_seed(cfg.seed)
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

    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise NotFittedError("call BradleyTerryReward.fit() or .load() first")

    def _device(self) -> torch.device:
        self._check_fitted()
        return next(self.head_.parameters()).device

    @torch.inference_mode()
    def predict(self, prompt_emb: np.ndarray, response_emb: np.ndarray) -> np.ndarray:
        """Reward ``r(prompt, response)`` for aligned rows of embeddings."""
        device = self._device()
        (rewards,) = self.head_(_tensor(prompt_emb, device), _tensor(response_emb, device))
        return rewards.float().cpu().numpy()

    @torch.inference_mode()
    def decision_function(
        self, prompt_emb: np.ndarray, chosen_emb: np.ndarray, rejected_emb: np.ndarray
    ) -> np.ndarray:
        """The margin ``r(p, chosen) − r(p, rejected)`` per pair; positive means the model agrees."""
        device = self._device()
        r_chosen, r_rejected = self.head_(
            _tensor(prompt_emb, device), _tensor(chosen_emb, device), _tensor(rejected_emb, device)
        )
        return (r_chosen - r_rejected).float().cpu().numpy()

    def score(
        self,
        prompt_emb: np.ndarray,
        chosen_emb: np.ndarray,
        rejected_emb: np.ndarray,
        weights: np.ndarray | None = None,
    ) -> float:
        """Weighted share of pairs (weight > 0) whose chosen response gets the higher reward."""
        margins = self.decision_function(prompt_emb, chosen_emb, rejected_emb)
        w = np.ones(len(margins)) if weights is None else np.asarray(weights, np.float64)
        return _weighted_accuracy(margins, w)

    def save(self, path: str | Path) -> None:
        """Write the head's weights and config to a safetensors file."""
        self._check_fitted()
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


class StackedHeads:
    """Reward heads of one shape, trained side by side by :func:`fit_stacked_heads`.

    Each layer of all the heads is one matrix: ``(dim, heads * hidden)`` for the first
    layer's three blocks, ``(heads, hidden)`` for the output.
    """

    def __init__(self, params: dict[str, torch.Tensor], heads: int, hidden: int) -> None:
        self.params = params
        self.heads = heads
        self.hidden = hidden

    def _scores(
        self,
        prompt: torch.Tensor,
        prompt_part: torch.Tensor,
        response: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        q = self.params
        hidden = prompt_part + response @ q["w_response"] + (prompt * response) @ q["w_inter"]
        hidden = nn.functional.gelu(hidden).view(len(prompt), self.heads, self.hidden)
        if mask is not None:  # dropout, one mask shared by the heads
            hidden = hidden * mask[:, None, :]
        return ((hidden * q["w_out"]).sum(-1) + q["b_out"]).T  # (heads, batch)

    def _margin(
        self, prompt: torch.Tensor, a: torch.Tensor, b: torch.Tensor, masks=(None, None)
    ) -> torch.Tensor:
        prompt_part = prompt @ self.params["w_prompt"] + self.params["b_prompt"]
        return self._scores(prompt, prompt_part, a, masks[0]) - self._scores(
            prompt, prompt_part, b, masks[1]
        )

    @torch.inference_mode()
    def margins(
        self, prompt_emb: np.ndarray, a_emb: np.ndarray, b_emb: np.ndarray, chunk: int = 4096
    ) -> np.ndarray:
        """``r(p, a) − r(p, b)`` of every head for every pair: ``(heads, n)`` float32."""
        device = self.params["w_out"].device
        out = np.empty((self.heads, len(prompt_emb)), dtype=np.float32)
        for start in range(0, len(prompt_emb), chunk):
            rows = slice(start, start + chunk)
            margin = self._margin(
                _tensor(prompt_emb[rows], device),
                _tensor(a_emb[rows], device),
                _tensor(b_emb[rows], device),
            )
            out[:, rows] = margin.float().cpu().numpy()
        return out


def fit_stacked_heads(
    prompt_emb: np.ndarray,
    a_emb: np.ndarray,
    b_emb: np.ndarray,
    *,
    sign: np.ndarray,
    weight: np.ndarray,
    config: RewardConfig,
) -> StackedHeads:
    """Train one Bradley–Terry head per row of ``sign`` and ``weight`` (``(heads, n)``), as one model.

    Head ``k`` learns that ``a`` beats ``b`` on pair ``i`` when ``sign[k, i]`` is +1 and the
    reverse when it is −1, with loss weight ``weight[k, i]`` (0 leaves the pair out of that
    head). One stacked step costs less than one step per head (five out-of-fold heads on
    384-dimensional embeddings: 1.2–1.35x faster in all on one core; routing's many small
    heads gain more), since the per-step overhead is paid once. AdamW and weight decay act element by element,
    so each head's update is what it would be alone; the heads share their initialisation
    (the one :class:`BradleyTerryReward` draws for ``config.seed``), their shuffling and
    their dropout masks (common random numbers: they differ by their labels and weights).
    Each head's loss is normalised by its own total weight, as
    :class:`BradleyTerryReward` does.
    """
    sign = np.atleast_2d(np.asarray(sign, dtype=np.float32))
    weight = np.atleast_2d(np.asarray(weight, dtype=np.float32))
    heads, n = sign.shape
    device = resolve_device(config.device)
    with _seeded(config.seed, device):
        head = RewardHead(prompt_emb.shape[1], config.hidden, config.dropout)

        def tiled(tensor: torch.Tensor) -> torch.Tensor:
            # (out, in) -> (in, heads * out): every head from the same draw, side by side.
            return tensor.detach().T.repeat(1, heads).contiguous()

        params = {
            "w_prompt": tiled(head.prompt_proj.weight),
            "w_response": tiled(head.response_proj.weight),
            "w_inter": tiled(head.interaction_proj.weight),
            "b_prompt": head.prompt_proj.bias.detach().repeat(heads),
            "w_out": head.out.weight.detach().repeat(heads, 1),  # (heads, hidden)
            "b_out": head.out.bias.detach().repeat(heads),  # (heads,)
        }
        params = {k: v.contiguous().to(device).requires_grad_(True) for k, v in params.items()}
        stacked = StackedHeads(params, heads, config.hidden)
        optimizer = torch.optim.AdamW(
            list(params.values()), lr=config.lr, weight_decay=config.weight_decay
        )
        prompt, a, b = (_tensor(x, device) for x in (prompt_emb, a_emb, b_emb))
        sign_t, weight_t = _tensor(sign, device), _tensor(weight, device)
        scale = n / weight_t.sum(dim=1, keepdim=True).clamp_min(1e-12)
        generator = torch.Generator().manual_seed(config.seed)
        batch_size = max(config.batch_size, -(-n // MAX_STEPS_PER_EPOCH))
        keep = 1.0 - config.dropout
        for _ in range(config.epochs):
            for batch in torch.randperm(n, generator=generator).to(device).split(batch_size):
                masks = tuple(
                    (torch.rand(len(batch), config.hidden, device=device) < keep).float() / keep
                    if config.dropout > 0
                    else None
                    for _ in range(2)
                )
                margin = stacked._margin(prompt[batch], a[batch], b[batch], masks)
                per_pair = -nn.functional.logsigmoid(sign_t[:, batch] * margin)
                per_pair = per_pair * weight_t[:, batch]
                loss = (per_pair.sum(dim=1, keepdim=True) * scale / len(batch)).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        for value in params.values():
            value.requires_grad_(False)
    return stacked


@dataclass
class OutOfFoldResult:
    """Held-out scores of every pair.

    Attributes:
        margins: ``r(p, chosen) − r(p, rejected)`` from the model that did not see the pair.
        prob_chosen: ``σ(margin)``, the model's probability that the label is right.
        fold: Index of the fold the pair was held out in (−1: scored by an outside model).
        accuracy: Share of weighted (weight > 0) pairs with a positive margin.
        fold_accuracy: The same per fold.
    """

    margins: np.ndarray
    prob_chosen: np.ndarray
    fold: np.ndarray
    accuracy: float
    fold_accuracy: list[float] = field(default_factory=list)

    @classmethod
    def from_margins(
        cls, margins: np.ndarray, weights: np.ndarray | None = None
    ) -> OutOfFoldResult:
        """Wrap margins from a model that never saw the pairs (e.g. :class:`HFRewardModel`)."""
        margins = np.asarray(margins, dtype=np.float32)
        w = np.ones(len(margins)) if weights is None else np.asarray(weights, np.float64)
        return cls(
            margins=margins,
            prob_chosen=1.0 / (1.0 + np.exp(-margins.astype(np.float64))),
            fold=np.full(len(margins), -1),
            accuracy=_weighted_accuracy(margins, w),
        )


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


def out_of_fold_key(
    prompt_emb: np.ndarray,
    chosen_emb: np.ndarray,
    rejected_emb: np.ndarray,
    *,
    groups: Sequence[object] | np.ndarray,
    weights: np.ndarray | None,
    config: RewardConfig,
) -> str:
    """Hash of everything out-of-fold margins depend on: embeddings, groups, weights, config
    and the way the fold models are trained (``OUT_OF_FOLD_METHOD``)."""
    digest = hashlib.sha256(f"{OUT_OF_FOLD_METHOD}:{config!r}".encode())
    for array in (prompt_emb, chosen_emb, rejected_emb):
        array = np.ascontiguousarray(array, dtype=np.float32)
        digest.update(repr(array.shape).encode())
        digest.update(array.tobytes())
    digest.update(text_digests([str(g) for g in groups]).tobytes())
    if weights is not None:
        digest.update(np.ascontiguousarray(weights, dtype=np.float64).tobytes())
    return digest.hexdigest()


class OutOfFoldCache:
    """Out-of-fold results on disk under ``root``, one ``<key>.npz`` per distinct input.

    Re-running curation with other selection settings (keep fraction, α, γ) on the same
    pairs should not retrain the reward model: the margins depend only on what
    :func:`out_of_fold_key` hashes. Files are written under a temporary name and renamed,
    so a reader sees a whole file or none, and are read without unpickling.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def get(self, key: str) -> OutOfFoldResult | None:
        path = self.root / f"{key}.npz"
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as data:
            return OutOfFoldResult(
                margins=data["margins"],
                prob_chosen=data["prob_chosen"],
                fold=data["fold"],
                accuracy=float(data["accuracy"]),
                fold_accuracy=[float(a) for a in data["fold_accuracy"]],
            )

    def put(self, key: str, result: OutOfFoldResult) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(
                    out,
                    margins=result.margins,
                    prob_chosen=result.prob_chosen,
                    fold=result.fold,
                    accuracy=np.float64(result.accuracy),
                    fold_accuracy=np.asarray(result.fold_accuracy, dtype=np.float64),
                )
            os.replace(tmp, self.root / f"{key}.npz")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def out_of_fold_margins(
    prompt_emb: np.ndarray,
    chosen_emb: np.ndarray,
    rejected_emb: np.ndarray,
    *,
    groups: Sequence[object] | np.ndarray,
    weights: np.ndarray | None = None,
    config: RewardConfig,
    cache: OutOfFoldCache | None = None,
) -> OutOfFoldResult:
    """Score each pair with a Bradley–Terry model trained on the other folds.

    Folds are grouped by ``groups`` (normally the prompt) joined with near-duplicate
    clusters of ``prompt_emb`` (cosine ≥ ``config.duplicate_cosine``, see
    :func:`models_gpu.near_duplicate_groups`), so no pair is scored by a model that saw
    it, another pair on the same prompt, or one on a near copy of its prompt (unless the
    embeddings cannot tell prompts apart, see :func:`models_gpu.fold_groups`). Ties: pass them with weight 0
    (they get a margin but neither train the model nor count in the accuracy) or drop
    them before calling. Weighted pairs (e.g. by annotator agreement) train proportionally.
    With a ``cache``, a result computed before for the same inputs is returned untrained.
    """
    key = None
    if cache is not None:
        key = out_of_fold_key(
            prompt_emb, chosen_emb, rejected_emb, groups=groups, weights=weights, config=config
        )
        cached = cache.get(key)
        if cached is not None:
            return cached
    n = len(prompt_emb)
    w = np.ones(n, dtype=np.float32) if weights is None else np.asarray(weights, np.float32)
    clusters = fold_groups(
        prompt_emb, groups, threshold=config.duplicate_cosine, folds=config.folds
    )
    fold = group_folds(clusters, config.folds, config.seed)
    # The fold models train side by side: head k sees every pair outside fold k.
    folds = int(fold.max()) + 1
    train_weight = np.where(fold[None, :] == np.arange(folds)[:, None], 0.0, w[None, :])
    heads = fit_stacked_heads(
        prompt_emb,
        chosen_emb,
        rejected_emb,
        sign=np.ones_like(train_weight),
        weight=train_weight,
        config=config,
    )
    margins = heads.margins(prompt_emb, chosen_emb, rejected_emb)[fold, np.arange(n)]
    fold_accuracy = [_weighted_accuracy(margins[fold == k], w[fold == k]) for k in range(folds)]
    result = OutOfFoldResult(
        margins=margins,
        prob_chosen=1.0 / (1.0 + np.exp(-margins.astype(np.float64))),
        fold=fold,
        accuracy=_weighted_accuracy(margins, w),
        fold_accuracy=fold_accuracy,
    )
    if cache is not None and key is not None:
        cache.put(key, result)
    return result


class HFRewardModel:
    """Scores ``(prompt, response)`` with a local ``AutoModelForSequenceClassification``.

    The reward is the single logit, or for multi-class heads the last class's logit
    minus the first's. ``fit`` loads the model and tokenizer from ``path`` (never from
    a hub; nothing is trained) into ``model_`` and ``tokenizer_``.
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

    def fit(self) -> HFRewardModel:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer_ = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(self.path), local_files_only=True
        )
        self.model_ = model.to(resolve_device(self.device)).eval()
        return self

    @torch.inference_mode()
    def predict(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """Reward of each response to its prompt, as float32."""
        if not hasattr(self, "model_"):
            raise NotFittedError("call HFRewardModel.fit() (it loads the model) first")
        device = next(self.model_.parameters()).device
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
            logits = self.model_(**batch).logits.float()
            out.append(logits[:, 0] if logits.shape[-1] == 1 else logits[:, -1] - logits[:, 0])
        return torch.cat(out).cpu().numpy() if out else np.zeros(0, dtype=np.float32)

    def decision_function(
        self, prompts: Sequence[str], chosen: Sequence[str], rejected: Sequence[str]
    ) -> np.ndarray:
        """The margin ``r(p, chosen) − r(p, rejected)`` per pair."""
        return self.predict(prompts, chosen) - self.predict(prompts, rejected)

    def score(
        self,
        prompts: Sequence[str],
        chosen: Sequence[str],
        rejected: Sequence[str],
        weights: np.ndarray | None = None,
    ) -> float:
        """Weighted share of pairs (weight > 0) whose chosen response gets the higher reward."""
        margins = self.decision_function(prompts, chosen, rejected)
        w = np.ones(len(margins)) if weights is None else np.asarray(weights, np.float64)
        return _weighted_accuracy(margins, w)
