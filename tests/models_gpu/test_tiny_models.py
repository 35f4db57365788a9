"""The tiny test models really read their vocabulary: a model that sees only [UNK] tests nothing."""

from __future__ import annotations

from transformers import AutoTokenizer

from tests.tiny_models import build_tiny_encoder, build_tiny_sequence_classifier


def test_the_tiny_encoder_tokenises_its_vocabulary(tmp_path):
    path = build_tiny_encoder(tmp_path / "encoder")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    ids = tokenizer("a b c")["input_ids"][1:-1]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.convert_ids_to_tokens(ids) == ["a", "b", "c"]


def test_the_tiny_classifier_tokenises_its_vocabulary(tmp_path):
    path = build_tiny_sequence_classifier(tmp_path / "classifier", ["water", "plant"])
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    ids = tokenizer("water the plant")["input_ids"][1:-1]
    assert tokenizer.convert_ids_to_tokens(ids) == ["water", "[UNK]", "plant"]
