"""Seaborn figures for the notebooks and the command line. Each function returns its Figure.

Figures are sized for slides (16:9). Functions that draw a single panel take an ``ax``
so they can be combined; without one they open a new figure. Nothing here trains a
model: the figures read a :class:`~kdteach.core.data.Dataset`, trained networks, or a
stage's results and loss history.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from kdteach.core.stats import PairedTest, format_p
from kdteach.core.train import HELDOUT, VAL, History, predict
from kdteach.protocol.names import EXPERT, color, palette, run_label
from kdteach.protocol.results import StageResult

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


# ---------------------------------------------------------------- stage results


def mse_by_model(stage: StageResult, ax=None, include_teachers: bool = True):
    """Every model's test MSE per run: a box per model, a dot per run, grey lines join runs."""
    runs = stage.runs
    if not include_teachers:
        runs = runs[~runs["model"].str.contains("Teacher")]
    order = list(runs.groupby("model")["mse"].mean().sort_values().index)
    fig, ax = figure_and_axes(ax)
    sns.boxplot(data=runs, x="mse", y="model", hue="model", order=order, palette=palette(order),
                width=0.5, showfliers=False, boxprops={"alpha": 0.35}, legend=False, ax=ax)
    position = {name: i for i, name in enumerate(order)}
    for run, one_run in runs.groupby("run"):
        one_run = one_run.sort_values("model", key=lambda m: m.map(position))
        ys = one_run["model"].map(position)
        ax.plot(one_run["mse"], ys, color="0.6", linewidth=0.8, zorder=1)
        ax.scatter(one_run["mse"], ys, color=[color(m) for m in one_run["model"]],
                   edgecolor="black", s=45, zorder=2)
        first = one_run.iloc[0]
        ax.annotate(str(run), (first["mse"], position[first["model"]]), xytext=(0, 7),
                    textcoords="offset points", ha="center", fontsize="medium", color="0.3")
    ax.set_title(f"{stage.title}: test MSE of every run\n(dots joined by a line are one run, "
                 "numbered above the first model; lower is better)", fontsize="medium")
    ax.set_xlabel("test MSE")
    ax.set_ylabel("")
    fig.tight_layout()
    return fig


def mse_bars(scores: dict, highlight: str | None = None, ax=None):
    """Horizontal bars of test MSE for named models, each in its colour; ``highlight`` is
    drawn with a thick black edge."""
    names = list(scores)
    values = [float(scores[n]) for n in names]
    colors = [color(n) for n in names]
    fig, ax = figure_and_axes(ax, figsize=(7, 4))
    bars = ax.barh(names, values, color=colors)
    for name, bar in zip(names, bars):
        if name == highlight:
            bar.set_edgecolor("black")
            bar.set_linewidth(2.5)
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.4f}", va="center", fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel("test MSE (lower is better)")
    ax.set_title("Compared with the stage's students")
    ax.set_xlim(0, max(values) * 1.25 if values and max(values) > 0 else 1)
    fig.tight_layout()
    return fig


def grid_search_bars(grid: StageResult, ax=None):
    """Part 3: mean test MSE per weight pair, with ±1 std error bars (the original's chart)."""
    table = grid.summary
    if ax is None:
        fig, ax = plt.subplots(figsize=SLIDE_SIZE)
    else:
        fig = ax.figure
    sns.barplot(
        data=table, x="Mean MSE", y="Weights", hue="Weights", palette=palette(table["Weights"]),
        legend=False, ax=ax, orient="h",
    )
    ax.errorbar(
        x=table["Mean MSE"], y=range(len(table)), xerr=table["Std Dev MSE"],
        fmt="none", ecolor="black", capsize=5,
    )
    ax.set_title("Grid search over the distillation weights (lower MSE is better)\n"
                 "ranked by test MSE, as in the original notebook", fontsize="medium")
    ax.set_xlabel(f"test MSE, mean ± std over {grid.settings.n_runs} runs")
    ax.set_ylabel("hard : L_HP weights")
    ax.set_xlim(left=0)  # a bar's length is its value: the axis starts at zero
    fig.tight_layout()
    return fig


def final_boxplot(final: StageResult, ax=None):
    """Part 4: every student's per-run test MSE, with the expert teacher's mean as a line."""
    runs = final.runs
    students = runs[runs["model"] != EXPERT]
    if ax is None:
        fig, ax = plt.subplots(figsize=SLIDE_SIZE)
    else:
        fig = ax.figure
    order = students.groupby("model")["mse"].mean().sort_values().index
    sns.boxplot(
        data=students, x="mse", y="model", hue="model", order=order, palette=palette(order),
        legend=False, ax=ax,
    )
    sns.stripplot(data=students, x="mse", y="model", order=order, color="black", size=4, ax=ax)
    if EXPERT in final.results:
        expert_mean = sum(final.results[EXPERT]["mse"]) / len(final.results[EXPERT]["mse"])
        ax.axvline(expert_mean, color=color(EXPERT), linestyle="--", label=f"{EXPERT} (mean)")
        ax.legend(loc="lower right")
    ax.set_title(f"Students compared over {final.settings.n_runs} paired runs")
    ax.set_xlabel("test MSE (lower is better)")
    ax.set_ylabel("")
    fig.tight_layout()
    return fig


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


# ---------------------------------------------------------------- the lessons' figures


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
    if noise_var is not None:
        ax.axhline(noise_var, color="black", linestyle=":", linewidth=1.5,
                   label=f"noise floor σ² = {noise_var:g}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (log scale)")
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
    if noise_var is not None:
        ax.axhline(noise_var, color="black", linestyle=":", linewidth=1.5,
                   label=f"noise floor σ² = {noise_var:g}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation MSE (log scale)")
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


RUN_LABEL_RISE = 13.0  # points from a dot up to its run number
RUN_LABEL_GAP = 4.0  # points kept free between two run numbers of a row


def spread_centres(wanted, widths, gap: float, low: float = -np.inf,
                   high: float = np.inf) -> np.ndarray:
    """Centres for boxes of ``widths`` on a line, each as near its ``wanted`` centre as it
    can be (least squares) with at least ``gap`` between neighbours, kept within
    ``[low, high]`` where there is room. Same order and units as ``wanted``.

    Each run of boxes that would collide moves as one block, centred on what its members
    want (pool adjacent violators on the wanted centres less each box's minimal offset).
    """
    wanted = np.asarray(wanted, dtype=float)
    if wanted.size == 0:
        return wanted.copy()
    widths = np.broadcast_to(np.asarray(widths, dtype=float), wanted.shape)
    order = np.argsort(wanted, kind="stable")
    want, size = wanted[order], widths[order]
    steps = (size[:-1] + size[1:]) / 2 + gap  # the least distance between neighbours
    offsets = np.concatenate([[0.0], np.cumsum(steps)])
    blocks: list[list[float]] = []  # [sum of the members' starts, number of members]
    for start in want - offsets:
        blocks.append([start, 1])
        while len(blocks) > 1 and blocks[-1][0] / blocks[-1][1] < blocks[-2][0] / blocks[-2][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    centres = np.concatenate([np.full(int(n), total / n) for total, n in blocks]) + offsets
    centres = np.maximum(centres, low + size / 2)  # into the bounds, keeping the gaps
    for i in range(1, centres.size):
        centres[i] = max(centres[i], centres[i - 1] + steps[i - 1])
    centres = np.minimum(centres, high - size / 2)
    for i in range(centres.size - 2, -1, -1):
        centres[i] = min(centres[i], centres[i + 1] - steps[i])
    placed = np.empty_like(centres)
    placed[order] = centres
    return placed


def renderer_of(fig):
    """A renderer that measures ``fig``'s texts as they will be drawn."""
    canvas = fig.canvas
    return canvas.get_renderer() if hasattr(canvas, "get_renderer") else fig._get_renderer()


def place_run_labels(ax, rows) -> None:
    """Move each row's run numbers apart so that no two touch: ``rows`` holds, per row,
    the dots' x data and their labels (annotations ``RUN_LABEL_RISE`` points above the
    dots). A number moved off its dot gets a thin line down to it.

    Positions are offsets in points from the dots, measured on the figure as laid out now:
    a figure drawn larger later only moves the dots further apart.
    """
    fig = ax.figure
    renderer = renderer_of(fig)
    ax.get_xlim()  # settle the autoscaled limits before reading the transform
    left, right = ax.get_window_extent(renderer).intervalx
    points_per_pixel = 72.0 / fig.dpi
    for diffs, labels in rows:
        dots = ax.transData.transform(np.column_stack([diffs, np.zeros(len(diffs))]))[:, 0]
        widths = np.array([label.get_window_extent(renderer).width for label in labels])
        centres = spread_centres(dots, widths, RUN_LABEL_GAP / points_per_pixel, left, right)
        for label, dot, centre in zip(labels, dots, centres):
            shift = float(centre - dot) * points_per_pixel
            label.xyann = (shift, RUN_LABEL_RISE)
            if abs(shift) > 1.0:
                ax.annotate("", label.xy, xytext=(shift, RUN_LABEL_RISE),
                            textcoords="offset points",
                            arrowprops={"arrowstyle": "-", "color": "0.45", "linewidth": 0.8,
                                        "shrinkA": 0, "shrinkB": 4})


def paired_differences(tests, ax=None, title: str | None = None):
    """The one figure for paired comparisons: for each comparison, every run's difference
    in test MSE (a − b, a dot numbered by its run), the mean difference with its 95 %
    interval (a bar), and the zero line. Left of zero: a did better.

    ``tests``: a :class:`~kdteach.core.stats.PairedTest` or a list of them. A descriptive
    comparison shows its mean without an interval. Run numbers of nearly equal differences
    are spread apart, each joined to its dot by a thin line.
    """
    tests = [tests] if isinstance(tests, PairedTest) else list(tests)
    if not tests:
        raise ValueError("give at least one PairedTest")
    fig, ax = figure_and_axes(ax, figsize=(10, 1.2 + 1.1 * len(tests)))
    labels, run_labels = [], []
    for row, test in enumerate(tests):
        diffs = np.asarray(test.diffs, dtype=float)
        ax.scatter(diffs, np.full(diffs.shape, row), color=color(test.a), edgecolor="black",
                   s=50, zorder=3)
        numbers = [ax.annotate(str(run), (d, row), xytext=(0, RUN_LABEL_RISE),
                               textcoords="offset points", ha="center", va="bottom",
                               fontsize="medium", color="0.25")
                   for run, d in enumerate(diffs, start=1)]
        run_labels.append((diffs, numbers))
        if test.ci95 is not None:
            ax.plot(test.ci95, [row, row], color="black", linewidth=3, alpha=0.6, zorder=2)
            p = format_p(test.p)
        else:
            p = "descriptive"
        ax.plot([test.mean_diff], [row], marker="|", markersize=22, color="black", zorder=4)
        lines = [*textwrap.wrap(test.a, 34), *textwrap.wrap(f"− {test.b} ({p})", 34)]
        labels.append("\n".join(lines))
    ax.axvline(0.0, color="tab:red", linewidth=1.2)
    ax.set_yticks(range(len(tests)), labels, fontsize="small")
    ax.set_ylim(len(tests) - 0.5, -0.5)
    ax.set_xlabel("difference in test MSE per run\n(left of the red line: the first model "
                  "did better)")
    ax.set_title(title or "Paired differences: runs (dots), mean (|) and 95 % interval (bar)",
                 fontsize="medium")
    fig.tight_layout()  # lay out first: the run numbers are spaced on the final axes
    place_run_labels(ax, run_labels)
    fig.tight_layout()
    return fig


MEASURED_ON_STYLE = {  # validation_vs_test: a marker and a colour per column measured
    "Mean validation MSE": ("o", "#756bb1"),
    "Mean test MSE": ("D", "#525252"),
}
OTHER_MEASURE_STYLES = (("s", "#b35806"), ("^", "#1b7837"), ("v", "#2166ac"))


def validation_vs_test(selection: StageResult, ax=None):
    """Model selection: each grid point's mean validation MSE beside its mean test MSE,
    with the validation choice and the test-set choice marked.

    A dot per measure, side by side within the point's row, not bars: the MSEs of a point
    lie close together, and a dot's position can be read on an axis that does not start
    at zero.
    """
    table = selection.validation
    measured = [c for c in table.columns if c != "Weights"]
    fig, ax = figure_and_axes(ax)
    rows = np.arange(len(table))
    dodge = 0.5 / max(len(measured), 1)  # the measures of a row, one above the other
    others = iter(OTHER_MEASURE_STYLES * len(measured))
    for i, column in enumerate(measured):
        marker, colour = MEASURED_ON_STYLE.get(column) or next(others)
        ax.scatter(table[column], rows + (i - (len(measured) - 1) / 2) * dodge, marker=marker,
                   s=90, color=colour, edgecolor="black", linewidth=0.8, zorder=3,
                   label=column)
    ticks = []
    for name in table["Weights"]:
        mark = []
        if name == selection.chosen:
            mark.append("chosen on validation")
        if name == selection.best:
            mark.append("best on test (optimistic)")
        ticks.append(name + (f"\n({'; '.join(mark)})" if mark else ""))
    ax.set_yticks(rows, ticks, fontsize="small")
    ax.set_ylim(len(table) - 0.5, -0.5)
    ax.set_xlabel(f"mean MSE over {selection.settings.n_runs} runs")
    ax.set_ylabel("hard : L_HP weights")
    ax.set_title("Choosing the weights: validation MSE (fit part of the training set) "
                 "beside test MSE", fontsize="medium")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def log_limits_with_room(values, room_right: float = 0.4) -> tuple[float, float]:
    """Limits of a log axis around the positive ``values``: a little room on the left and
    ``room_right`` of the span (in decades) on the right, for a text beside the largest."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return 0.1, 10.0
    low, high = np.log10(values.min()), np.log10(values.max())
    span = max(high - low, 1.0)
    return 10 ** (low - 0.1 * span), 10 ** (high + room_right * span)


def gradient_shares(norms: pd.DataFrame, ax=None, title: str | None = None):
    """Each loss term's pull on the student's parameters: the norm of weight × ∂term/∂θ
    (from :func:`kdteach.core.diagnostics.term_gradient_norms`), on a log scale.

    A dot per term, not a bar: on a log axis a bar's length depends on where it starts,
    and means nothing; a dot's position is its value.
    """
    fig, ax = figure_and_axes(ax, figsize=(10, 3.6))
    labels = [TERM_LABELS.get(t, t) for t in norms["term"]]
    values = norms["gradient norm"].to_numpy(dtype=float)
    rows = np.arange(len(labels))
    for row in rows:  # a faint guide along each row, from edge to edge
        ax.axhline(row, color="0.85", linewidth=1, zorder=1)
    ax.scatter(values, rows, s=110, color=[TERM_COLORS.get(t, "gray") for t in norms["term"]],
               edgecolor="black", linewidth=0.8, zorder=3)
    for row, (value, share) in enumerate(zip(values, norms["share of the pull"])):
        ax.annotate(f"{value:.2e} ({share * 100:.2g} %)", (value, row), xytext=(9, 0),
                    textcoords="offset points", va="center", fontsize="small")
    ax.set_xscale("log")
    ax.set_xlim(*log_limits_with_room(values))
    ax.set_yticks(rows, labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.grid(False, axis="y")
    ax.set_xlabel("norm of weight × gradient of the term (log scale)")
    ax.set_title(title or "How hard each term pulls on the student's parameters",
                 fontsize="medium")
    fig.tight_layout()
    return fig


TERNARY_TICKS = (0.2, 0.4, 0.6, 0.8)  # on each side; the corners carry "name = 1"
HEXAGON_SIZE = 900  # marker area in points²: a hexagon about 30 points across
TICK_FROM, TICK_TO, TICK_TEXT = 15.0, 21.0, 24.0  # points out from a side's point


def ternary_xy(hp, third):
    """Where weights (1 − hp − third, hp, third) lie on the triangle: hard at (0, 0), hp at
    (1, 0), the third term at the top (1/2, √3/2)."""
    return hp + third / 2, third * np.sqrt(3) / 2


def ternary_sides(third: str) -> list[tuple]:
    """Each side's weight, the (hp, third) of its point where that weight is ``v``, and the
    outward direction along which that weight stays constant (where its ticks point)::

        (name, point(v) -> (hp, third), (dx, dy), ha, va)

    hp is read along the bottom, ``third`` along the right side and hard along the left;
    each side's numbers rise towards the corner of their weight.
    """
    root3 = np.sqrt(3) / 2
    return [
        ("hp", lambda v: (v, 0.0), (-0.5, -root3), "center", "top"),
        (third, lambda v: (1.0 - v, v), (1.0, 0.0), "left", "center"),
        ("hard", lambda v: (0.0, 1.0 - v), (-0.5, root3), "right", "bottom"),
    ]


def draw_ternary_ticks(ax, third: str) -> None:
    """Ticks and numbers for the three weights on the sides of ``ax``'s triangle, each
    tick along the line on which its weight stays constant, and "name = 1" at each
    corner, as the last number of its side."""
    for name, point, (dx, dy), ha, va in ternary_sides(third):
        for v in (*TERNARY_TICKS, 1.0):
            xy = ternary_xy(*point(v))
            if v < 1.0:
                ax.annotate("", xy, xytext=(dx * TICK_TO, dy * TICK_TO),
                            textcoords="offset points",
                            arrowprops={"arrowstyle": "-", "color": "0.3", "linewidth": 1.2,
                                        "shrinkA": 0, "shrinkB": TICK_FROM})
            text = f"{v:g}" if v < 1.0 else f"{name} = 1"
            ax.annotate(text, xy, xytext=(dx * TICK_TEXT, dy * TICK_TEXT),
                        textcoords="offset points", ha=ha, va=va, fontsize="medium",
                        fontweight="bold" if v == 1.0 else "normal")


def ternary_heatmap(table: pd.DataFrame, value: str = "Mean validation MSE", third: str = "jac",
                    chosen: str | None = None, ax=None):
    """A three-way weight search on its simplex: each point (hard, hp, ``third``) with
    weights summing to 1 is a hexagon coloured by ``value`` (lower is better); the chosen
    point is circled. ``table`` has columns ``hard``, ``hp``, ``third``, ``value`` and
    ``Weights`` (the point's name).

    Each side carries one weight's ticks (0.2 to 0.8), rising towards that weight's
    corner: hp along the bottom, ``third`` on the right, hard on the left. A tick points
    along the line on which its weight stays the same.
    """
    for column in ("hard", "hp", third, value, "Weights"):
        if column not in table:
            raise ValueError(f"the table needs a column {column!r}; it has {list(table)}")
    x, y = ternary_xy(table["hp"], table[third])
    fig, ax = figure_and_axes(ax, figsize=(9, 7.5))
    values = table[value].to_numpy(dtype=float)
    top = float(np.quantile(values, 0.9))  # a few very poor points must not flatten the rest
    points = ax.scatter(x, y, c=np.minimum(values, top), cmap="viridis_r", marker="h",
                        s=HEXAGON_SIZE, edgecolor="white", linewidth=0.5, vmax=top)
    fig.colorbar(points, ax=ax, extend="max" if values.max() > top else "neither",
                 label=f"{value}, lower is better\n(darkest: {top:.3g} or more)")
    draw_ternary_ticks(ax, third)
    if chosen is not None:
        row = table[table["Weights"] == chosen].iloc[0]
        ax.scatter(*ternary_xy(row["hp"], row[third]), s=1400, facecolor="none",
                   edgecolor="red", linewidth=2.5, label=f"chosen: {chosen}")
        # below the triangle, where no number of a side can be
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), markerscale=0.4,
                  frameon=False)
    ax.set_xlim(-0.12, 1.12)
    ax.set_ylim(-0.15, np.sqrt(3) / 2 + 0.12)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"Three-way weight search: {value} at each (hard, hp, {third})\n"
                 "each side's numbers: the weight of the corner they rise towards",
                 fontsize="medium")
    fig.tight_layout()
    return fig


def cost_vs_error(costs: pd.DataFrame, mse: dict, cost: str = "latency batch 1 (µs)", ax=None):
    """What each model buys: its test MSE (mean as a large marker, every run as a dot, the
    bar from the lowest to the highest run) against one of its costs on a log axis.

    ``costs`` is :func:`kdteach.core.costs.model_costs`' table, ``mse`` is
    ``{name: [test MSE per run]}``; ``cost`` names the column to put on the x axis.
    """
    from kdteach.core.costs import LABEL

    if cost not in costs.columns or cost == LABEL:
        columns = [c for c in costs.columns if c != LABEL]
        raise ValueError(f"cost must be one of the table's columns {columns}, got {cost!r}")
    by_name = costs.set_index(LABEL)[cost]
    missing = [name for name in mse if name not in by_name.index]
    if missing:
        raise ValueError(f"no costs for {missing}: the costs table has {list(by_name.index)}")
    fig, ax = figure_and_axes(ax)
    for name, runs in mse.items():
        runs = np.asarray(runs, dtype=float)
        if runs.size == 0:
            raise ValueError(f"{name}: no test MSE values")
        x, mean, c = float(by_name[name]), float(runs.mean()), color(name)
        ax.scatter(np.full(runs.size, x), runs, color=c, alpha=0.4, s=16, zorder=2)
        ax.errorbar([x], [mean], yerr=[[mean - runs.min()], [runs.max() - mean]], fmt="o",
                    markersize=9, capsize=4, color=c, label=name, zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel(f"{cost} (log scale)")
    ax.set_ylabel("test MSE (marker: mean; dots: runs)")
    ax.set_title("What each model costs and what it gets right", fontsize="medium")
    ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    return fig
