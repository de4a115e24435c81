"""The three-way search on its simplex: one hexagon per weight point, coloured by its score."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kdteach.lesson.plots.style import figure_and_axes

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
