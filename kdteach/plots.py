"""Seaborn figures for the stages. Each function returns the matplotlib Figure it drew."""

from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns

from .experiments import EXPERT, StageResult

SLIDE_SIZE = (10, 5.6)  # 16:9 at slide size


def use_style() -> None:
    """The package's plotting style: a clean grid, readable at slide size."""
    sns.set_theme(style="whitegrid", context="notebook", palette="viridis")


def grid_search_bars(grid: StageResult, ax=None):
    """Part 3: mean test MSE per weight pair, with ±1 std error bars (the seed's chart)."""
    table = grid.summary
    if ax is None:
        fig, ax = plt.subplots(figsize=SLIDE_SIZE)
    else:
        fig = ax.figure
    sns.barplot(
        data=table, x="Mean MSE", y="Weights", hue="Weights", palette="viridis",
        legend=False, ax=ax, orient="h",
    )
    ax.errorbar(
        x=table["Mean MSE"], y=range(len(table)), xerr=table["Std Dev MSE"],
        fmt="none", ecolor="black", capsize=5,
    )
    ax.set_title("Grid search over the distillation weights (lower MSE is better)")
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
        data=students, x="mse", y="model", hue="model", order=order, palette="viridis",
        legend=False, ax=ax,
    )
    sns.stripplot(data=students, x="mse", y="model", order=order, color="black", size=4, ax=ax)
    if EXPERT in final.results:
        expert_mean = sum(final.results[EXPERT]["mse"]) / len(final.results[EXPERT]["mse"])
        ax.axvline(expert_mean, color="tab:red", linestyle="--", label="expert teacher (mean)")
        ax.legend(loc="lower right")
    ax.set_title(f"Students compared over {final.settings.n_runs} paired runs")
    ax.set_xlabel("test MSE (lower is better)")
    ax.set_ylabel("")
    fig.tight_layout()
    return fig
