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
from kdteach.protocol.names import EXPERT, color, palette
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


def residuals(net, data, ax=None, label: str = "model", color=None):
    """One model's test residuals (prediction minus label) against the label."""
    pred, y = _test_predictions(net, data)
    fig, ax = figure_and_axes(ax, figsize=(7, 5.6))
    sns.scatterplot(x=y, y=pred - y, s=10, alpha=0.5, ax=ax, color=color, edgecolor=None)
    ax.axhline(0.0, color="black", linewidth=1)
    ax.set_title(f"{label}: residuals", fontsize="medium")
    ax.set_xlabel("true y (test)")
    ax.set_ylabel("prediction − true")
    return fig


def prediction_panels(models, data, run: int = 0, names=None):
    """Predicted-vs-true (top row) and residuals (bottom row), one column per model.

    ``models``: a StageResult, ``{name: [net per run]}`` or a list of them; ``names``
    picks and orders the columns; ``run`` chooses which run's networks are shown.
    """
    models = as_models(models)
    names = list(names) if names is not None else list(models)
    missing = [n for n in names if n not in models]
    if missing or not names:
        raise ValueError(f"no models named {missing}; have {', '.join(models)}")
    fig, axes = plt.subplots(2, len(names), figsize=(max(6.0, 3.2 * len(names)), 6.4),
                             sharex=True, sharey="row", squeeze=False)
    for col, name in enumerate(names):
        net = net_of_run(models[name], run)
        pred_vs_true(net, data, ax=axes[0, col], label=name, color=color(name))
        residuals(net, data, ax=axes[1, col], label=name, color=color(name))
        axes[1, col].set_title("")
    fig.suptitle(f"Test set, run {run + 1}: points on the line are perfect predictions")
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


def paired_differences(tests, ax=None, title: str | None = None):
    """The one figure for paired comparisons: for each comparison, every run's difference
    in test MSE (a − b, a dot numbered by its run), the mean difference with its 95 %
    interval (a bar), and the zero line. Left of zero: a did better.

    ``tests``: a :class:`~kdteach.core.stats.PairedTest` or a list of them. A descriptive
    comparison shows its mean without an interval.
    """
    tests = [tests] if isinstance(tests, PairedTest) else list(tests)
    if not tests:
        raise ValueError("give at least one PairedTest")
    fig, ax = figure_and_axes(ax, figsize=(10, 1.2 + 1.1 * len(tests)))
    labels = []
    for row, test in enumerate(tests):
        diffs = np.asarray(test.diffs)
        ax.scatter(diffs, np.full(diffs.shape, row), color=color(test.a), edgecolor="black",
                   s=50, zorder=3)
        for run, d in enumerate(diffs, start=1):
            ax.annotate(str(run), (d, row), xytext=(0, 7), textcoords="offset points",
                        ha="center", fontsize="medium", color="0.3")
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
    ax.set_xlabel("difference in test MSE per run (left of the red line: the first model "
                  "did better)")
    ax.set_title(title or "Paired differences: runs (dots), mean (|) and 95 % interval (bar)",
                 fontsize="medium")
    fig.tight_layout()
    return fig


def validation_vs_test(selection: StageResult, ax=None):
    """Model selection: each grid point's mean validation MSE beside its mean test MSE,
    with the validation choice and the test-set choice marked."""
    table = selection.validation
    long = table.melt(id_vars="Weights", var_name="measured on", value_name="MSE")
    fig, ax = figure_and_axes(ax)
    sns.barplot(data=long, x="MSE", y="Weights", hue="measured on",
                palette=["#756bb1", "#bdbdbd"], orient="h", ax=ax)
    ticks = []
    for name in table["Weights"]:
        mark = []
        if name == selection.chosen:
            mark.append("chosen on validation")
        if name == selection.best:
            mark.append("best on test (optimistic)")
        ticks.append(name + (f"\n({'; '.join(mark)})" if mark else ""))
    ax.set_yticks(range(len(ticks)), ticks, fontsize="small")
    low = float(long["MSE"].min())
    ax.set_xlim(low * 0.8, float(long["MSE"].max()) * 1.05)
    ax.set_xlabel(f"mean MSE over {selection.settings.n_runs} runs (axis starts at "
                  f"{low * 0.8:.2f})")
    ax.set_ylabel("hard : L_HP weights")
    ax.set_title("Choosing the weights: validation MSE (fit part of the training set) "
                 "beside test MSE", fontsize="medium")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def gradient_shares(norms: pd.DataFrame, ax=None, title: str | None = None):
    """Each loss term's pull on the student's parameters: the norm of weight × ∂term/∂θ
    (from :func:`kdteach.core.diagnostics.term_gradient_norms`), on a log scale."""
    fig, ax = figure_and_axes(ax, figsize=(10, 3.6))
    labels = [TERM_LABELS.get(t, t) for t in norms["term"]]
    ax.barh(labels, norms["gradient norm"], color=[TERM_COLORS.get(t, "gray")
                                                    for t in norms["term"]])
    for y, (value, share) in enumerate(zip(norms["gradient norm"], norms["share of the pull"])):
        ax.text(value, y, f"  {value:.2e} ({share * 100:.2g} %)", va="center", fontsize="small")
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("norm of weight × gradient of the term (log scale)")
    ax.set_title(title or "How hard each term pulls on the student's parameters",
                 fontsize="medium")
    fig.tight_layout()
    return fig


def ternary_heatmap(table: pd.DataFrame, value: str = "Mean validation MSE", third: str = "jac",
                    chosen: str | None = None, ax=None):
    """A three-way weight search on its simplex: each point (hard, hp, ``third``) with
    weights summing to 1 is a hexagon coloured by ``value`` (lower is better); the chosen
    point is circled. ``table`` has columns ``hard``, ``hp``, ``third``, ``value`` and
    ``Weights`` (the point's name)."""
    for column in ("hard", "hp", third, value, "Weights"):
        if column not in table:
            raise ValueError(f"the table needs a column {column!r}; it has {list(table)}")
    x = table["hp"] + table[third] / 2
    y = table[third] * np.sqrt(3) / 2
    fig, ax = figure_and_axes(ax, figsize=(9, 7.5))
    values = table[value].to_numpy(dtype=float)
    top = float(np.quantile(values, 0.9))  # a few very poor points must not flatten the rest
    points = ax.scatter(x, y, c=np.minimum(values, top), cmap="viridis_r", marker="h", s=900,
                        edgecolor="white", linewidth=0.5, vmax=top)
    fig.colorbar(points, ax=ax, extend="max" if values.max() > top else "neither",
                 label=f"{value}, lower is better\n(darkest: {top:.3g} or more)")
    corners = {"hard": (0, 0), "hp": (1, 0), third: (0.5, np.sqrt(3) / 2)}
    for name, (cx, cy) in corners.items():
        ax.annotate(f"{name} = 1", (cx, cy), xytext=(0, -22 if cy == 0 else 14),
                    textcoords="offset points", ha="center", fontsize="medium")
    if chosen is not None:
        row = table[table["Weights"] == chosen].iloc[0]
        ax.scatter([row["hp"] + row[third] / 2], [row[third] * np.sqrt(3) / 2], s=1400,
                   facecolor="none", edgecolor="red", linewidth=2.5, label=f"chosen: {chosen}")
        ax.legend(loc="upper left", markerscale=0.4)
    ax.set_xlim(-0.12, 1.12)
    ax.set_ylim(-0.15, np.sqrt(3) / 2 + 0.12)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"Three-way weight search: {value} at each (hard, hp, {third})")
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
