"""Paired comparisons: per-run differences with their run numbers placed so they never
overlap, validation against test, and each loss term's pull."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from kdteach.core.stats import PairedTest, format_p
from kdteach.lesson.plots.style import TERM_COLORS, TERM_LABELS, figure_and_axes
from kdteach.protocol.names import color
from kdteach.protocol.results import StageResult

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
