"""Tests for kdteach.core.data: the original's synthetic task, its split and scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from kdteach.core.data import (
    Dataset,
    dataset_for,
    fresh_inputs,
    make_dataset,
    target_function,
    validation_split,
)
from kdteach.protocol.settings import get_settings


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return make_dataset()


@pytest.fixture
def keep_numpy_rng():
    """The original's recipe seeds numpy's global generator: put it back afterwards."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)


def original_recipe():
    """The original notebook's data steps, written out again by hand."""
    np.random.seed(42)
    X = np.random.uniform(-2, 2, (2000, 10))
    y_true = (
        np.sin(X[:, 0] * X[:, 1])
        + 0.5 * np.cos(X[:, 2] * np.pi)
        + np.tanh(X[:, 3])
        + 0.2 * X[:, 4] ** 2
        - 1.5 * np.exp(-X[:, 0] ** 2)
        + 0.1 * (X[:, 5] > 0).astype(float)
    )
    y_noisy = y_true + np.random.normal(0, 0.1, y_true.shape)
    X = X.astype(np.float32)
    y = y_noisy.reshape(-1, 1).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
    scaler = StandardScaler()
    X_train_scaled = scaler.fit_transform(X_train)
    X_test_scaled = scaler.transform(X_test)
    return X_train_scaled, X_test_scaled, y_train, y_test, X_train, X_test


def test_default_shapes_and_dtypes(ds):
    assert tuple(ds.X_train.shape) == (1600, 10)
    assert tuple(ds.y_train.shape) == (1600, 1)
    assert tuple(ds.X_test.shape) == (400, 10)
    assert tuple(ds.y_test.shape) == (400, 1)
    for t in (ds.X_train, ds.y_train, ds.X_test, ds.y_test):
        assert isinstance(t, torch.Tensor)
        assert t.dtype == torch.float32
        assert t.device.type == "cpu"
    assert ds.n_features == 10
    assert ds.y_true_train.shape == (1600,)
    assert ds.y_true_test.shape == (400,)
    assert ds.X_train_raw.shape == (1600, 10)
    assert ds.X_test_raw.shape == (400, 10)


def test_numbers_equal_the_original_recipe_exactly(ds, keep_numpy_rng):
    X_tr, X_te, y_tr, y_te, X_tr_raw, X_te_raw = original_recipe()
    np.testing.assert_array_equal(ds.X_train.numpy(), X_tr)
    np.testing.assert_array_equal(ds.X_test.numpy(), X_te)
    np.testing.assert_array_equal(ds.y_train.numpy(), y_tr)
    np.testing.assert_array_equal(ds.y_test.numpy(), y_te)
    np.testing.assert_array_equal(ds.X_train_raw, X_tr_raw)
    np.testing.assert_array_equal(ds.X_test_raw, X_te_raw)


def test_scaler_is_fit_on_the_training_part_only(ds):
    assert np.allclose(ds.X_train.numpy().mean(axis=0), 0, atol=1e-5)
    assert np.allclose(ds.X_train.numpy().std(axis=0), 1, atol=1e-4)
    np.testing.assert_allclose(ds.scaler.mean_, ds.X_train_raw.mean(axis=0, dtype=np.float64),
                               rtol=1e-5, atol=1e-6)
    # the test part is transformed with the training statistics, so it is not exactly centred
    assert not np.allclose(ds.X_test.numpy().mean(axis=0), 0, atol=1e-5)


def test_inputs_lie_in_the_originals_range(ds):
    raw = np.concatenate([ds.X_train_raw, ds.X_test_raw])
    assert raw.min() >= -2 and raw.max() <= 2
    assert raw.min() < -1.99 and raw.max() > 1.99


def test_noiseless_targets_match_the_raw_split_inputs(ds):
    np.testing.assert_allclose(ds.y_true_train, target_function(ds.X_train_raw), atol=1e-5)
    np.testing.assert_allclose(ds.y_true_test, target_function(ds.X_test_raw), atol=1e-5)


def test_noise_level_is_about_a_tenth(ds):
    residual = ds.y_train.numpy()[:, 0] - ds.y_true_train
    assert abs(residual.mean()) < 0.01
    assert 0.09 < residual.std() < 0.11


def test_noise_zero_gives_the_noiseless_targets():
    d = make_dataset(noise=0.0)
    np.testing.assert_allclose(d.y_train.numpy()[:, 0], d.y_true_train, atol=1e-6)


def test_make_dataset_leaves_numpy_global_rng_alone(keep_numpy_rng):
    np.random.seed(1234)
    before = np.random.get_state()
    make_dataset(n_samples=50)
    after = np.random.get_state()
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]
    # and the next draw is the one seed 1234 would give
    expected = np.random.RandomState(1234).uniform()
    assert np.random.uniform() == expected


def test_make_dataset_is_deterministic_and_seeded():
    a, b = make_dataset(n_samples=100), make_dataset(n_samples=100)
    assert torch.equal(a.X_train, b.X_train) and torch.equal(a.y_train, b.y_train)
    c = make_dataset(n_samples=100, seed=7)
    assert not torch.equal(a.X_train, c.X_train)
    d = make_dataset(n_samples=100, split_seed=7)
    assert not np.array_equal(a.X_train_raw, d.X_train_raw)
    # same draw, other split: the same 100 points overall
    np.testing.assert_array_equal(
        np.sort(np.concatenate([a.X_train_raw, a.X_test_raw]), axis=0),
        np.sort(np.concatenate([d.X_train_raw, d.X_test_raw]), axis=0),
    )


def test_other_sizes():
    d = make_dataset(n_samples=100, n_features=7, test_size=0.3)
    assert tuple(d.X_train.shape) == (70, 7)
    assert tuple(d.X_test.shape) == (30, 7)
    assert d.n_features == 7


def test_target_function_alone():
    X = np.zeros((3, 10))
    out = target_function(X)
    assert out.shape == (3,)
    # sin 0 + 0.5 cos 0 + tanh 0 + 0 - 1.5 exp 0 + 0.1 * (0 > 0)
    np.testing.assert_allclose(out, -1.0)


def test_target_function_known_point():
    x = np.array([[1.0, 0.5, 1.0, 2.0, -1.0, 0.3]])
    expected = (
        np.sin(0.5) + 0.5 * np.cos(np.pi) + np.tanh(2.0) + 0.2 - 1.5 * np.exp(-1.0) + 0.1
    )
    np.testing.assert_allclose(target_function(x), [expected])


def test_target_function_ignores_features_beyond_the_sixth():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (20, 10))
    Y = X.copy()
    Y[:, 6:] = rng.uniform(-2, 2, (20, 4))
    np.testing.assert_array_equal(target_function(X), target_function(Y))
    np.testing.assert_array_equal(target_function(X), target_function(X[:, :6]))


def test_target_function_step_at_feature_five():
    x = np.zeros((2, 6))
    x[1, 5] = 1e-3
    diff = target_function(x)[1] - target_function(x)[0]
    assert diff == pytest.approx(0.1)


def test_target_function_needs_six_features():
    with pytest.raises(ValueError, match="6"):
        target_function(np.zeros((4, 5)))
    with pytest.raises(ValueError):
        target_function(np.zeros(10))


@pytest.mark.parametrize("n_features", [0, 3, 5])
def test_too_few_features_is_an_error(n_features):
    with pytest.raises(ValueError, match="n_features"):
        make_dataset(n_samples=50, n_features=n_features)


@pytest.mark.parametrize("noise", [-0.1, float("nan"), float("inf")])
def test_bad_noise_is_an_error(noise):
    with pytest.raises(ValueError, match="noise"):
        make_dataset(n_samples=50, noise=noise)


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.5, 2.0])
def test_test_size_outside_unit_interval_is_an_error(test_size):
    with pytest.raises(ValueError, match="test_size"):
        make_dataset(n_samples=50, test_size=test_size)


def test_too_few_samples_is_an_error():
    with pytest.raises(ValueError, match="n_samples"):
        make_dataset(n_samples=3)


def test_scale_maps_raw_inputs_to_the_model_inputs(ds):
    scaled = ds.scale(ds.X_test_raw)
    assert isinstance(scaled, torch.Tensor)
    assert scaled.dtype == torch.float32
    assert torch.equal(scaled, ds.X_test)
    # also from float64 and from a plain list
    np.testing.assert_allclose(ds.scale(ds.X_train_raw.astype(np.float64)).numpy(),
                               ds.X_train.numpy(), atol=1e-6)
    assert torch.equal(ds.scale(ds.X_test_raw[:2].tolist()), ds.X_test[:2])


def test_to_moves_tensors_and_keeps_the_rest(ds):
    moved = ds.to("cpu")
    assert moved is not ds
    assert torch.equal(moved.X_train, ds.X_train)
    assert moved.scaler is ds.scaler
    np.testing.assert_array_equal(moved.y_true_test, ds.y_true_test)


def test_dataset_for_settings(monkeypatch):
    monkeypatch.delenv("KDTEACH_PROFILE", raising=False)
    settings = get_settings("quick", device="cpu", n_samples=200, n_features=8, test_size=0.25)
    d = dataset_for(settings)
    assert tuple(d.X_train.shape) == (150, 8)
    assert tuple(d.X_test.shape) == (50, 8)
    assert d.X_train.device.type == "cpu"
    e = make_dataset(n_samples=200, n_features=8, test_size=0.25)
    assert torch.equal(d.X_train, e.X_train) and torch.equal(d.y_test, e.y_test)


def test_validation_split_carves_the_training_set_only(ds):
    X_fit, y_fit, X_val, y_val = validation_split(ds, 0.2, seed=0)
    assert len(X_val) == 320 and len(X_fit) == 1280
    rows = {tuple(r) for r in ds.X_train.numpy().round(6)}
    both = np.concatenate([X_fit.numpy(), X_val.numpy()]).round(6)
    assert {tuple(r) for r in both} == rows  # a partition of the training rows
    assert not ({tuple(r) for r in X_val.numpy().round(6)}
                & {tuple(r) for r in ds.X_test.numpy().round(6)})
    again = validation_split(ds, 0.2, seed=0)
    assert torch.equal(again[2], X_val)
    assert not torch.equal(validation_split(ds, 0.2, seed=1)[2], X_val)
    with pytest.raises(ValueError, match="fraction"):
        validation_split(ds, 1.0)


def test_fresh_inputs_come_from_the_input_distribution(ds):
    X = fresh_inputs(ds, 4000, seed=7)
    assert X.shape == (4000, 10) and X.dtype == torch.float32
    raw = ds.scaler.inverse_transform(X.numpy())
    assert raw.min() >= -2.0 - 1e-4 and raw.max() <= 2.0 + 1e-4
    assert abs(raw.mean()) < 0.05  # U(-2, 2) has mean 0
    assert torch.equal(fresh_inputs(ds, 10, seed=7), X[:10])
    with pytest.raises(ValueError, match="positive integer"):
        fresh_inputs(ds, 0)
