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


def build_tiny_causal_lm(path: Path, *, seed: int = 0, positions: int = 1024) -> Path:
    """A two-layer GPT-2 (hidden size 16) with a character word-piece tokenizer that keeps case.

    Upper-case letters are whole tokens, so the judge's label tokens ``A`` and ``B`` and the
    digits of a rating scale each exist as one token. The tokenizer adds no special tokens
    (as causal LMs' do not append an end marker), so the last position is the prompt's own.
    """
    import string

    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    pieces = [
        *string.ascii_letters,
        *string.digits,
        *(f"##{c}" for c in string.ascii_letters + string.digits),
        *".,;:!?'\"()[]{}<>-_/=+*&%$#@",
    ]
    words = ["[PAD]", "[UNK]", "[EOS]", *pieces]
    vocab = {word: index for index, word in enumerate(words)}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=1000))
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]"
    )
    path.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(path)
    config = transformers.GPT2Config(
        vocab_size=len(words),
        n_embd=16,
        n_layer=2,
        n_head=2,
        n_positions=positions,
        pad_token_id=0,
        eos_token_id=2,
        bos_token_id=2,
    )
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        transformers.GPT2LMHeadModel(config).save_pretrained(path)
    return path
