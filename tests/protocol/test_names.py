"""Tests for kdteach.protocol.names: one name and one colour per model, runs numbered from 1."""

import matplotlib.colors as mcolors

from kdteach.protocol import names as naming
from kdteach.protocol.names import (
    COLORS,
    DISTILLED_EXPERT,
    EXPERT,
    FRESH,
    HP_ONLY,
    TEACHER,
    color,
    grid_name,
    is_grid_name,
    palette,
    run_label,
)


def test_the_originals_model_names_are_kept():
    assert (naming.TEACHER, naming.EXPERT, naming.SCRATCH, naming.DISTILLED,
            naming.DISTILLED_EXPERT, naming.LGR) == (
        "Teacher", "Expert Teacher", "Student (Scratch)", "Student (Distilled)",
        "Student (Distilled from Expert)", "Student (Distilled with L_GR)")
    assert grid_name({"hard": 0.1, "hp": 0.9}) == "H=0.1_HP=0.9"


def test_every_named_model_has_its_own_colour():
    names = [v for k, v in vars(naming).items() if k.isupper() and isinstance(v, str)]
    names += list(HP_ONLY.values()) + list(FRESH.values())
    names += list(naming.FIT.values()) + list(naming.STOPPED.values())
    assert set(names) <= set(COLORS)
    rgb = [mcolors.to_hex(color(n)) for n in set(names)]
    assert len(set(rgb)) == len(rgb), "two models share a colour"


def test_grid_points_get_a_ramp_distinct_from_the_named_models():
    grid = [grid_name({"hard": h, "hp": round(1 - h, 10)}) for h in (0.1, 0.3, 0.5, 0.7, 0.9)]
    assert all(is_grid_name(n) for n in grid) and not is_grid_name(TEACHER)
    ramp = [mcolors.to_hex(color(n)) for n in grid]
    assert len(set(ramp)) == 5
    assert not set(ramp) & {mcolors.to_hex(c) for c in COLORS.values()}
    assert palette([EXPERT, grid[0]]) == {EXPERT: COLORS[EXPERT], grid[0]: color(grid[0])}


def test_runs_are_numbered_from_one_for_people():
    assert run_label(0) == "run 1" and run_label(4) == "run 5"


def test_an_unknown_name_still_gets_a_colour():
    assert mcolors.is_color_like(color("my own student"))
    assert color(DISTILLED_EXPERT) != color("my own student")
