"""A stage's results at a glance: test MSE per model, the grid, the final comparison, costs."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from kdteach.lesson.plots.style import SLIDE_SIZE, figure_and_axes
from kdteach.protocol.names import EXPERT, color, palette
from kdteach.protocol.results import StageResult

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
