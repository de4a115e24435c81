"""Curves over the epochs: loss terms, learning curves, early stopping and its patience."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from kdteach.core.train import HELDOUT, VAL, History
from kdteach.lesson.plots.style import TERM_COLORS, TERM_LABELS, figure_and_axes
from kdteach.protocol.names import color, run_label
from kdteach.protocol.results import StageResult

# ---------------------------------------------------------------- training curves


def _as_history_frame(history) -> pd.DataFrame:
    if isinstance(history, StageResult):
        history = history.history
    if isinstance(history, History):
        history = history.to_frame()
    if not isinstance(history, pd.DataFrame):
        raise TypeError(f"expected a StageResult, a History or a DataFrame, "
                        f"got {type(history).__name__}")
    return history


def loss_curves(history, model: str | None = None, run: int | None = None,
                weights: dict | None = None, total: bool = False, ax=None):
    """Each loss term per epoch on a log scale, one line per term.

    ``history``: a StageResult, a :class:`~kdteach.core.train.History` or its frame. With
    several runs the line is their mean and the band their range. ``weights`` (e.g.
    ``{"hard": 0.2, "hp": 0.5, "gr": 0.3}``) plots each term times its weight: its share
    of the total the optimiser sees.
    """
    frame = _as_history_frame(history)
    own_figure = ax is None
    fig, ax = figure_and_axes(ax)
    if "model" in frame and frame["model"].nunique() > 1:
        if model is None:
            raise ValueError(f"the history holds several models; pick one with model=: "
                             f"{', '.join(frame['model'].unique())}")
        frame = frame[frame["model"] == model]
    if run is not None and "run" in frame:
        frame = frame[frame["run"] == run + 1]  # ``run`` is an index; the history's runs read 1..n
    frame = frame[~frame["term"].isin([HELDOUT, VAL])]
    if not total:
        frame = frame[frame["term"] != "total"]
    if weights is not None:
        scale = frame["term"].map(lambda t: weights.get(t, 1.0) if t != "total" else 1.0)
        frame = frame.assign(loss=frame["loss"] * scale)
    loss = pd.to_numeric(frame["loss"], errors="coerce").astype(float)
    frame = frame.assign(loss=loss)[np.isfinite(loss) & (loss > 0)]
    palette = {TERM_LABELS.get(t, t): TERM_COLORS.get(t, "gray") for t in frame["term"].unique()}
    frame = frame.assign(term=frame["term"].map(lambda t: TERM_LABELS.get(t, t)))
    if frame.empty:
        ax.text(0.5, 0.5, "no epochs trained: nothing to plot", ha="center", va="center",
                transform=ax.transAxes)
    else:
        several_runs = "run" in frame and frame["run"].nunique() > 1
        sns.lineplot(data=frame, x="epoch", y="loss", hue="term", palette=palette,
                     errorbar=("pi", 100) if several_runs else None, ax=ax)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    what = "weighted loss terms (weight × term)" if weights is not None else "loss terms"
    ax.set_title(f"Training {what} per epoch (log scale)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean loss over the epoch's batches")
    if own_figure:  # a caller that passes its axes lays out its own figure, once
        fig.tight_layout()
    return fig



# ---------------------------------------------------------------- the lessons' figures


def _mse_per_epoch_axes(ax, noise_var: float | None, ylabel: str) -> None:
    """Epochs against MSE on a log scale, with the noise floor σ² as a dotted line."""
    if noise_var is not None:
        ax.axhline(noise_var, color="black", linestyle=":", linewidth=1.5,
                   label=f"noise floor σ² = {noise_var:g}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)


def learning_curves(history, models, noise_var: float | None = None, train_term: str = "hard",
                    ax=None, title: str | None = None):
    """Training loss against test MSE per epoch, one colour per model (log scale).

    Solid: the test MSE after each epoch; dashed: the training ``train_term`` (the MSE on
    the training labels for ``"hard"``). Lines are the mean over runs, bands the range.
    ``noise_var`` draws the noise floor σ²: no model can reach a lower test MSE on
    average, and a training MSE below it means the model fits the noise.
    """
    frame = _as_history_frame(history)
    frame = frame[frame["model"].isin(list(models))]
    fig, ax = figure_and_axes(ax)
    for name in models:
        own = frame[frame["model"] == name]
        for term, style, what in ((HELDOUT, "-", "test"), (train_term, "--", "training")):
            part = own[own["term"] == term]
            if part.empty:
                continue
            stats = part.groupby("epoch")["loss"].agg(["mean", "min", "max"])
            ax.plot(stats.index, stats["mean"], style, color=color(name), linewidth=2,
                    label=f"{name}, {what}")
            ax.fill_between(stats.index, stats["min"], stats["max"], color=color(name),
                            alpha=0.15, linewidth=0)
    _mse_per_epoch_axes(ax, noise_var, "MSE (log scale)")
    ax.set_title(title or "Training MSE (dashed) and test MSE (solid) per epoch")
    ax.legend(fontsize="small", loc="upper right")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def early_stopping_curves(stage: StageResult, noise_var: float | None = None, ax=None,
                          title: str | None = None):
    """The validation MSE per epoch of each early-stopped student, one line per run, with
    each run's best epoch (the one whose weights were kept) marked by a dot (log scale).

    ``stage``: the result of a stage trained with early stopping (``early_stopping``): its
    history holds the validation MSE (term ``"val"``) and its ``best_epochs`` each model's
    best epoch per run. A line ends where its run stopped, ``patience`` epochs after its
    best. ``noise_var`` draws the noise floor σ², below which no model's validation MSE
    can stay on average.
    """
    if not stage.best_epochs:
        raise ValueError(f"{stage.stage} has no best epochs: it was not trained with early "
                         "stopping (stopping= on a validation set)")
    frame = _as_history_frame(stage)
    frame = frame[frame["term"] == VAL]
    fig, ax = figure_and_axes(ax)
    for name, best_epochs in stage.best_epochs.items():
        own = frame[frame["model"] == name]
        if own.empty:
            raise ValueError(f"{name}: the history holds no validation MSE (term {VAL!r})")
        best_mse = []
        for run, best in enumerate(best_epochs, start=1):
            curve = own[own["run"] == run].sort_values("epoch")
            ax.plot(curve["epoch"], curve["loss"], color=color(name), linewidth=1.6,
                    label=name if run == 1 else "_nolegend_")
            best_mse.append(float(curve.loc[curve["epoch"] == best, "loss"].iloc[0]))
        ax.scatter(best_epochs, best_mse, color=color(name), edgecolor="black", linewidth=1,
                   s=70, zorder=3, label="_nolegend_")
    _mse_per_epoch_axes(ax, noise_var, "validation MSE (log scale)")
    ax.set_title(title or "Early stopping on the validation split: one line per run,\n"
                 "a dot at each run's best epoch, whose weights are kept", fontsize="medium")
    ax.legend(fontsize="small", loc="best")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def patience_curves(stage: StageResult, table: pd.DataFrame, run: int = 0, ax=None):
    """One run's validation MSE per epoch for each early-stopped student of ``stage``
    (``early_stopping``), with the epoch a patience keeps (a dot) and the epoch it stops at
    (a dashed line), from ``table`` (:func:`kdteach.protocol.analysis.stopping_at_patience`);
    ``run`` is 0-based. Lesson 05's patience slider draws it."""
    frame = _as_history_frame(stage)
    frame = frame[(frame["term"] == VAL) & (frame["run"] == run + 1)]
    fig, ax = figure_and_axes(ax)
    for name in stage.best_epochs:
        curve = frame[frame["model"] == name].sort_values("epoch")
        row = table[(table["model"] == name) & (table["run"] == run + 1)].iloc[0]
        ax.plot(curve["epoch"], curve["loss"], color=color(name), linewidth=1.6, label=name)
        ax.scatter([row["best epoch"]], [row["validation MSE"]], color=color(name),
                   edgecolor="black", linewidth=1, s=70, zorder=3, label="_nolegend_")
        ax.axvline(row["stopped at"], color=color(name), linestyle="--", linewidth=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation MSE (log scale)")
    ax.set_title(f"{run_label(run)}: a dot at the epoch kept, a dashed line where it stops",
                 fontsize="medium")
    ax.legend(fontsize="small", loc="upper right")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig
