"""Shared fixtures: HH-RLHF pairs and their MiniLM embeddings, computed once per session.

Tests that use ``hh_pairs`` load MiniLM and embed 3,000 texts: mark them ``slow`` and
list their modules in ``ONE_WORKER`` (tests/conftest.py), so that one pytest-xdist worker
runs them all and computes the embeddings once. No test relies on a disk cache another test
filled; caches live in each test's tmp_path.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from models_gpu import EmbeddingConfig, embed_texts
from tests.datasets import dataset

HH_FILE = "harmless-base_test.jsonl"
N_PAIRS = 1000
SEPARATOR = "\n\nAssistant:"
# Truncating at 128 tokens halves embedding time on CPU and keeps the tests well under
# three minutes; the final human turn of most HH prompts fits. (At 64 tokens the
# suspects test at 40% planted noise no longer finds 1.3x its base rate.)
TEST_EMBEDDING = EmbeddingConfig(max_length=128)


@dataclass
class HHPairs:
    prompts: list[str]
    chosen: list[str]
    rejected: list[str]
    prompt_emb: np.ndarray
    chosen_emb: np.ndarray
    rejected_emb: np.ndarray


def split_transcript(transcript: str) -> tuple[str, str]:
    """Split an HH transcript into (conversation so far, final assistant reply)."""
    cut = transcript.rfind(SEPARATOR)
    return transcript[:cut], transcript[cut + len(SEPARATOR) :].strip()


def load_hh(limit: int) -> tuple[list[str], list[str], list[str]]:
    """First ``limit`` HH-RLHF harmless pairs, or skip the test when the file is absent."""
    path: Path = dataset("hh_rlhf_harmless") / HH_FILE
    prompts, chosen, rejected = [], [], []
    with path.open() as handle:
        for line in handle:
            row = json.loads(line)
            prompt, good = split_transcript(row["chosen"])
            _, bad = split_transcript(row["rejected"])
            prompts.append(prompt)
            chosen.append(good)
            rejected.append(bad)
            if len(prompts) == limit:
                break
    return prompts, chosen, rejected


@pytest.fixture(scope="session")
def hh_pairs() -> HHPairs:
    prompts, chosen, rejected = load_hh(N_PAIRS)
    n = len(prompts)
    # Test processes run torch on one thread (tiny heads lose to thread overhead), but
    # MiniLM's batched matrix products use two cores well: 1.9x faster measured here.
    before = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    try:
        emb = embed_texts([*prompts, *chosen, *rejected], config=TEST_EMBEDDING)
    finally:
        torch.set_num_threads(before)
    return HHPairs(prompts, chosen, rejected, emb[:n], emb[n : 2 * n], emb[2 * n :])
