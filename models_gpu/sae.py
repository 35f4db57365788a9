"""A signed BatchTopK sparse autoencoder over response-embedding differences (WIMHF).

WIMHF (What's In My Human Feedback?) explains a preference dataset with a small dictionary
learned over ``Δ = e(A) − e(B)``, the difference of the two responses' embeddings. Swapping
A and B negates Δ, so a feature must flip sign with it: "A is more formal than B" is the
same feature as "B is less formal than A". The model here is odd by construction:

    z = BatchTopK(W_enc · x / scale)        (keeps the sign, selects on |·|)
    x̂ = scale · W_dec · z                   (no biases anywhere)

so ``encode(−x) == −encode(x)`` and ``decode(−z) == −decode(z)`` exactly.

**BatchTopK** (Bussmann et al., 2024): during training the ``K × batch`` largest
|pre-activations| of a batch stay, the rest are zeroed, so K features are active per row
*on average* (a row may use more, another fewer). A running mean of the smallest kept
|pre-activation| becomes a fixed threshold at inference, when rows arrive one at a time.

**Unit-norm decoder columns**, renormalised after every step (and the gradient component
along each column removed before it), so a feature's activation is its magnitude and the
encoder cannot shrink it by inflating the decoder.

**Loss**: normalised MSE ``‖x − x̂‖² / ‖x‖²`` plus the auxiliary loss of Gao et al. (2024):
features that fired on no row for ``dead_after`` steps are offered the residual
``x − x̂``; the ``aux_k`` largest of them per row try to reconstruct it, so their gradients
pull them back to where the data is instead of leaving them dead.

Adam, early stopping on the held-out normalised MSE (the best epoch's weights are kept),
its own seeded generator (deterministic on CPU), CUDA when present. Weights are saved as
safetensors with the config and the scale in JSON beside them.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from models_gpu.config import Progress, SAEConfig

__all__ = ["SAEConfig", "SAEFit", "SparseAutoencoder", "load_sae", "save_sae", "train_sae"]

WEIGHTS_FILE = "sae.safetensors"
CONFIG_FILE = "sae.json"
_THRESHOLD_MOMENTUM = 0.99


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class SparseAutoencoder(nn.Module):
    """Odd (bias-free) sparse autoencoder with signed BatchTopK activations.

    ``encode`` and ``decode`` work on scaled inputs: :class:`SAEFit` divides by its
    ``input_scale`` first. ``threshold`` is the inference cut on |pre-activation|.
    """

    def __init__(
        self,
        n_inputs: int,
        n_features: int,
        k_active: int,
        *,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.n_inputs = n_inputs
        self.n_features = n_features
        self.k_active = k_active
        decoder = torch.randn(n_inputs, n_features, generator=generator)
        decoder /= decoder.norm(dim=0, keepdim=True).clamp_min(1e-12)
        self.W_dec = nn.Parameter(decoder)
        # Tied initialisation (encoder = decoderᵀ) starts every feature near useful.
        self.W_enc = nn.Parameter(decoder.T.clone())
        self.register_buffer("threshold", torch.zeros(()))

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.W_enc.T

    def batch_topk(self, pre: torch.Tensor) -> torch.Tensor:
        """Keep the ``K × rows`` largest |pre-activations| of the batch, with their sign."""
        flat = pre.abs().flatten()
        keep = min(self.k_active * pre.shape[0], flat.numel())
        if keep == 0:
            return torch.zeros_like(pre)
        cut = flat.topk(keep, sorted=False).indices
        mask = torch.zeros_like(flat, dtype=torch.bool)
        mask[cut] = True
        return pre * mask.view_as(pre)

    def encode(self, x: torch.Tensor, *, batch: bool = False) -> torch.Tensor:
        """Signed sparse codes; ``batch=True`` uses BatchTopK, else the learned threshold."""
        pre = self.pre_activations(x)
        if batch:
            return self.batch_topk(pre)
        return pre * (pre.abs() > self.threshold)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.W_dec.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=0, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def remove_parallel_gradient(self) -> None:
        """Drop the decoder gradient along each column: renormalisation would undo it anyway."""
        if self.W_dec.grad is None:
            return
        along = (self.W_dec.grad * self.W_dec).sum(dim=0, keepdim=True)
        self.W_dec.grad -= along * self.W_dec


@dataclass
class SAEFit:
    """A trained SAE with what it needs to encode raw Δ rows.

    Attributes:
        model: The autoencoder (on CPU after training, in eval mode).
        config: The settings it was trained with.
        input_scale: Raw rows are divided by this (the RMS row norm of the training set)
            before encoding. There is no mean: subtracting one would break antisymmetry.
        history: One dict per epoch: ``epoch``, ``train_nmse``, ``held_out_nmse``,
            ``aux_loss``, ``dead_features`` (dead at the epoch's end).
        best_epoch: The epoch whose weights were kept (1-based; 0 when none ran).
    """

    model: SparseAutoencoder
    config: SAEConfig
    input_scale: float
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0

    def encode(self, x: np.ndarray, *, batch_size: int = 65536) -> np.ndarray:
        """``(n, n_features)`` float32 signed activations of raw rows (inference threshold)."""
        rows = _as_rows(x, self.model.n_inputs, "x")
        out = np.zeros((len(rows), self.model.n_features), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                chunk = torch.from_numpy(rows[start : start + batch_size]) / self.input_scale
                out[start : start + batch_size] = self.model.encode(chunk).numpy()
        return out

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Rows in the raw input space from activations."""
        codes = torch.as_tensor(np.asarray(z, dtype=np.float32))
        with torch.no_grad():
            return (self.model.decode(codes) * self.input_scale).numpy()

    def nmse(self, x: np.ndarray) -> float:
        """Normalised reconstruction error ``Σ‖x − x̂‖² / Σ‖x‖²`` on raw rows."""
        rows = _as_rows(x, self.model.n_inputs, "x")
        error = rows - self.decode(self.encode(rows))
        return float((error**2).sum() / max(float((rows**2).sum()), 1e-12))

    @property
    def decoder(self) -> np.ndarray:
        """``(n_inputs, n_features)``: each feature's unit-norm direction in Δ space."""
        return self.model.W_dec.detach().cpu().numpy().copy()


def _as_rows(x: np.ndarray, n_inputs: int | None, name: str) -> np.ndarray:
    rows = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if rows.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows, dims), got shape {rows.shape}")
    if n_inputs is not None and rows.shape[1] != n_inputs:
        raise ValueError(f"{name} has {rows.shape[1]} columns, the model expects {n_inputs}")
    if not np.isfinite(rows).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return rows


def _nmse(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    return ((x - x_hat) ** 2).sum() / (x**2).sum().clamp_min(1e-12)


def _squared_error(
    x_dec: torch.Tensor, z: torch.Tensor, gram: torch.Tensor, xx: torch.Tensor
) -> torch.Tensor:
    """``Σ‖x − W_dec z‖²`` without forming the reconstruction.

    ``‖x − Dz‖² = ‖x‖² − 2 zᵀ(Dᵀx) + zᵀ(DᵀD)z``: every term lives in feature space
    (``n_features`` wide instead of ``n_inputs``), which makes a CPU step several times
    cheaper; ``x_dec = x @ D`` and ``gram = DᵀD`` carry the gradient to the decoder.
    """
    return xx.sum() - 2 * (z * x_dec).sum() + ((z @ gram) * z).sum()


def train_sae(
    train: np.ndarray,
    held_out: np.ndarray,
    config: SAEConfig | None = None,
    *,
    progress: Progress | None = None,
    warm_start: SAEFit | None = None,
) -> SAEFit:
    """Train the SAE on ``train`` rows, early-stopping on ``held_out`` rows.

    Rows are used as given. The model is odd, so a row ``−x`` has exactly the loss and the
    gradient of its twin ``x``: training on ``±Δ`` is training on ``Δ`` with every row
    counted twice, and :func:`models_gpu.explain.explain_preferences` passes ``Δ`` once.
    ``held_out`` may be empty, in which case the training loss picks the best epoch.
    ``progress(fraction, message)`` is called once per epoch. ``warm_start`` continues from
    a copy of that fit's weights and input scale (its dictionary size wins over the
    config's) instead of a fresh initialisation.
    """
    config = config or SAEConfig()
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _train(train, held_out, config, progress, warm_start)
    finally:
        torch.set_num_threads(previous_threads)


def _train(
    train: np.ndarray,
    held_out: np.ndarray,
    config: SAEConfig,
    progress: Progress | None,
    warm_start: SAEFit | None,
) -> SAEFit:
    rows = _as_rows(train, None, "train")
    if len(rows) == 0:
        raise ValueError("train is empty: the SAE needs at least one row")
    held = _as_rows(held_out, rows.shape[1], "held_out") if len(held_out) else None
    device = resolve_device(config.device)
    generator = torch.Generator().manual_seed(config.seed)

    if warm_start is not None:
        scale = warm_start.input_scale
        model = copy.deepcopy(warm_start.model).to(device)
        if model.n_inputs != rows.shape[1]:
            raise ValueError(
                f"warm_start expects {model.n_inputs} columns, train has {rows.shape[1]}"
            )
    else:
        scale = float(np.sqrt((rows.astype(np.float64) ** 2).sum(axis=1).mean()))
        scale = scale if scale > 0 else 1.0
        model = SparseAutoencoder(
            rows.shape[1], config.n_features, config.k_active, generator=generator
        ).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    x_train = (torch.from_numpy(rows) / scale).to(device)
    xx_train = (x_train**2).sum(dim=1)
    x_held = (torch.from_numpy(held) / scale).to(device) if held is not None else None
    train_norm = max(float(xx_train.double().sum()), 1e-12)

    steps_idle = torch.zeros(model.n_features, dtype=torch.long, device=device)
    threshold_sum, threshold_weight = 0.0, 0.0
    best_loss, best_state, best_epoch, stale = math.inf, None, 0, 0
    history: list[dict[str, float]] = []
    # Small sets shrink the batch so that an epoch still takes several steps.
    batch_size = max(1, min(config.batch_size, math.ceil(len(rows) / config.min_batches)))
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        order = torch.randperm(len(rows), generator=generator).to(device)
        shuffled, shuffled_xx = x_train[order], xx_train[order]
        error_sum = aux_sum = 0.0
        for start in range(0, len(rows), batch_size):
            x = shuffled[start : start + batch_size]
            xx = shuffled_xx[start : start + batch_size]
            pre = model.pre_activations(x)
            z = model.batch_topk(pre)
            x_dec = x @ model.W_dec
            gram = model.W_dec.T @ model.W_dec
            error = _squared_error(x_dec, z, gram, xx)
            loss = error / xx.sum().clamp_min(1e-12)
            fired = (z != 0).any(dim=0)
            steps_idle = torch.where(fired, torch.zeros_like(steps_idle), steps_idle + 1)
            dead = steps_idle >= config.dead_after
            aux = 0.0
            if config.aux_coef > 0 and config.aux_k > 0 and bool(dead.any()):
                aux_loss = _auxiliary_loss(model, pre, z, x_dec, error, dead, config.aux_k)
                loss = loss + config.aux_coef * aux_loss
                aux = float(aux_loss.detach())
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            model.remove_parallel_gradient()
            optimiser.step()
            model.normalise_decoder()
            with torch.no_grad():
                if bool(fired.any()):
                    # An exponential mean of each batch's smallest kept |pre|, bias-corrected.
                    kept = z.abs()
                    threshold_sum = _THRESHOLD_MOMENTUM * threshold_sum + float(
                        kept[kept > 0].min()
                    )
                    threshold_weight = _THRESHOLD_MOMENTUM * threshold_weight + 1.0
            error_sum += float(error.detach())
            aux_sum += aux * len(x)
        if threshold_weight:
            model.threshold.fill_(threshold_sum / threshold_weight)
        model.eval()
        train_nmse = error_sum / train_norm
        with torch.no_grad():
            held_nmse = float(_nmse(x_held, model(x_held))) if x_held is not None else math.nan
        history.append(
            {
                "epoch": epoch,
                "train_nmse": train_nmse,
                "held_out_nmse": held_nmse,
                "aux_loss": aux_sum / len(rows),
                "dead_features": int((steps_idle >= config.dead_after).sum()),
            }
        )
        watched = held_nmse if x_held is not None else train_nmse
        if watched < best_loss - 1e-6:
            best_loss, best_epoch, stale = watched, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        if progress is not None:
            progress(epoch / config.max_epochs, f"SAE epoch {epoch}: held-out NMSE {held_nmse:.4f}")
        if stale > config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.to("cpu").eval()
    if progress is not None:
        progress(1.0, f"SAE trained: best epoch {best_epoch} of {len(history)}")
    return SAEFit(
        model=model, config=config, input_scale=scale, history=history, best_epoch=best_epoch
    )


def _auxiliary_loss(
    model: SparseAutoencoder,
    pre: torch.Tensor,
    z: torch.Tensor,
    x_dec: torch.Tensor,
    error: torch.Tensor,
    dead: torch.Tensor,
    aux_k: int,
) -> torch.Tensor:
    """Normalised MSE of the residual ``e = x − Dz`` rebuilt by each row's ``aux_k`` largest
    dead features (Gao et al., 2024), in feature space like :func:`_squared_error`.

    ``‖e − D_d a‖² = ‖e‖² − 2 aᵀ(D_dᵀx − D_dᵀD z) + aᵀ(D_dᵀD_d)a`` with ``e`` held fixed
    (``D`` and ``z`` detached in it), so only the dead features learn from this loss.
    """
    dead_pre = pre[:, dead]
    keep = min(aux_k, dead_pre.shape[1])
    top = dead_pre.abs().topk(keep, dim=1).indices
    z_aux = torch.zeros_like(dead_pre).scatter(1, top, dead_pre.gather(1, top))
    dead_dec = model.W_dec[:, dead]
    residual_dec = x_dec[:, dead] - z.detach() @ (model.W_dec.detach().T @ dead_dec)
    residual_norm = error.detach()
    squared = residual_norm - 2 * (z_aux * residual_dec).sum()
    squared = squared + ((z_aux @ (dead_dec.T @ dead_dec)) * z_aux).sum()
    return squared / residual_norm.clamp_min(1e-12)


def save_sae(fit: SAEFit, directory: str | Path) -> Path:
    """Write ``sae.safetensors`` (weights and threshold) and ``sae.json`` (config, scale, history)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {
        name: tensor.detach().cpu().contiguous() for name, tensor in fit.model.state_dict().items()
    }
    save_file(tensors, str(directory / WEIGHTS_FILE))
    meta: dict[str, Any] = {
        "config": asdict(fit.config),
        "n_inputs": fit.model.n_inputs,
        "input_scale": fit.input_scale,
        "history": fit.history,
        "best_epoch": fit.best_epoch,
    }
    (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2, allow_nan=True))
    return directory


def load_sae(directory: str | Path) -> SAEFit:
    """Read what :func:`save_sae` wrote; the model comes back on CPU in eval mode."""
    directory = Path(directory)
    meta = json.loads((directory / CONFIG_FILE).read_text())
    config = SAEConfig(**meta["config"])
    model = SparseAutoencoder(meta["n_inputs"], config.n_features, config.k_active)
    model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    model.eval()
    return SAEFit(
        model=model,
        config=config,
        input_scale=float(meta["input_scale"]),
        history=meta["history"],
        best_epoch=int(meta["best_epoch"]),
    )
