"""What a trained network predicts on the test set: against the truth, and its residuals."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from kdteach.core.train import predict
from kdteach.lesson.plots.style import figure_and_axes
from kdteach.protocol.names import color
from kdteach.protocol.results import StageResult

# ---------------------------------------------------------------- predictions


def as_models(models) -> dict:
    """``{name: [net per run]}`` from a StageResult, a dict, or a list of them.

    A dict value may be one network instead of a list: it then stands for every run.
    """
    if isinstance(models, StageResult):
        return dict(models.models)
    if isinstance(models, (list, tuple)):
        merged = {}
        for item in models:
            merged.update(as_models(item))
        return merged
    if isinstance(models, dict):
        return dict(models)
    raise TypeError(f"expected a StageResult, a dict of models or a list of them, "
                    f"got {type(models).__name__}")


def net_of_run(nets, run: int):
    if not isinstance(nets, (list, tuple)):
        return nets
    if not 0 <= run < len(nets):
        raise ValueError(f"run must lie in 0..{len(nets) - 1}, got {run!r}")
    return nets[run]


def _test_predictions(net, data):
    pred = predict(net, data.X_test).detach().cpu().numpy().ravel()
    y = data.y_test.detach().cpu().numpy().ravel()
    return pred, y


def pred_vs_true(net, data, ax=None, label: str = "model", color=None):
    """One model's test predictions against the (noisy) test labels, with the diagonal."""
    pred, y = _test_predictions(net, data)
    mse = float(np.mean((pred - y) ** 2))
    fig, ax = figure_and_axes(ax, figsize=(7, 5.6))
    sns.scatterplot(x=y, y=pred, s=10, alpha=0.5, ax=ax, color=color, edgecolor=None)
    low, high = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    ax.plot([low, high], [low, high], color="black", linewidth=1)
    ax.set_title(f"{label}\ntest MSE {mse:.4f}", fontsize="medium")
    ax.set_xlabel("true y (test)")
    ax.set_ylabel("predicted y")
    return fig


RESIDUAL_X_LABEL = "prediction ŷ (test)"
RESIDUAL_Y_LABEL = "residual ŷ − y\n(prediction − true)"


def residuals(net, data, ax=None, label: str = "model", color=None):
    """One model's test residuals (prediction minus label) against its prediction.

    Against the prediction a good model's residuals scatter evenly around zero; against the
    label every imperfect model's cloud would tilt (regression to the mean), which says
    nothing about the model.
    """
    pred, y = _test_predictions(net, data)
    fig, ax = figure_and_axes(ax, figsize=(7, 5.6))
    sns.scatterplot(x=pred, y=pred - y, s=10, alpha=0.5, ax=ax, color=color, edgecolor=None)
    ax.axhline(0.0, color="black", linewidth=1)
    ax.set_title(f"{label}: residuals", fontsize="medium")
    ax.set_xlabel(RESIDUAL_X_LABEL)
    ax.set_ylabel(RESIDUAL_Y_LABEL)
    return fig


def prediction_panels(models, data, run: int = 0, names=None):
    """Predicted-vs-true (top row) and residuals against the prediction (bottom row), one
    column per model.

    ``models``: a StageResult, ``{name: [net per run]}`` or a list of them; ``names``
    picks and orders the columns; ``run`` chooses which run's networks are shown.
    """
    models = as_models(models)
    names = list(names) if names is not None else list(models)
    missing = [n for n in names if n not in models]
    if missing or not names:
        raise ValueError(f"no models named {missing}; have {', '.join(models)}")
    # each row shares its x axis: the labels above, the predictions below
    fig, axes = plt.subplots(2, len(names), figsize=(max(6.0, 3.2 * len(names)), 6.8),
                             sharex="row", sharey="row", squeeze=False)
    for col, name in enumerate(names):
        net = net_of_run(models[name], run)
        pred_vs_true(net, data, ax=axes[0, col], label=name, color=color(name))
        residuals(net, data, ax=axes[1, col], label=name, color=color(name))
        axes[1, col].set_title("")
    for ax in axes[:, 0]:  # few ticks: the panels are narrow on a slide
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    fig.suptitle(f"Test set, run {run + 1}\nperfect predictions lie on the diagonal (top) and "
                 "on zero (bottom)")
    fig.tight_layout()
    return fig
