"""The figures' shared style: slide sizes, the loss terms' labels and colours."""

from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns

SLIDE_SIZE = (10, 5.6)  # 16:9 at slide size
WIDE_SIZE = (12, 5.6)

TERM_LABELS = {
    "hard": "hard: MSE(y_s, y)",
    "hp": "L_HP: MSE(y_s, y_t)",
    "gr": "L_GR: MSE(∇x L_s, ∇x L_t)",
    "jac": "L_JAC: MSE(∂y_s/∂x, ∂y_t/∂x)",
    "feat": "L_FEAT: MSE(adapter(h_s), h_t)",
    "total": "total (weighted sum)",
}
TERM_COLORS = {"hard": "tab:blue", "hp": "tab:orange", "gr": "tab:green", "jac": "tab:cyan",
               "feat": "tab:brown", "total": "black"}


def use_style() -> None:
    """The package's plotting style: a clean grid, readable at slide size."""
    sns.set_theme(style="whitegrid", context="notebook", palette="viridis")


def figure_and_axes(ax, figsize=SLIDE_SIZE):
    """``ax``'s figure and ``ax``; a new figure of ``figsize`` and its axes without one."""
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax
