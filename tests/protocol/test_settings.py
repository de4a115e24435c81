"""Tests for kdteach.protocol.settings: profiles, overrides, device choice and validation."""

from __future__ import annotations

import math

import pytest
import torch

from kdteach.core import losses
from kdteach.protocol import settings as config
from kdteach.protocol.settings import Settings, check_weights, get_settings, resolve_device


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """`make test` / `make test-gpu` export these; each test sets what it needs."""
    monkeypatch.delenv("KDTEACH_PROFILE", raising=False)
    monkeypatch.delenv("KDTEACH_DEVICE", raising=False)


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


# ---------------------------------------------------------------- profiles


def test_full_profile_is_the_original_protocol(no_cuda):
    s = get_settings("full")
    assert s.profile == "full"
    assert (s.n_runs, s.epochs_teacher, s.epochs_student, s.batch_size) == (5, 700, 600, 128)
    assert s.lr_teacher == 1e-4
    assert s.lr_student == 1e-3
    assert s.weight_decay_teacher == 1e-5
    assert s.weight_decay_expert == 1e-4
    assert s.weight_decay_student == 0
    assert s.kd_weights == {"hard": 0.3, "hp": 0.7}
    assert s.gr_weights == {"hard": 0.2, "hp": 0.5, "gr": 0.3}
    assert s.feat_weights == {"hard": 0.3, "hp": 0.4, "feat": 0.3}  # named, never built there
    assert tuple(s.grid_hard_weights) == (0.1, 0.3, 0.5, 0.7, 0.9)
    assert (s.n_samples, s.n_features, s.noise, s.test_size) == (2000, 10, 0.1, 0.2)
    assert (s.data_seed, s.split_seed) == (42, 42)


def test_grid_weights_pair_hard_with_one_minus_hard(no_cuda):
    grid = get_settings("full").grid_weights
    assert grid == [
        {"hard": 0.1, "hp": 0.9},
        {"hard": 0.3, "hp": 0.7},
        {"hard": 0.5, "hp": 0.5},
        {"hard": 0.7, "hp": 0.3},
        {"hard": 0.9, "hp": 0.1},
    ]


def test_quick_profile_is_smaller_but_keeps_the_method(no_cuda):
    full, quick = get_settings("full"), get_settings("quick")
    assert quick.profile == "quick"
    assert quick.n_runs >= 2  # a paired t-test needs two runs
    assert quick.n_runs < full.n_runs
    assert quick.epochs_teacher < full.epochs_teacher
    assert quick.epochs_student < full.epochs_student
    for name in ("batch_size", "lr_teacher", "lr_student", "kd_weights", "gr_weights",
                 "feat_weights"):
        assert getattr(quick, name) == getattr(full, name), name


def test_profile_defaults_to_full(no_cuda):
    assert get_settings().profile == "full"


def test_profile_from_environment(monkeypatch, no_cuda):
    monkeypatch.setenv("KDTEACH_PROFILE", "quick")
    s = get_settings()
    assert s.profile == "quick"
    assert s.epochs_teacher == get_settings("quick").epochs_teacher


def test_profile_argument_beats_environment(monkeypatch, no_cuda):
    monkeypatch.setenv("KDTEACH_PROFILE", "quick")
    assert get_settings("full").epochs_teacher == 700


def test_unknown_profile_lists_valid_names():
    with pytest.raises(ValueError, match="quick") as info:
        get_settings("medium")
    assert "full" in str(info.value)
    assert "medium" in str(info.value)


def test_unknown_profile_from_environment(monkeypatch):
    monkeypatch.setenv("KDTEACH_PROFILE", "huge")
    with pytest.raises(ValueError, match="huge"):
        get_settings()


# ---------------------------------------------------------------- overrides


def test_field_overrides_win_over_profile(no_cuda):
    s = get_settings("quick", epochs_student=3, batch_size=64, kd_weights={"hard": 0.5, "hp": 0.5})
    assert s.epochs_student == 3
    assert s.batch_size == 64
    assert s.kd_weights == {"hard": 0.5, "hp": 0.5}
    assert s.epochs_teacher == get_settings("quick").epochs_teacher  # untouched


def test_unknown_override_is_rejected(no_cuda):
    with pytest.raises(ValueError, match="epochs_studnet"):
        get_settings("full", epochs_studnet=3)


def test_replace_returns_a_checked_copy(no_cuda):
    s = get_settings("full")
    t = s.replace(n_runs=3)
    assert t.n_runs == 3 and s.n_runs == 5
    with pytest.raises(ValueError, match="n_runs"):
        s.replace(n_runs=0)


def test_as_dict_holds_every_field(no_cuda):
    d = get_settings("quick").as_dict()
    assert d["profile"] == "quick"
    assert d["kd_weights"] == {"hard": 0.3, "hp": 0.7}
    assert "epochs_teacher" in d and "lr_student" in d


def test_settings_are_frozen(no_cuda):
    s = get_settings("full")
    with pytest.raises(AttributeError):
        s.n_runs = 1


# ---------------------------------------------------------------- device


def test_auto_device_is_cpu_without_cuda(no_cuda):
    assert resolve_device("auto") == torch.device("cpu")
    assert get_settings("quick", device="auto").torch_device == torch.device("cpu")


def test_auto_device_picks_cuda_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_cpu_device(no_cuda):
    assert resolve_device("cpu") == torch.device("cpu")
    s = get_settings("quick", device="cpu")
    assert s.device == "cpu"
    assert s.torch_device == torch.device("cpu")


def test_device_from_environment(monkeypatch, no_cuda):
    monkeypatch.setenv("KDTEACH_DEVICE", "cpu")
    assert get_settings("quick").device == "cpu"
    assert resolve_device() == torch.device("cpu")


def test_device_argument_beats_environment(monkeypatch, no_cuda):
    monkeypatch.setenv("KDTEACH_DEVICE", "cuda")
    assert get_settings("quick", device="cpu").device == "cpu"


def test_cuda_without_cuda_is_a_runtime_error(no_cuda):
    with pytest.raises(RuntimeError, match="cuda"):
        resolve_device("cuda")
    with pytest.raises(RuntimeError, match="cuda"):
        get_settings("quick", device="cuda")


def test_cuda_from_environment_without_cuda(monkeypatch, no_cuda):
    monkeypatch.setenv("KDTEACH_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="cuda"):
        get_settings("quick")


@pytest.mark.parametrize("bad", ["gpu", "tpu", "cuda:7"])
def test_unknown_device_lists_valid_names(bad, no_cuda):
    for call in (lambda: resolve_device(bad), lambda: get_settings("quick", device=bad)):
        with pytest.raises(ValueError) as info:
            call()
        message = str(info.value)
        assert bad in message
        for name in ("auto", "cpu", "cuda"):
            assert name in message


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "name", ["n_runs", "epochs_teacher", "epochs_student", "batch_size", "n_samples"]
)
@pytest.mark.parametrize("value", [0, -1, 2.5, True])
def test_non_positive_integer_settings_are_rejected(name, value, no_cuda):
    with pytest.raises(ValueError, match=name):
        get_settings("quick", **{name: value})


@pytest.mark.parametrize("name", ["lr_teacher", "lr_student"])
@pytest.mark.parametrize("value", [0, -1e-3, math.nan, math.inf])
def test_bad_learning_rates_are_rejected(name, value, no_cuda):
    with pytest.raises(ValueError, match=name):
        get_settings("quick", **{name: value})


@pytest.mark.parametrize(
    "name", ["weight_decay_teacher", "weight_decay_expert", "weight_decay_student", "noise"]
)
@pytest.mark.parametrize("value", [-1e-5, math.nan, math.inf])
def test_bad_non_negative_settings_are_rejected(name, value, no_cuda):
    with pytest.raises(ValueError, match=name):
        get_settings("quick", **{name: value})


def test_zero_weight_decay_and_noise_are_allowed(no_cuda):
    s = get_settings("quick", weight_decay_teacher=0.0, noise=0.0)
    assert s.weight_decay_teacher == 0.0 and s.noise == 0.0


@pytest.mark.parametrize("value", [0.0, 1.0, -0.2, 1.5])
def test_test_size_outside_unit_interval_is_rejected(value, no_cuda):
    with pytest.raises(ValueError, match="test_size"):
        get_settings("quick", test_size=value)


def test_batch_larger_than_training_set_is_rejected(no_cuda):
    # 2000 samples, 20 % held out: 1600 for training
    assert get_settings("quick", batch_size=1600).batch_size == 1600
    with pytest.raises(ValueError, match="batch_size") as info:
        get_settings("quick", batch_size=1601)
    assert "1600" in str(info.value)


def test_batch_limit_follows_the_split(no_cuda):
    # 100 samples, half held out: 50 for training
    assert get_settings("quick", n_samples=100, test_size=0.5, batch_size=50).batch_size == 50
    with pytest.raises(ValueError, match="batch_size"):
        get_settings("quick", n_samples=100, test_size=0.5, batch_size=51)


@pytest.mark.parametrize(
    "weights, fragment",
    [
        ({"hard": -0.1, "hp": 1.0}, "hard"),
        ({"hard": 0.3, "hp": math.nan}, "hp"),
        ({"hard": math.inf, "hp": 0.7}, "hard"),
        ({"hard": 0.0, "hp": 0.0}, "> 0"),
        ({"hard": 0.3, "l_feat": 0.7}, "l_feat"),
        ({"hard": 0.3, "hp": "0.7"}, "hp"),
        ({"hard": 0.3, "feat": -0.3}, "feat"),
        ({"hard": 0.3, "jac": math.inf}, "jac"),
    ],
)
@pytest.mark.parametrize("field", ["kd_weights", "gr_weights", "feat_weights"])
def test_bad_loss_weights_are_rejected(weights, fragment, field, no_cuda):
    with pytest.raises(ValueError, match=field) as info:
        get_settings("quick", **{field: weights})
    assert fragment in str(info.value)


def test_unknown_term_message_lists_valid_terms():
    with pytest.raises(ValueError) as info:
        check_weights({"l_feat": 1.0})
    for term in ("hard", "hp", "gr", "jac", "feat"):
        assert term in str(info.value)


def test_check_weights_accepts_and_normalises():
    assert check_weights({"hard": 1, "hp": 0}) == {"hard": 1.0, "hp": 0.0}
    out = check_weights({"hard": 0.2, "hp": 0.5, "gr": 0.3})
    assert out == {"hard": 0.2, "hp": 0.5, "gr": 0.3}
    assert all(isinstance(v, float) for v in out.values())


def test_check_weights_rejects_non_dict():
    with pytest.raises(ValueError):
        check_weights([0.3, 0.7])


@pytest.mark.parametrize("grid", [(), (0.1, 1.2), (-0.1, 0.5)])
def test_bad_grid_is_rejected(grid, no_cuda):
    with pytest.raises(ValueError, match="grid_hard_weights"):
        get_settings("quick", grid_hard_weights=grid)


def test_direct_construction_is_validated_too():
    with pytest.raises(ValueError, match="epochs_teacher"):
        Settings(epochs_teacher=0)
    with pytest.raises(ValueError, match="profile"):
        Settings(profile="nope")


def test_constants():
    assert config.PROFILES == ("quick", "full")
    assert set(config.DEVICES) == {"auto", "cpu", "cuda"}
    assert losses.LOSS_TERMS == ("hard", "hp", "gr", "jac", "feat")
