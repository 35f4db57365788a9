from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

from models_gpu.embeddings import (
    EmbeddingCache,
    EmbeddingConfig,
    embed_texts,
    get_embedder,
    model_fingerprint,
    text_digests,
)
from tests.models_gpu.conftest import TEST_EMBEDDING


def build_tiny_bert(path: Path) -> Path:
    """A randomly initialised 2-layer BERT with a 30-token vocabulary, saved locally."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz"[:25]]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab))
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(path)
    return path


def test_the_default_model_embeds_to_unit_vectors_offline() -> None:
    vectors = embed_texts(["hello world", "a second text"], config=TEST_EMBEDDING)
    assert vectors.shape == (2, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_second_embed_of_the_same_texts_computes_nothing(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    config = EmbeddingConfig(model=str(build_tiny_bert(tmp_path / "bert")), batch_size=4)
    texts = ["abc def", "ghi", "abc def", "jkl mno pqr", "stu"]
    embedder = get_embedder(config)
    first = embed_texts(texts, config=config, cache=cache)
    encoded_after_first = embedder.texts_encoded_
    assert encoded_after_first == 4  # the repeated text is embedded once
    second = embed_texts(texts, config=config, cache=EmbeddingCache(tmp_path))
    assert embedder.texts_encoded_ == encoded_after_first
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first[0], first[2])


def test_the_cache_embeds_only_new_texts_and_keeps_order(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    config = EmbeddingConfig(model=str(build_tiny_bert(tmp_path / "bert")), batch_size=2)
    embedder = get_embedder(config)
    reference = embed_texts(["abc", "def", "ghi"], config=config)
    embed_texts(["abc"], config=config, cache=cache)
    before = embedder.texts_encoded_
    mixed = embed_texts(["ghi", "abc", "def"], config=config, cache=cache)
    assert embedder.texts_encoded_ - before == 2
    np.testing.assert_allclose(mixed, reference[[2, 0, 1]], atol=1e-6)


def test_a_plain_hugging_face_encoder_is_mean_pooled(tmp_path: Path) -> None:
    path = build_tiny_bert(tmp_path / "bert")
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
    path = str(build_tiny_bert(tmp_path / "bert"))
    assert model_fingerprint(EmbeddingConfig(model=path)) != model_fingerprint(
        EmbeddingConfig(model=path, normalize=False)
    )


def test_an_unknown_model_path_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        embed_texts(["x"], config=EmbeddingConfig(model=str(tmp_path / "missing")))


def test_text_digests_are_sha256() -> None:
    import hashlib

    assert text_digests(["é"])[0].tobytes() == hashlib.sha256("é".encode()).digest()
