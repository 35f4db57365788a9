"""Tiny Hugging Face models built from a config and saved to a folder: no hub, no weights to download.

Weights are initialised under a forked, seeded RNG: the same folder every time, and the
test's own random streams are left as they were.
"""

from __future__ import annotations

from pathlib import Path

LETTERS = list("abcdefghijklmnopqrstuvwxy")


def _build(path: Path, vocab: list[str], model_class: str, seed: int, **config) -> Path:
    """Save a word-piece tokenizer over ``vocab`` and a freshly initialised BERT ``model_class``."""
    import torch
    import transformers

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *vocab]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(words))
    # Positional: transformers 5 ignores the vocab_file keyword (every text became [UNK]).
    transformers.BertTokenizerFast(str(path / "vocab.txt")).save_pretrained(path)
    bert_config = transformers.BertConfig(
        vocab_size=len(words), hidden_size=16, num_attention_heads=2, intermediate_size=32, **config
    )
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        getattr(transformers, model_class)(bert_config).save_pretrained(path)
    return path


def build_tiny_encoder(path: Path, vocab: list[str] = LETTERS, *, seed: int = 0) -> Path:
    """A two-layer BERT encoder (hidden size 16) that ``models_gpu`` mean-pools."""
    return _build(path, vocab, "BertModel", seed, num_hidden_layers=2, max_position_embeddings=64)


def build_tiny_sequence_classifier(path: Path, vocab: list[str], *, seed: int = 0) -> Path:
    """A one-layer BERT reward model (one output) with a word-piece vocabulary of ``vocab``."""
    return _build(
        path, vocab, "BertForSequenceClassification", seed, num_hidden_layers=1, num_labels=1
    )
