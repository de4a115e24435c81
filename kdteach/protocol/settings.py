"""Experiment settings: the original notebook's protocol (``full``), a fast ``quick`` profile,
device choice.

>>> s = get_settings("full")
>>> s.n_runs, s.epochs_teacher, s.epochs_student, s.batch_size
(5, 700, 600, 128)

A profile is chosen by argument or by the ``KDTEACH_PROFILE`` environment variable,
a device by argument or ``KDTEACH_DEVICE``; any field can be overridden by keyword.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field

import torch

from kdteach.core.data import check_task
from kdteach.core.losses import check_weights, is_number
from kdteach.core.train import check_batch_size

PROFILES = ("quick", "full")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Settings:
    """Every number the experiment depends on. ``full`` defaults are the original
notebook's; the lessons' additions are marked.

    Build it with :func:`get_settings`, which applies a profile's numbers; ``Settings()``
    alone holds the full profile's numbers whatever its ``profile`` label says.
    """

    profile: str = "full"
    device: str = "auto"
    # protocol
    n_runs: int = 5
    epochs_teacher: int = 700
    epochs_student: int = 600
    batch_size: int = 128
    # optimisers (Adam)
    lr_teacher: float = 1e-4
    lr_student: float = 1e-3
    weight_decay_teacher: float = 1e-5
    weight_decay_expert: float = 1e-4
    weight_decay_student: float = 0.0
    # loss weights
    kd_weights: dict = field(default_factory=lambda: {"hard": 0.3, "hp": 0.7})
    grid_hard_weights: tuple = (0.1, 0.3, 0.5, 0.7, 0.9)
    gr_weights: dict = field(default_factory=lambda: {"hard": 0.2, "hp": 0.5, "gr": 0.3})
    # L_FEAT's weights: the original names them (hard 0.3, hp 0.4, feat 0.3) but never
    # builds the term; kdteach builds it (see kdteach.core.losses)
    feat_weights: dict = field(default_factory=lambda: {"hard": 0.3, "hp": 0.4, "feat": 0.3})
    # data
    n_samples: int = 2000
    n_features: int = 10
    noise: float = 0.1
    data_seed: int = 42
    test_size: float = 0.2
    split_seed: int = 42
    # added by the lessons (not in the original notebook)
    val_size: float = 0.2  # share of the training set held out for choosing weights
    val_seed: int = 0
    fresh_factor: int = 4  # unlabelled inputs drawn for distillation, per training input
    fresh_seed: int = 7
    patience: int = 50  # early stopping: epochs without a better validation MSE

    def __post_init__(self):
        validate(self)
        # store plain floats (numpy numbers would not survive JSON) in a fixed form
        object.__setattr__(self, "kd_weights", check_weights(self.kd_weights))
        object.__setattr__(self, "gr_weights", check_weights(self.gr_weights))
        object.__setattr__(self, "feat_weights", check_weights(self.feat_weights))
        object.__setattr__(self, "grid_hard_weights", tuple(map(float, self.grid_hard_weights)))

    def __hash__(self):  # the dict fields make the generated hash fail
        return hash(json.dumps(self.as_dict(), sort_keys=True))

    def replace(self, **changes) -> Settings:
        """A copy with some fields changed (checked like the original)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def grid_weights(self) -> list[dict]:
        """The grid search's weight pairs: hard = h, hp = 1 - h (rounded like the original's)."""
        return [{"hard": h, "hp": round(1.0 - h, 10)} for h in self.grid_hard_weights]

    @property
    def torch_device(self) -> torch.device:
        return resolve_device(self.device)


_PROFILE_FIELDS = {
    "full": {},
    # CI and nbval: two paired runs, a tenth-ish of the epochs.
    "quick": {"n_runs": 2, "epochs_teacher": 60, "epochs_student": 40},
}


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_positive_float(name, value):
    if not is_number(value) or not (
        math.isfinite(value) and value > 0
    ):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def validate(s: Settings) -> None:
    if s.profile not in PROFILES:
        raise ValueError(f"unknown profile {s.profile!r}; valid profiles: {', '.join(PROFILES)}")
    if s.device not in DEVICES:
        raise ValueError(f"unknown device {s.device!r}; valid devices: {', '.join(DEVICES)}")
    for name in ("n_runs", "epochs_teacher", "epochs_student", "batch_size", "n_samples",
                 "n_features"):
        _check_positive_int(name, getattr(s, name))
    for name in ("lr_teacher", "lr_student"):
        _check_positive_float(name, getattr(s, name))
    for name in ("weight_decay_teacher", "weight_decay_expert", "weight_decay_student", "noise"):
        value = getattr(s, name)
        if not is_number(value) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if not is_number(s.test_size):
        raise ValueError(f"test_size must lie strictly between 0 and 1, got {s.test_size!r}")
    check_task(s.n_samples, s.n_features, s.noise, s.test_size)
    if not (is_number(s.val_size) and 0 < s.val_size < 1):
        raise ValueError(f"val_size must lie strictly between 0 and 1, got {s.val_size!r}")
    _check_positive_int("fresh_factor", s.fresh_factor)
    _check_positive_int("patience", s.patience)
    n_train = s.n_samples - math.ceil(s.n_samples * s.test_size)
    check_batch_size(s.batch_size, n_train)
    check_weights(s.kd_weights, "kd_weights")
    check_weights(s.gr_weights, "gr_weights")
    check_weights(s.feat_weights, "feat_weights")
    grid = s.grid_hard_weights
    if not grid or not all(is_number(h) and 0 <= h <= 1 for h in grid):
        raise ValueError(
            f"grid_hard_weights must be a non-empty list of numbers in [0, 1], "
            f"got {s.grid_hard_weights!r}"
        )


def resolve_device(name: str | None = None) -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cuda`` without CUDA is an error."""
    name = name or os.environ.get("KDTEACH_DEVICE") or "auto"
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; valid devices: {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "device 'cuda' was asked for but this PyTorch sees no CUDA GPU; "
            "use device='cpu' (or KDTEACH_DEVICE=cpu / auto)"
        )
    return torch.device(name)


def get_settings(profile: str | None = None, device: str | None = None, **overrides) -> Settings:
    """Settings of a profile (argument, else ``KDTEACH_PROFILE``, else ``full``), with overrides."""
    profile = profile or os.environ.get("KDTEACH_PROFILE") or "full"
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    device = device or os.environ.get("KDTEACH_DEVICE") or "auto"
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(
            f"unknown setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
        )
    fields = {**_PROFILE_FIELDS[profile], **overrides}
    settings = Settings(profile=profile, device=device, **fields)
    resolve_device(settings.device)  # fail early on cuda-without-CUDA
    return settings
