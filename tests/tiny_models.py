"""Tiny Hugging Face models built from a config and saved to a folder: no hub, no weights to download."""

from __future__ import annotations

from pathlib import Path


def build_tiny_sequence_classifier(path: Path, vocab: list[str]) -> Path:
    """A one-layer BERT reward model (one output) with a word-piece vocabulary of ``vocab``."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *vocab]
    (path / "vocab.txt").write_text("\n".join(words))
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(path)
    return path
