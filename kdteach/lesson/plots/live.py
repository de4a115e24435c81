"""The live retrain panels: one retrained student, and a training in progress."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from kdteach.lesson.plots.curves import loss_curves
from kdteach.lesson.plots.predictions import pred_vs_true, residuals
from kdteach.lesson.plots.results import mse_bars
from kdteach.lesson.plots.style import TERM_COLORS
from kdteach.protocol.names import color

# ---------------------------------------------------------------- one retrained student


def retrained_student(net, data, scores: dict, label: str, history=None):
    """A retrained student at a glance: predictions, then its loss curves (when a history
    is given) or its residuals, then its MSE beside the stage's reference students."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    pred_vs_true(net, data, ax=axes[0], label=label, color=color(label))
    if history is not None:
        loss_curves(history, ax=axes[1])
        axes[1].set_title("Loss terms per epoch (log scale)", fontsize="medium")
    else:
        residuals(net, data, ax=axes[1], label=label, color=color(label))
    mse_bars(scores, highlight=label, ax=axes[2])
    fig.tight_layout()
    return fig


def live_training(total: list, heldout: list, num_epochs: int):
    """A training in progress: its total loss and test MSE per epoch so far, on an x-axis
    that already spans all ``num_epochs`` (log scale). Small and plain, so it can be
    redrawn every few epochs."""
    fig, ax = plt.subplots(figsize=(6, 3))
    epochs = np.arange(1, len(total) + 1)
    ax.plot(epochs, total, color=TERM_COLORS.get("total", "black"), label="training loss (total)")
    if heldout:
        ax.plot(epochs, heldout, color="gray", linestyle="--", label="test MSE")
    ax.set_xlim(0, max(num_epochs, 1))
    values = [v for v in (*total, *heldout) if np.isfinite(v) and v > 0]
    if values:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_title(f"Training now: epoch {len(total)} of {num_epochs}", fontsize="medium")
    ax.legend(fontsize="small", loc="upper right")
    fig.tight_layout()
    return fig
