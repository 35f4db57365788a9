from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from models_gpu import (
    Embedder,
    EmbeddingCache,
    EmbeddingConfig,
    embed_texts,
    get_embedder,
    model_fingerprint,
    text_digests,
)
from models_gpu.embeddings import native_bfloat16, resolve_precision
from tests.models_gpu.conftest import TEST_EMBEDDING
from tests.tiny_models import build_tiny_encoder

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_default_model_embeds_to_unit_vectors_offline() -> None:
    vectors = embed_texts(["hello world", "a second text"], config=TEST_EMBEDDING)
    assert vectors.shape == (2, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_the_bundled_model_loads_without_offline_variables_or_any_connection() -> None:
    # models_gpu no longer sets HF_HUB_OFFLINE itself: local_files_only must be enough.
    script = textwrap.dedent(
        """
        import json, os, socket
        attempts = []
        def refuse(*args, **kwargs):
            attempts.append(repr(args)[:200])
            raise OSError("no network in this test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from models_gpu import EmbeddingConfig, embed_texts
        vectors = embed_texts(["hello"], config=EmbeddingConfig())
        print(json.dumps({"shape": list(vectors.shape), "attempts": attempts,
                          "offline_set": "HF_HUB_OFFLINE" in os.environ}))
        """
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome == {"shape": [1, 384], "attempts": [], "offline_set": False}


def test_a_second_embed_of_the_same_texts_computes_nothing(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "cache")
    config = EmbeddingConfig(model=str(build_tiny_encoder(tmp_path / "bert")), batch_size=4)
    texts = ["abc def", "ghi", "abc def", "jkl mno pqr", "stu"]
    first = embed_texts(texts, config=config, cache=cache)
    embedder = get_embedder(config)
    assert embedder.texts_encoded_ == 4  # the repeated text is embedded once
    second = embed_texts(texts, config=config, cache=EmbeddingCache(tmp_path / "cache"))
    assert embedder.texts_encoded_ == 4
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first[0], first[2])


def test_the_cache_embeds_only_new_texts_and_keeps_order(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "cache")
    config = EmbeddingConfig(model=str(build_tiny_encoder(tmp_path / "bert")), batch_size=2)
    reference = embed_texts(["abc", "def", "ghi"], config=config)
    embed_texts(["abc"], config=config, cache=cache)
    before = get_embedder(config).texts_encoded_
    mixed = embed_texts(["ghi", "abc", "def"], config=config, cache=cache)
    assert get_embedder(config).texts_encoded_ - before == 2
    np.testing.assert_allclose(mixed, reference[[2, 0, 1]], atol=1e-6)


def test_a_full_cache_hit_never_loads_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = EmbeddingConfig(model=str(build_tiny_encoder(tmp_path / "bert")))
    texts = ["abc", "def"]
    vectors = np.ones((2, 16), dtype=np.float32)
    cache = EmbeddingCache(tmp_path / "cache")
    cache.put(model_fingerprint(config), text_digests(texts), vectors)

    def no_loading(self: Embedder, texts: object = None) -> Embedder:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(Embedder, "fit", no_loading)
    np.testing.assert_array_equal(
        embed_texts(texts * 2, config=config, cache=cache), [*vectors] * 2
    )


def test_an_embedder_follows_the_transformer_contract(tmp_path: Path) -> None:
    config = EmbeddingConfig(model=str(build_tiny_encoder(tmp_path / "bert")), batch_size=2)
    embedder = Embedder(config)
    assert vars(embedder) == {"config": config}  # __init__ only stores its settings
    with pytest.raises(NotFittedError):
        embedder.transform(["abc"])
    assert embedder.fit() is embedder
    assert embedder.dim_ == 16 and embedder.texts_encoded_ == 0
    vectors = embedder.transform(["abc", "de fg", "hij"])
    assert vectors.shape == (3, 16) and embedder.texts_encoded_ == 3
    np.testing.assert_allclose(Embedder(config).fit_transform(["abc"]), vectors[:1], atol=1e-6)


def test_a_plain_hugging_face_encoder_is_mean_pooled(tmp_path: Path) -> None:
    path = build_tiny_encoder(tmp_path / "bert")
    progress: list[float] = []
    vectors = embed_texts(
        ["abc", "de fg hi"],
        config=EmbeddingConfig(model=str(path), normalize=False, batch_size=1),
        progress=lambda fraction, _message: progress.append(fraction),
    )
    assert vectors.shape == (2, 16)
    assert progress[-1] == 1.0
    assert progress == sorted(progress)


def test_the_cache_identity_changes_with_the_settings(tmp_path: Path) -> None:
    path = str(build_tiny_encoder(tmp_path / "bert"))
    assert model_fingerprint(EmbeddingConfig(model=path)) != model_fingerprint(
        EmbeddingConfig(model=path, normalize=False)
    )


def test_the_cache_identity_changes_with_the_precision(tmp_path: Path) -> None:
    path = str(build_tiny_encoder(tmp_path / "bert"))
    exact, half = (EmbeddingConfig(model=path, precision=p) for p in ("float32", "bfloat16"))
    assert model_fingerprint(exact) != model_fingerprint(half)
    # auto is whichever of the two this machine resolves it to, and caches share with it.
    auto = EmbeddingConfig(model=path, device="cpu")
    native = native_bfloat16(torch.device("cpu"))
    assert model_fingerprint(auto) == model_fingerprint(half if native else exact)
    assert resolve_precision("auto", torch.device("cpu")) == (
        torch.bfloat16 if native else torch.float32
    )


def test_an_unknown_precision_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r"precision must be one of .*'bfloat16'.*got 'fp8'"):
        EmbeddingConfig(precision="fp8")


def test_a_bfloat16_encoder_returns_float32_vectors_near_its_float32_ones(tmp_path: Path) -> None:
    path = str(build_tiny_encoder(tmp_path / "bert"))
    texts = ["abc", "de fg hi", "a longer text with several words in it"]
    exact, half = (
        Embedder(EmbeddingConfig(model=path, precision=p, device="cpu")).fit()
        for p in ("float32", "bfloat16")
    )
    assert (exact.dtype_, half.dtype_) == (torch.float32, torch.bfloat16)
    a, b = exact.transform(texts), half.transform(texts)
    assert b.dtype == np.float32
    assert not np.array_equal(a, b)  # it really ran in bfloat16
    np.testing.assert_allclose(np.sum(a * b, axis=1), 1.0, atol=0.01)


@pytest.mark.slow
def test_minilm_in_bfloat16_keeps_its_float32_geometry() -> None:
    from tests.models_gpu.conftest import load_hh

    # 30 texts of up to 64 tokens: where bfloat16 is emulated (AVX2 only) it runs about
    # 5x slower than float32, and 120 texts of 128 tokens took a minute there.
    prompts, chosen, rejected = load_hh(10)
    texts = [*prompts, *chosen, *rejected]
    a, b = (
        embed_texts(texts, config=EmbeddingConfig(max_length=64, precision=p))
        for p in ("float32", "bfloat16")
    )
    assert np.sum(a * b, axis=1).min() > 0.999  # unit vectors: the cosine
    # The neighbours a curation job reads off the vectors are the same ones.
    near_a = np.argsort(-(a @ a.T), axis=1)[:, 1:6]
    near_b = np.argsort(-(b @ b.T), axis=1)[:, 1:6]
    overlap = np.mean([len(set(x) & set(y)) / 5 for x, y in zip(near_a, near_b, strict=True)])
    assert overlap > 0.9


def test_an_unknown_model_path_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        embed_texts(["x"], config=EmbeddingConfig(model=str(tmp_path / "missing")))


def test_text_digests_are_sha256() -> None:
    assert text_digests(["é"])[0].tobytes() == hashlib.sha256("é".encode()).digest()
