"""Tiny Hugging Face models built from a config and saved to a folder: no hub, no weights to download.

Weights are initialised under a forked, seeded RNG: the same folder every time, and the
test's own random streams are left as they were.
"""

from __future__ import annotations

from pathlib import Path

LETTERS = list("abcdefghijklmnopqrstuvwxy")


def build_tiny_encoder(path: Path, vocab: list[str] = LETTERS, *, seed: int = 0) -> Path:
    """A two-layer BERT encoder (hidden size 16) that ``models_gpu`` mean-pools."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *vocab]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(words))
    BertTokenizerFast(str(path / "vocab.txt")).save_pretrained(path)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        BertModel(config).save_pretrained(path)
    return path


def build_tiny_sequence_classifier(path: Path, vocab: list[str], *, seed: int = 0) -> Path:
    """A one-layer BERT reward model (one output) with a word-piece vocabulary of ``vocab``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *vocab]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(words))
    BertTokenizerFast(str(path / "vocab.txt")).save_pretrained(path)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=1,
    )
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        BertForSequenceClassification(config).save_pretrained(path)
    return path
