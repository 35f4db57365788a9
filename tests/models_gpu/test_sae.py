"""The signed BatchTopK sparse autoencoder: it learns, it is odd, it is reproducible, it saves."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from models_gpu import SAEConfig, load_sae, save_sae, train_sae

DIM = 48
ATOMS = 24


def sparse_mixtures(n_rows: int, seed: int, *, active: int = 3, subspace: int = DIM) -> np.ndarray:
    """Rows that are signed sums of ``active`` of ``ATOMS`` fixed directions, plus noise.

    With ``subspace < DIM`` every direction lives in the first ``subspace`` coordinates.
    """
    atoms = np.random.default_rng(123).normal(size=(ATOMS, DIM))
    atoms[:, subspace:] = 0.0
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    codes = np.zeros((n_rows, ATOMS))
    for row in range(n_rows):
        chosen = rng.choice(ATOMS, size=active, replace=False)
        codes[row, chosen] = rng.choice([-1.0, 1.0], size=active) * rng.uniform(0.5, 2.0, active)
    noise = 0.02 * rng.normal(size=(n_rows, DIM))
    noise[:, subspace:] = 0.0
    return (codes @ atoms + noise).astype(np.float32)


FAST = SAEConfig(n_features=32, k_active=3, max_epochs=30, patience=30, batch_size=256)


@pytest.fixture(scope="module")
def fitted():
    return train_sae(sparse_mixtures(3000, seed=1), sparse_mixtures(500, seed=2), FAST)


def test_reconstruction_error_falls_during_training_and_the_weights_move(fitted) -> None:
    first, last = fitted.history[0], fitted.history[-1]
    assert last["train_nmse"] < 0.7 * first["train_nmse"]
    best = min(h["held_out_nmse"] for h in fitted.history)
    assert best < 0.7 * first["held_out_nmse"]
    # The kept weights are the best held-out epoch's, and they beat a fresh model by far.
    assert fitted.nmse(sparse_mixtures(500, seed=2)) == pytest.approx(best, rel=1e-4)
    untrained = train_sae(
        sparse_mixtures(50, seed=1), np.zeros((0, DIM)), replace(FAST, max_epochs=1, lr=1e-9)
    )
    assert not np.allclose(untrained.decoder, fitted.decoder)
    assert fitted.nmse(sparse_mixtures(500, seed=3)) < 0.5 * untrained.nmse(
        sparse_mixtures(500, seed=3)
    )


def test_features_are_antisymmetric_under_swapping_a_and_b(fitted) -> None:
    x = sparse_mixtures(200, seed=4)
    codes = fitted.encode(x)
    assert np.abs(codes).sum() > 0
    assert np.array_equal(fitted.encode(-x), -codes)
    assert np.allclose(fitted.decode(-codes), -fitted.decode(codes))
    # In training mode too: BatchTopK on |pre-activation| keeps the sign.
    batch = torch.from_numpy(x) / fitted.input_scale
    assert torch.equal(
        fitted.model.encode(-batch, batch=True), -fitted.model.encode(batch, batch=True)
    )


def test_batch_topk_keeps_k_per_row_on_average_and_inference_stays_close(fitted) -> None:
    x = torch.from_numpy(sparse_mixtures(400, seed=5)) / fitted.input_scale
    in_batch = fitted.model.encode(x, batch=True)
    assert int((in_batch != 0).sum()) == FAST.k_active * 400
    per_row = (in_batch != 0).sum(dim=1)
    assert per_row.min() < per_row.max()  # a row may use more features, another fewer
    at_inference = (fitted.encode(x.numpy() * fitted.input_scale) != 0).sum(axis=1).mean()
    assert 0.5 * FAST.k_active < at_inference < 2 * FAST.k_active


def test_decoder_columns_have_unit_norm(fitted) -> None:
    assert np.allclose(np.linalg.norm(fitted.decoder, axis=0), 1.0, atol=1e-5)


def test_one_seed_gives_the_same_features_and_another_seed_different_ones() -> None:
    train, held = sparse_mixtures(800, seed=6), sparse_mixtures(200, seed=7)
    config = replace(FAST, max_epochs=5, device="cpu")
    first, second = train_sae(train, held, config), train_sae(train, held, config)
    assert np.array_equal(first.decoder, second.decoder)
    assert np.array_equal(first.encode(held), second.encode(held))
    assert first.history == second.history
    other = train_sae(train, held, replace(config, seed=1))
    assert not np.allclose(other.decoder, first.decoder)


def test_training_leaves_the_global_rng_and_thread_count_alone() -> None:
    torch.manual_seed(42)
    expected = torch.rand(3)
    threads = torch.get_num_threads()
    torch.manual_seed(42)
    train_sae(sparse_mixtures(100, seed=8), np.zeros((0, DIM)), replace(FAST, max_epochs=2))
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_save_and_load_round_trip_as_safetensors_with_json_beside(fitted, tmp_path) -> None:
    save_sae(fitted, tmp_path / "sae")
    files = sorted(p.name for p in (tmp_path / "sae").iterdir())
    assert files == ["sae.json", "sae.safetensors"]
    meta = json.loads((tmp_path / "sae" / "sae.json").read_text())
    assert meta["config"]["n_features"] == 32
    loaded = load_sae(tmp_path / "sae")
    x = sparse_mixtures(100, seed=9)
    assert loaded.config == fitted.config
    assert loaded.input_scale == fitted.input_scale
    assert loaded.history == fitted.history
    assert np.array_equal(loaded.encode(x), fitted.encode(x))
    assert np.array_equal(loaded.decode(loaded.encode(x)), fitted.decode(fitted.encode(x)))


def test_the_auxiliary_loss_revives_dead_features() -> None:
    # Eight orthogonal directions, one per row. The starting dictionary knows six of them;
    # features 6 and 7 start dead: random directions with a tiny encoder, so they lose every
    # BatchTopK contest and the reconstruction loss never reaches them. Only the auxiliary
    # loss, which offers dead features the residual (the two unknown directions), can.
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(DIM, DIM)))[0][:8]
    rng = np.random.default_rng(1)

    def rows(n: int) -> np.ndarray:
        which = rng.integers(8, size=n)
        size = rng.choice([-1.0, 1.0], size=n) * rng.uniform(0.5, 2.0, n)
        return (size[:, None] * basis[which] + 0.01 * rng.normal(size=(n, DIM))).astype(np.float32)

    train, held = rows(4000), rows(400)
    config = SAEConfig(
        n_features=8, k_active=1, dead_after=10, max_epochs=12, patience=12, batch_size=256
    )
    start = train_sae(train[:10], np.zeros((0, DIM)), replace(config, max_epochs=1, lr=1e-12))
    with torch.no_grad():
        decoder = np.concatenate([basis[:6].T, rng.normal(size=(DIM, 2))], axis=1)
        decoder /= np.linalg.norm(decoder, axis=0)
        start.model.W_dec.copy_(torch.from_numpy(decoder))
        start.model.W_enc.copy_(torch.from_numpy(decoder.T) / start.input_scale)
        start.model.W_enc[6:] *= 1e-3

    without = train_sae(train, held, replace(config, aux_coef=0.0), warm_start=start)
    with_aux = train_sae(train, held, replace(config, aux_coef=1.0, aux_k=2), warm_start=start)

    assert without.history[-1]["dead_features"] == 2, without.history
    # The auxiliary loss runs only while some feature is dead: they were dead, then revived.
    assert with_aux.history[0]["aux_loss"] > 0, with_aux.history
    assert with_aux.history[-1]["dead_features"] == 0, with_aux.history
    covered = np.abs(basis @ with_aux.decoder).max(axis=1)
    assert (covered > 0.9).all(), covered
    assert with_aux.nmse(held) < 0.5 * without.nmse(held)


def test_bad_input_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="empty"):
        train_sae(np.zeros((0, DIM)), np.zeros((0, DIM)), FAST)
    with pytest.raises(ValueError, match="columns"):
        train_sae(np.ones((10, DIM)), np.ones((5, DIM + 1)), FAST)
    with pytest.raises(ValueError, match="NaN"):
        train_sae(np.full((10, DIM), np.nan), np.zeros((0, DIM)), FAST)
    with pytest.raises(ValueError, match="k_active"):
        SAEConfig(n_features=4, k_active=5)


def test_fewer_rows_than_features_still_trains() -> None:
    fit = train_sae(sparse_mixtures(5, seed=12), np.zeros((0, DIM)), replace(FAST, max_epochs=3))
    assert fit.encode(sparse_mixtures(5, seed=12)).shape == (5, 32)
    assert np.isfinite([h["train_nmse"] for h in fit.history]).all()
