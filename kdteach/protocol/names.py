"""One name and one colour per model, and one way to number runs, for every table and figure.

The names are the original notebook's own (they are the keys of ``results.json``); the
models kdteach adds for the lessons get names in the same style. Runs are numbered from 1
wherever a person reads them (tables, figures, widgets); code indexes them from 0.
"""

from __future__ import annotations

# the original notebook's models
TEACHER = "Teacher"
EXPERT = "Expert Teacher"
SCRATCH = "Student (Scratch)"
DISTILLED = "Student (Distilled)"
DISTILLED_EXPERT = "Student (Distilled from Expert)"
LGR = "Student (Distilled with L_GR)"

# models the lessons add
REGULARISED = "Teacher (expert's dropout and weight decay)"
DISTILLED_REGULARISED = "Student (Distilled from regularised Teacher)"
HP_ONLY = {"teacher": "Student (Teacher outputs only)",
           "expert": "Student (Expert outputs only)"}
FRESH = {"teacher": "Student (Teacher outputs, fresh inputs)",
         "expert": "Student (Expert outputs, fresh inputs)"}
YOURS = "Your student"

# the baseline given the same chance as the method: each run's epochs chosen on the
# validation part (teachers trained on the fit part only), then trained on the whole
# training set for that many epochs
TUNED = {"scratch": "Student (Scratch, epochs chosen on validation)",
         "distilled": "Student (Distilled, epochs chosen on validation)",
         "distilled_expert": "Student (Distilled from Expert, epochs chosen on validation)"}
# teachers trained on the fit part of the training set only, for choices made on its
# validation part
TEACHER_FIT = "Teacher (fit part only)"
EXPERT_FIT = "Expert Teacher (fit part only)"

# models of the going-further lesson
JAC = "Student (Distilled with L_JAC)"
FEAT = "Student (Distilled with L_FEAT)"
THREE_WAY = "Student (3-way weights, chosen on validation)"
THREE_WAY_HALVING = "Student (3-way weights, chosen by successive halving)"
FIT = {"scratch": "Student (Scratch, fit part)",
       "distilled": "Student (Distilled from Expert, fit part)"}
STOPPED = {"scratch": "Student (Scratch, fit part, early stopped)",
           "distilled": "Student (Distilled from Expert, fit part, early stopped)"}

# Chosen so that the models a figure draws together stay apart (CIEDE2000 >= 5) for normal
# vision and, simulated, for protanopia, deuteranopia and tritanopia, and every pair apart
# for normal vision: tests/lesson/test_colour_vision.py checks it.
COLORS = {
    TEACHER: "#1f77b4",  # blue
    EXPERT: "#de2531",  # red
    SCRATCH: "#707070",  # grey
    DISTILLED: "#6099c3",  # lighter blue: from the teacher
    DISTILLED_EXPERT: "#fc4b63",  # rose: from the expert
    LGR: "#168315",  # green
    REGULARISED: "#445e7e",  # slate: the teacher with the expert's regularisation
    DISTILLED_REGULARISED: "#c5b0d5",  # light purple
    HP_ONLY["teacher"]: "#9ecae1",
    FRESH["teacher"]: "#08519c",
    HP_ONLY["expert"]: "#fdae6b",
    FRESH["expert"]: "#a63603",
    YOURS: "#c26a8f",  # dusty pink
    JAC: "#002f54",  # navy
    FEAT: "#8c564b",  # brown
    THREE_WAY: "#d42757",  # crimson
    THREE_WAY_HALVING: "#604905",  # dark olive-brown
    TUNED["scratch"]: "#000000",  # black: scratch given the method's chance
    TUNED["distilled"]: "#3f00ff",  # violet-blue
    TUNED["distilled_expert"]: "#7f0000",  # maroon
    TEACHER_FIT: "#0f2323",
    EXPERT_FIT: "#5a1a1a",
    FIT["scratch"]: "#303030",
    STOPPED["scratch"]: "#525252",
    FIT["distilled"]: "#c36df7",
    STOPPED["distilled"]: "#d94801",
}


def grid_name(weights: dict) -> str:
    """The original's label of a grid point, e.g. ``H=0.1_HP=0.9``."""
    return f"H={weights['hard']:g}_HP={weights['hp']:g}"


def is_grid_name(name: str) -> bool:
    return name.startswith("H=") and "_HP=" in name


def color(name: str) -> str:
    """The model's colour; grid points share a yellow-to-purple ramp by their hard weight."""
    if name in COLORS:
        return COLORS[name]
    if is_grid_name(name):
        import seaborn as sns  # here, not at the top: only figures need a plotting library

        hard = float(name.split("_")[0][2:])
        return sns.color_palette("viridis_r", as_cmap=True)(0.15 + 0.7 * hard)
    return "#bcbd22"  # olive: anything else (a model named by the user)


def palette(names) -> dict:
    """``{name: colour}`` for seaborn's ``palette=``."""
    return {name: color(name) for name in names}


def run_label(run: int) -> str:
    """The label of 0-based run index ``run``: ``run 1`` for 0."""
    return f"run {run + 1}"
