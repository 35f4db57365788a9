"""Fixtures for curation tests: a tiny embedding model, so jobs need not load MiniLM."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from tests.tiny_models import build_tiny_encoder

# Letters and their word-piece continuations: any lowercase word splits into known
# pieces, so two different texts get different vectors (a plain word list would turn
# most of a prompt into [UNK]).
CHARACTERS = [
    *string.ascii_lowercase,
    *(f"##{c}" for c in string.ascii_lowercase + string.digits),
    *string.digits,
    *".,;:!?'\"()-",
]


@pytest.fixture(scope="session")
def tiny_model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model root holding ``tiny-encoder``: built from a seeded config, identical every time."""
    from transformers import AutoConfig, BertTokenizerFast

    root = tmp_path_factory.mktemp("models")
    folder = build_tiny_encoder(root / "tiny-encoder", CHARACTERS)
    # The tokenizer again, from the vocabulary passed by position: transformers 5 ignores
    # ``vocab_file=`` and saves a five-token vocabulary that turns every text into [UNK].
    # It truncates where the model's position table ends (a character is a token here).
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *CHARACTERS]
    (folder / "vocab.txt").write_text("\n".join(words))
    positions = AutoConfig.from_pretrained(folder).max_position_embeddings
    tokenizer = BertTokenizerFast(str(folder / "vocab.txt"), model_max_length=positions)
    assert "[UNK]" not in tokenizer.tokenize("any text, 42!")
    tokenizer.save_pretrained(folder)
    return root


@pytest.fixture
def tiny_embeddings(settings, tiny_model_root: Path, tmp_path: Path) -> Path:
    """Jobs embed with the tiny encoder, and every cache starts empty in this test's storage."""
    settings.BALLOT_MODEL_ROOTS = [str(tiny_model_root)]
    settings.BALLOT_EMBEDDING_MODEL = str(tiny_model_root / "tiny-encoder")
    settings.BALLOT_STORAGE_ROOT = tmp_path / "storage"
    settings.BALLOT_JOBS_IN_THREAD = False
    return tiny_model_root
