"""Every lesson figure at talk size: 16:9, with fonts readable from the back of a room.

:data:`FIGURES` is the registry: one :class:`TalkFigure` per figure the lessons show,
each a file name, a title and a function that draws it from an
:class:`~kdteach.protocol.experiment.Experiment` with :mod:`kdteach.lesson.plots`. The
experiment loads
its stages from the cache and trains what is missing (with progress bars), so
``python -m kdteach figures --out DIR`` needs no notebook. To add a figure, append an
entry to :data:`FIGURES`; the tests draw every entry and check its size and fonts.

Each figure is drawn under seaborn's ``talk`` context (text 1.5 times the notebook
size) and written at :data:`TALK_SIZE` inches, as PNG (:data:`DPI`) and SVG.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from kdteach.core.diagnostics import term_gradient_norms
from kdteach.core.stats import paired_test
from kdteach.lesson import plots, task
from kdteach.protocol.analysis import cost_comparison
from kdteach.protocol.experiment import Experiment
from kdteach.protocol.files import write_atomic
from kdteach.protocol.names import (
    DISTILLED,
    DISTILLED_EXPERT,
    EXPERT,
    FRESH,
    JAC,
    LGR,
    SCRATCH,
    TEACHER,
    color,
)
from kdteach.protocol.results import merge

TALK_SIZE = (40 / 3, 7.5)  # inches, 16:9: a PowerPoint or Keynote wide slide
DPI = 150  # 2000 x 1125 pixels
MIN_FONT_PT = 14.0  # no text smaller than this on a figure as wide as the slide
FORMATS = ("png", "svg")


@dataclass(frozen=True)
class TalkFigure:
    """``check``: the stage of an optional check the figure draws (lesson 05's full grid);
    :func:`write_figures` then draws it only when that stage is in the cache or asked for."""

    name: str  # file name without suffix
    title: str
    draw: Callable[[Experiment], Figure]
    check: str | None = None

    def wanted(self, exp: Experiment, asked: bool) -> bool:
        """Whether to draw it: always, unless it is a check neither asked for nor cached."""
        return self.check is None or asked or exp.cached(self.check) is not None


def _compare_scores(stages: list, names: list[str], run: int = 0) -> dict:
    results = merge(stages).results
    return {name: results[name]["mse"][run] for name in names if name in results}


def _beside_scores(draw_left, scores: dict, highlight: str) -> Figure:
    """A panel drawn by ``draw_left(ax)`` beside the MSE bars of ``scores``: the live
    retrain panels' figure, in two panels so that it stays legible at talk size."""
    fig, (left, right) = plt.subplots(1, 2, figsize=TALK_SIZE,
                                      gridspec_kw={"width_ratios": [1, 1.3]})
    draw_left(left)
    plots.mse_bars(scores, highlight=highlight, ax=right)
    return fig


def _grid_student(exp: Experiment) -> Figure:
    """The grid's best student of run 1, as the live retrain panel of lesson 03 shows it."""
    part2, grid = exp.run("expert_teacher"), exp.run("grid_search")
    net = grid.models[grid.best][0]
    scores = _compare_scores([grid, part2], [grid.best, SCRATCH, DISTILLED_EXPERT])
    return _beside_scores(
        lambda ax: plots.pred_vs_true(net, exp.data, ax=ax, label=grid.best,
                                      color=color(grid.best)),
        scores, grid.best)


def _lgr_student(exp: Experiment) -> Figure:
    """The L_GR student of run 1: its loss terms and its MSE, as lesson 04's panel shows."""
    final = exp.run("gradient_regularisation")
    history = final.history[(final.history["model"] == LGR) & (final.history["run"] == 1)]
    scores = _compare_scores([final], [LGR, final.best, SCRATCH])
    return _beside_scores(lambda ax: plots.loss_curves(history, ax=ax), scores, LGR)


def _teacher_curves(exp: Experiment, kinds) -> Figure:
    import pandas as pd

    frames = [exp.teacher_history(kind) for kind in kinds]
    names = [frame["model"].iloc[0] for frame in frames]
    return plots.learning_curves(pd.concat(frames), names, noise_var=exp.settings.noise ** 2)


def _gradient_shares(exp: Experiment) -> Figure:
    final = exp.run("gradient_regularisation")
    norms = term_gradient_norms(final.models[LGR][0], exp.teachers("expert")[0],
                                exp.data.X_train, exp.data.y_train, exp.settings.gr_weights)
    return plots.gradient_shares(norms)


def _costs(exp: Experiment) -> Figure:
    exp.run("jacobian_matching")
    costs, mse = cost_comparison(exp, [SCRATCH, exp.run("model_selection").chosen, JAC],
                                 min_run_time=0.2)
    return plots.cost_vs_error(costs, mse)


def _tests(stage) -> list:
    return list(stage.tests.values())


FIGURES: list[TalkFigure] = [
    TalkFigure("00_target_slices", "The target, one feature at a time",
               lambda exp: task.target_slices(n_features=exp.settings.n_features)),
    TalkFigure("00_interaction", "The interaction term sin(x0·x1)",
               lambda exp: task.interaction_heatmap("interaction")),
    TalkFigure("00_target_heatmap", "The target over (x0, x1)",
               lambda exp: task.interaction_heatmap("target")),
    TalkFigure("00_noisy_samples", "Noisy labels against the noiseless target",
               lambda exp: task.noisy_samples(data=exp.data)),
    TalkFigure("00_data_explorer", "The data explorer: a slice and the noise",
               lambda exp: task.data_explorer_figure(0, exp.settings.noise)),
    TalkFigure("01_mse_by_model", "Part 1: test MSE of every run",
               lambda exp: plots.mse_by_model(exp.run("standard_teacher"))),
    TalkFigure("01_predictions", "Part 1: predictions and residuals",
               lambda exp: plots.prediction_panels(exp.run("standard_teacher"), exp.data, run=0)),
    TalkFigure("01_loss_curves", "Part 1: the distilled student's loss terms",
               lambda exp: plots.loss_curves(exp.run("standard_teacher"), model=DISTILLED)),
    TalkFigure("01_paired_differences", "Part 1: distilled minus scratch, run by run",
               lambda exp: plots.paired_differences(_tests(exp.run("standard_teacher")))),
    TalkFigure("01_teacher_memorises", "The standard teacher: training and test MSE",
               lambda exp: _teacher_curves(exp, ["teacher"])),
    TalkFigure("01_fresh_inputs", "Distilling on fresh inputs: paired differences",
               lambda exp: plots.paired_differences(
                   _tests(exp.run("fresh_inputs_teacher"))[:3])),
    TalkFigure("02_mse_by_model", "Part 2: test MSE of every run",
               lambda exp: plots.mse_by_model(exp.run("expert_teacher"))),
    TalkFigure("02_predictions", "Part 2: teachers and students, point by point",
               lambda exp: plots.prediction_panels(
                   [exp.run("standard_teacher"), exp.run("expert_teacher")], exp.data,
                   names=[TEACHER, EXPERT, SCRATCH, DISTILLED_EXPERT])),
    TalkFigure("02_paired_differences", "Part 2: paired differences",
               lambda exp: plots.paired_differences(_tests(exp.run("expert_teacher")))),
    TalkFigure("02_learning_curves", "Teacher and expert: training and test MSE",
               lambda exp: _teacher_curves(exp, ["teacher", "expert"])),
    TalkFigure("02_ablation", "Depth or regularisation: paired differences",
               lambda exp: plots.paired_differences(_tests(exp.run("expert_ablation")))),
    TalkFigure("02_fresh_inputs", "The expert's student on fresh inputs",
               lambda exp: plots.prediction_panels(
                   [exp.run("expert_teacher"), exp.run("fresh_inputs_expert")], exp.data,
                   names=[EXPERT, DISTILLED_EXPERT, FRESH["expert"]])),
    TalkFigure("03_grid_search", "Part 3: the grid search over the weights",
               lambda exp: plots.grid_search_bars(exp.run("grid_search"))),
    TalkFigure("03_learning_curves", "Grid students: training and test MSE per epoch",
               lambda exp: plots.learning_curves(
                   exp.run("grid_search").history, ["H=0.1_HP=0.9", "H=0.9_HP=0.1"],
                   noise_var=exp.settings.noise ** 2)),
    TalkFigure("03_validation_vs_test", "Choosing the weights on a validation split",
               lambda exp: plots.validation_vs_test(exp.run("model_selection"))),
    TalkFigure("03_close_call", "h = 0.1 against h = 0.3, run by run (descriptive)",
               lambda exp: plots.paired_differences(paired_test(
                   exp.run("grid_search").results, "H=0.1_HP=0.9", "H=0.3_HP=0.7",
                   descriptive=True))),
    TalkFigure("03_retrained_student", "Part 3: the best grid student beside the others",
               _grid_student),
    TalkFigure("04_final_comparison", "Part 4: every student over the paired runs",
               lambda exp: plots.final_boxplot(exp.run("gradient_regularisation"))),
    TalkFigure("04_loss_terms", "Part 4: the L_GR student's loss terms",
               lambda exp: plots.loss_curves(exp.run("gradient_regularisation"), model=LGR)),
    TalkFigure("04_weighted_loss_terms", "Part 4: each loss term times its weight",
               lambda exp: plots.loss_curves(
                   exp.run("gradient_regularisation"), model=LGR,
                   weights=exp.run("gradient_regularisation").weights[LGR], total=True)),
    TalkFigure("04_lgr_student", "Part 4: an L_GR student and its loss terms", _lgr_student),
    TalkFigure("04_paired_differences", "Part 4: L_GR against its controls",
               lambda exp: plots.paired_differences(_tests(exp.run("gradient_regularisation")))),
    TalkFigure("04_gradient_shares", "How hard each loss term pulls", _gradient_shares),
    TalkFigure("05_jacobian_matching", "L_JAC against the validation choice and L_GR",
               lambda exp: plots.paired_differences(_tests(exp.run("jacobian_matching")))),
    TalkFigure("05_feature_distillation", "L_FEAT against the validation choice",
               lambda exp: plots.paired_differences(_tests(exp.run("feature_distillation")))),
    TalkFigure("05_three_way_search", "The three-way search on its simplex",
               lambda exp: plots.ternary_heatmap(
                   exp.run("three_way_search_jac").validation, third="jac",
                   chosen=exp.run("three_way_search_jac").chosen),
               check="three_way_search_jac"),
    TalkFigure("05_early_stopping_curves", "Early stopping: validation MSE and the best epochs",
               lambda exp: plots.early_stopping_curves(exp.run("early_stopping"),
                                                       noise_var=exp.settings.noise ** 2)),
    TalkFigure("05_early_stopping", "Early stopping: paired differences",
               lambda exp: plots.paired_differences(_tests(exp.run("early_stopping")))),
    TalkFigure("05_costs", "What each model costs and what it gets right", _costs),
]


def by_name(names=None) -> list[TalkFigure]:
    """The registry's entries named in ``names`` (all when None), in registry order."""
    if names is None:
        return list(FIGURES)
    known = {f.name for f in FIGURES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"no figure named {', '.join(unknown)}; "
                         f"the figures are: {', '.join(sorted(known))}")
    return [f for f in FIGURES if f.name in set(names)]


def _fit_titles(fig: Figure) -> None:
    """Wrap each axes title that is wider than its axes (large fonts, narrow panels)."""
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        room = ax.get_window_extent(renderer).width
        width = ax.title.get_window_extent(renderer).width
        if ax.title.get_text() and width > room:
            lines = ax.title.get_text().splitlines()
            chars = max(8, int(max(map(len, lines)) * room / width))
            ax.title.set_text("\n".join(textwrap.fill(line, chars) for line in lines))


def draw(entry: TalkFigure, exp: Experiment) -> Figure:
    """One registry figure under the talk context, resized to :data:`TALK_SIZE`."""
    with matplotlib.rc_context():
        plots.use_style()
        sns.set_context("talk")
        fig = entry.draw(exp)
        fig.set_size_inches(*TALK_SIZE)
        fig.tight_layout()
        _fit_titles(fig)
        fig.tight_layout()
    return fig


def _save_atomic(fig: Figure, path: Path, fmt: str) -> None:
    write_atomic(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=DPI))


@dataclass(frozen=True)
class WrittenFigures:
    """What :func:`write_figures` did: the files it wrote, and the figures of optional
    checks it left out (their stage neither cached nor asked for)."""

    paths: list[Path]
    left_out: list[TalkFigure]


def write_figures(exp: Experiment, out, names=None, formats=FORMATS,
                  progress: bool = True, with_checks: bool = False) -> WrittenFigures:
    """Draw the registry's figures (all, or those in ``names``) and write each as
    ``out/<name>.<format>``. A figure of an optional check (:attr:`TalkFigure.check`) is
    drawn when its stage is in the cache, when it is named in ``names`` or when
    ``with_checks``; else it is left out, as its lesson leaves it out."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats must be among {', '.join(FORMATS)}, got {list(formats)}")
    asked = with_checks or names is not None
    entries, left_out = [], []
    for entry in by_name(names):
        (entries if entry.wanted(exp, asked) else left_out).append(entry)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for entry in tqdm(entries, desc="talk figures", disable=not progress):
        fig = draw(entry, exp)
        try:
            for fmt in formats:
                path = out / f"{entry.name}.{fmt}"
                _save_atomic(fig, path, fmt)
                written.append(path)
        finally:
            plt.close(fig)
    return WrittenFigures(written, left_out)
