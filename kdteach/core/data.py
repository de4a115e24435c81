"""The original notebook's regression task: a ten-feature function, its noisy samples, the split.

Six of the ten features matter: an interaction ``sin(x0*x1)``, a periodic term in x2,
a saturating ``tanh(x3)``, a quadratic in x4, a Gaussian bump in x0 and a small step in x5.
Features 6–9 are pure distraction. Inputs are drawn from U(-2, 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

X_LOW, X_HIGH = -2.0, 2.0
N_USED_FEATURES = 6


def target_function(X):
    """The noiseless target ``f(X)`` for an array of shape (n, >=6); returns shape (n,)."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] < N_USED_FEATURES:
        raise ValueError(
            f"target_function needs X of shape (n, >= {N_USED_FEATURES}) since it reads "
            f"features 0-5; got shape {X.shape}"
        )
    return (
        np.sin(X[:, 0] * X[:, 1])
        + 0.5 * np.cos(X[:, 2] * np.pi)
        + np.tanh(X[:, 3])
        + 0.2 * X[:, 4] ** 2
        - 1.5 * np.exp(-X[:, 0] ** 2)
        + 0.1 * (X[:, 5] > 0).astype(float)
    )


@dataclass
class Dataset:
    """A train/test split as float32 tensors, scaled with a scaler fit on the training part."""

    X_train: torch.Tensor  # (n_train, n_features), standardised
    y_train: torch.Tensor  # (n_train, 1), noisy
    X_test: torch.Tensor
    y_test: torch.Tensor
    scaler: StandardScaler
    y_true_train: np.ndarray  # (n_train,), noiseless
    y_true_test: np.ndarray
    X_train_raw: np.ndarray  # unscaled inputs, for plots in the original units
    X_test_raw: np.ndarray

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    def to(self, device) -> Dataset:
        """The same data with its tensors on ``device``."""
        move = {k: v.to(device) for k, v in vars(self).items() if isinstance(v, torch.Tensor)}
        return Dataset(**{**vars(self), **move})

    def scale(self, X_raw) -> torch.Tensor:
        """Raw inputs (original units) → the standardised float32 tensor a model takes."""
        scaled = self.scaler.transform(np.asarray(X_raw, dtype=np.float32))
        return torch.as_tensor(scaled, dtype=torch.float32, device=self.X_train.device)


def check_task(n_samples: int, n_features: int, noise: float, test_size: float) -> None:
    """The rules a task must follow; the settings are checked with the same rules."""
    if n_features < N_USED_FEATURES:
        raise ValueError(
            f"n_features={n_features} is too small: the target reads features 0-5, "
            f"so n_features must be >= {N_USED_FEATURES}"
        )
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must lie strictly between 0 and 1, got {test_size!r}")
    if n_samples < 4:
        raise ValueError(f"n_samples must be at least 4, got {n_samples!r}")


def make_dataset(
    n_samples: int = 2000,
    n_features: int = 10,
    noise: float = 0.1,
    seed: int = 42,
    test_size: float = 0.2,
    split_seed: int = 42,
    device="cpu",
) -> Dataset:
    """Generate, split and scale the data exactly as the original notebook does (same numbers).

    Taught in Lesson 00, section 3 (the task)."""
    check_task(n_samples, n_features, noise, test_size)

    # The original calls np.random.seed(42) and then the global generator; a RandomState
    # with the same seed draws the same numbers without touching global state.
    rng = np.random.RandomState(seed)
    X = rng.uniform(X_LOW, X_HIGH, (n_samples, n_features))
    y_true = target_function(X)
    y_noisy = y_true + rng.normal(0, noise, y_true.shape)
    X = X.astype(np.float32)
    y = y_noisy.reshape(-1, 1).astype(np.float32)

    X_tr, X_te, y_tr, y_te, yt_tr, yt_te = train_test_split(
        X, y, y_true, test_size=test_size, random_state=split_seed
    )
    scaler = StandardScaler().fit(X_tr)

    def tensor(a):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(device)

    return Dataset(
        X_train=tensor(scaler.transform(X_tr)),
        y_train=tensor(y_tr),
        X_test=tensor(scaler.transform(X_te)),
        y_test=tensor(y_te),
        scaler=scaler,
        y_true_train=yt_tr,
        y_true_test=yt_te,
        X_train_raw=X_tr,
        X_test_raw=X_te,
    )


def dataset_for(settings) -> Dataset:
    """The dataset a :class:`~kdteach.protocol.settings.Settings` describes, on its device.

    Taught in Lesson 00, section 3 (the task)."""
    return make_dataset(
        n_samples=settings.n_samples,
        n_features=settings.n_features,
        noise=settings.noise,
        seed=settings.data_seed,
        test_size=settings.test_size,
        split_seed=settings.split_seed,
        device=settings.torch_device,
    )


def validation_split(data: Dataset, fraction: float = 0.2, seed: int = 0):
    """Carve a validation part out of the training set (never the test set).

    Returns ``(X_fit, y_fit, X_val, y_val)``: models whose settings are being chosen train on
    the *fit* part, and the choice is made on the *validation* part.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction!r}")
    n = len(data.X_train)
    order = torch.from_numpy(np.random.RandomState(seed).permutation(n)).to(data.X_train.device)
    n_val = max(1, round(n * fraction))
    val, fit = order[:n_val], order[n_val:]
    return data.X_train[fit], data.y_train[fit], data.X_train[val], data.y_train[val]


def fresh_inputs(data: Dataset, n: int, seed: int = 7) -> torch.Tensor:
    """``n`` new inputs drawn from the data's input distribution U(-2, 2)^d, scaled like
    the training inputs. They come without labels: only a teacher can label them."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    X_raw = np.random.RandomState(seed).uniform(X_LOW, X_HIGH, (n, data.n_features))
    return data.scale(X_raw)
