"""Figures of the task itself: the target function and its noise (lesson 00).

Like :mod:`kdteach.lesson.plots`, each function returns its Figure and takes an ``ax``
where it draws a single panel.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from kdteach.core.data import N_USED_FEATURES, X_HIGH, X_LOW, make_dataset, target_function
from kdteach.lesson.plots.style import SLIDE_SIZE, WIDE_SIZE, figure_and_axes


def _slice_inputs(feature: int, n_points: int, n_features: int, at: float = 0.0):
    """Inputs that sweep one feature over the data range while all others stay at ``at``."""
    if not 0 <= feature < n_features:
        raise ValueError(f"feature must lie in 0..{n_features - 1}, got {feature!r}")
    grid = np.linspace(X_LOW, X_HIGH, n_points)
    X = np.full((n_points, n_features), float(at))
    X[:, feature] = grid
    return grid, X


def target_slices(features=range(N_USED_FEATURES), n_points: int = 401, n_features: int = 10):
    """The noiseless target along each feature in raw units, every other feature held at 0."""
    features = list(features)
    n_cols = min(3, len(features))
    n_rows = -(-len(features) // n_cols)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=SLIDE_SIZE, sharey=True, squeeze=False
    )
    for ax, j in zip(axes.flat, features):
        grid, X = _slice_inputs(j, n_points, n_features)
        sns.lineplot(x=grid, y=target_function(X), ax=ax, color="tab:blue")
        ax.set_title(f"along x{j}")
        ax.set_xlabel(f"x{j}")
        ax.set_ylabel("f(x)")
    for ax in axes.flat[len(features):]:
        ax.set_visible(False)
    fig.suptitle("One feature at a time, the others held at 0")
    fig.tight_layout()
    return fig


def interaction_heatmap(which: str = "interaction", n_points: int = 201, n_features: int = 10,
                        ax=None):
    """A heat-map over (x0, x1): the term sin(x0·x1) alone, or the whole target (others 0)."""
    if which not in ("interaction", "target"):
        raise ValueError(f"which must be 'interaction' or 'target', got {which!r}")
    grid = np.linspace(X_LOW, X_HIGH, n_points)
    x0, x1 = np.meshgrid(grid, grid)
    if which == "interaction":
        z = np.sin(x0 * x1)
        title = "The interaction term sin(x0·x1)"
    else:
        X = np.zeros((x0.size, n_features))
        X[:, 0], X[:, 1] = x0.ravel(), x1.ravel()
        z = target_function(X).reshape(x0.shape)
        title = "The target over (x0, x1), other features at 0"
    fig, ax = figure_and_axes(ax, figsize=(7, 5.6))
    limit = float(np.abs(z).max())
    mesh = ax.pcolormesh(x0, x1, z, cmap="vlag", vmin=-limit, vmax=limit, shading="auto")
    ax.contour(x0, x1, z, levels=7, colors="black", linewidths=0.5, alpha=0.5)
    fig.colorbar(mesh, ax=ax, label="value")
    ax.set_xlabel("x0")
    ax.set_ylabel("x1")
    ax.set_aspect("equal")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def noisy_samples(noise: float = 0.1, data=None, ax=None):
    """Noisy training labels against the noiseless target; the gap is the noise."""
    data = data if data is not None else make_dataset(noise=noise)
    y_noisy = data.y_train.detach().cpu().numpy().ravel()
    y_true = data.y_true_train
    sigma = float(np.std(y_noisy - y_true))
    fig, ax = figure_and_axes(ax, figsize=(7, 5.6))
    sns.scatterplot(x=y_true, y=y_noisy, s=10, alpha=0.4, ax=ax, edgecolor=None)
    low, high = float(min(y_true.min(), y_noisy.min())), float(max(y_true.max(), y_noisy.max()))
    ax.plot([low, high], [low, high], color="black", linewidth=1, label="no noise")
    ax.set_xlabel("noiseless target f(x)")
    ax.set_ylabel("noisy label y")
    ax.set_title(f"Labels vs target: noise std {sigma:.3f}, so the best MSE is ≈ {sigma**2:.4f}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def noisy_slice(feature: int = 0, noise: float = 0.1, n_samples: int = 150, n_features: int = 10,
                seed: int = 0, ax=None):
    """One slice of the target with noisy samples drawn along it (others at 0)."""
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    grid, X = _slice_inputs(feature, 401, n_features)
    rng = np.random.default_rng(seed)
    x_samples = rng.uniform(X_LOW, X_HIGH, n_samples)
    X_samples = np.zeros((n_samples, n_features))
    X_samples[:, feature] = x_samples
    y_samples = target_function(X_samples) + rng.normal(0.0, noise, n_samples)
    fig, ax = figure_and_axes(ax, figsize=(7, 5.6))
    sns.scatterplot(x=x_samples, y=y_samples, s=14, alpha=0.6, ax=ax, color="tab:orange",
                    label=f"samples, noise std {noise:g}", edgecolor=None)
    sns.lineplot(x=grid, y=target_function(X), ax=ax, color="tab:blue", label="target f")
    used = "used by f" if feature < N_USED_FEATURES else "ignored by f"
    ax.set_title(f"Along x{feature} ({used}), other features at 0")
    ax.set_xlabel(f"x{feature}")
    ax.set_ylabel("y")
    fig.tight_layout()
    return fig


def data_explorer_figure(feature: int = 0, noise: float = 0.1):
    """The data explorer's view: a noisy slice beside noisy-vs-noiseless labels."""
    fig, (left, right) = plt.subplots(1, 2, figsize=WIDE_SIZE)
    noisy_slice(feature, noise, ax=left)
    noisy_samples(noise, ax=right)
    fig.tight_layout()
    return fig
