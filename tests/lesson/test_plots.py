import dataclasses
import itertools

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgb
from matplotlib.patches import Rectangle

from kdteach.core.costs import LABEL
from kdteach.core.models import StudentNet
from kdteach.core.stats import paired_test
from kdteach.core.train import VAL, predict, train
from kdteach.lesson import figures as talk_figures
from kdteach.lesson import plots
from kdteach.protocol import names as naming
from kdteach.protocol.experiment import Experiment
from kdteach.protocol.names import (
    DISTILLED,
    DISTILLED_EXPERT,
    EXPERT,
    JAC,
    LGR,
    SCRATCH,
    STOPPED,
    TEACHER,
)
from kdteach.protocol.settings import get_settings

matplotlib.use("Agg")  # headless, whatever MPLBACKEND says


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    settings = get_settings("quick", device="cpu", n_runs=2, epochs_teacher=3, epochs_student=3)
    return Experiment(settings, cache=tmp_path_factory.mktemp("cache"), progress=False)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def data_lines(ax):
    """Lines that draw data (seaborn also adds empty lines as legend handles)."""
    return [line for line in ax.lines if len(line.get_xdata()) > 0]


def visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def test_prediction_panels_one_column_per_model(exp):
    part1 = exp.run("standard_teacher")
    fig = plots.prediction_panels(part1, exp.data, run=1)
    assert len(fig.axes) == 2 * 3
    top = fig.axes[:3]
    assert [ax.get_title().splitlines()[0] for ax in top] == [TEACHER, SCRATCH, DISTILLED]
    assert all("test MSE" in ax.get_title() for ax in top)
    assert all(len(ax.collections[0].get_offsets()) == 400 for ax in fig.axes)  # test set
    assert fig.axes[3].get_ylabel() == plots.RESIDUAL_Y_LABEL
    assert fig.axes[3].get_xlabel() == plots.RESIDUAL_X_LABEL
    assert "run 2" in fig._suptitle.get_text()


def test_prediction_panels_merges_stages_and_checks_names_and_runs(exp):
    stages = [exp.run("standard_teacher"), exp.run("expert_teacher")]
    fig = plots.prediction_panels(stages, exp.data, names=[EXPERT, SCRATCH])
    assert [ax.get_title().splitlines()[0] for ax in fig.axes[:2]] == [EXPERT, SCRATCH]
    with pytest.raises(ValueError, match="no models named"):
        plots.prediction_panels(stages, exp.data, names=["nobody"])
    with pytest.raises(ValueError, match="run must lie"):
        plots.prediction_panels(stages, exp.data, run=5)
    with pytest.raises(TypeError):
        plots.as_models(42)


def test_single_net_works_for_any_run(exp):
    fig = plots.prediction_panels({"fresh": StudentNet()}, exp.data, run=1)
    assert len(fig.axes) == 2


def test_loss_curves_from_a_stage_one_line_per_term_on_log_scale(exp):
    final = exp.run("gradient_regularisation")
    fig = plots.loss_curves(final)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "epoch"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [plots.TERM_LABELS[t] for t in ("hard", "hp", "gr")]
    assert len(data_lines(ax)) == 3
    fig_total = plots.loss_curves(final, run=0, weights=final.weights[LGR], total=True)
    assert len(fig_total.axes[0].get_legend().get_texts()) == 4
    assert "weighted" in fig_total.axes[0].get_title()


def test_loss_curves_needs_a_model_when_several(exp):
    with pytest.raises(ValueError, match="several models"):
        plots.loss_curves(exp.run("grid_search"))
    fig = plots.loss_curves(exp.run("grid_search"), model=exp.run("grid_search").best)
    assert len(data_lines(fig.axes[0])) == 2  # hard and L_HP


def test_loss_curves_from_a_history_and_from_nothing(exp):
    d = exp.data
    history = train(StudentNet(), d.X_train, d.y_train, num_epochs=2, lr=1e-3, progress=False)
    fig = plots.loss_curves(history, total=True)
    assert len(data_lines(fig.axes[0])) == 2  # hard and total
    empty = plots.loss_curves(pd.DataFrame(columns=["model", "epoch", "term", "loss"]))
    assert "no epochs" in empty.axes[0].texts[0].get_text()
    with pytest.raises(TypeError):
        plots.loss_curves([1, 2, 3])


def test_mse_by_model_one_box_and_one_dot_per_run(exp):
    part2 = exp.run("expert_teacher")
    fig = plots.mse_by_model(part2)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "test MSE"
    assert len(ax.get_yticklabels()) == len(part2.results)
    assert len(ax.lines) >= exp.settings.n_runs  # the grey lines joining each run
    dots = sum(len(c.get_offsets()) for c in ax.collections)
    assert dots == len(part2.results) * exp.settings.n_runs
    students = plots.mse_by_model(part2, include_teachers=False).axes[0]
    assert len(students.get_yticklabels()) == len(part2.results) - 2


def test_mse_bars_highlights_one(exp):
    fig = plots.mse_bars({"a": 0.3, "b": 0.5}, highlight="b")
    (ax,) = fig.axes
    assert len(ax.patches) == 2
    assert ax.patches[1].get_linewidth() > ax.patches[0].get_linewidth()
    fig = plots.mse_bars({TEACHER: 0.3, SCRATCH: 0.5})
    faces = [matplotlib.colors.to_hex(p.get_facecolor()) for p in fig.axes[0].patches]
    assert faces == [naming.color(TEACHER), naming.color(SCRATCH)]


def test_the_clis_figures_still_work(exp):
    grid = exp.run("grid_search")
    fig = plots.grid_search_bars(grid)
    assert len(fig.axes[0].patches) == len(exp.settings.grid_hard_weights)
    final = exp.run("gradient_regularisation")
    fig = plots.final_boxplot(final)
    assert fig.axes[0].get_xlabel().startswith("test MSE")


def test_retrained_student_with_and_without_curves(exp):
    net = exp.run("standard_teacher").models[SCRATCH][0]
    fig = plots.retrained_student(net, exp.data, {"mine": 0.4, SCRATCH: 0.5}, "mine")
    assert len(fig.axes) == 3 and fig.axes[1].get_ylabel() == plots.RESIDUAL_Y_LABEL
    history = exp.run("standard_teacher").history
    history = history[history["model"] == SCRATCH]
    fig = plots.retrained_student(net, exp.data, {"mine": 0.4}, "mine", history=history)
    assert fig.axes[1].get_yscale() == "log"


# ---------------------------------------------------------------- the lessons' figures


def test_learning_curves_draw_train_and_test_per_model_with_the_noise_floor(exp):
    history = exp.teacher_history("teacher")
    fig = plots.learning_curves(history, [TEACHER], noise_var=0.01)
    ax = fig.axes[0]
    labels = [line.get_label() for line in data_lines(ax)]
    assert f"{TEACHER}, test" in labels and f"{TEACHER}, training" in labels
    assert any("noise floor" in label for label in labels)
    assert ax.get_yscale() == "log"
    colours = {line.get_color() for line in data_lines(ax) if TEACHER in line.get_label()}
    assert colours == {naming.color(TEACHER)}  # one colour per model


def test_paired_differences_one_row_per_comparison(exp):
    tests = list(exp.run("gradient_regularisation").tests.values())
    fig = plots.paired_differences(tests)
    ax = fig.axes[0]
    assert len(ax.get_yticks()) == len(tests)
    dots = [c for c in ax.collections if len(c.get_offsets())]
    assert sum(len(c.get_offsets()) for c in dots) == 2 * len(tests)  # a dot per run
    text = " ".join(t.get_text() for t in ax.get_yticklabels())
    assert "descriptive" in text and "p = " in text
    with pytest.raises(ValueError):
        plots.paired_differences([])


def test_validation_vs_test_marks_both_choices(exp):
    selection = exp.run("model_selection")
    fig = plots.validation_vs_test(selection)
    text = " ".join(t.get_text() for t in fig.axes[0].get_yticklabels())
    assert "chosen on validation" in text and "best on test (optimistic)" in text


def test_gradient_shares_one_bar_per_term():
    norms = pd.DataFrame({"term": ["hard", "hp", "gr"], "weight": [0.2, 0.5, 0.3],
                          "loss value": [0.1, 0.01, 1e-6],
                          "gradient norm": [0.2, 0.3, 1e-5],
                          "share of the pull": [0.4, 0.6, 2e-5]})
    fig = plots.gradient_shares(norms)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and not rectangles(ax)
    (dots,) = [c for c in ax.collections if len(c.get_offsets())]  # one dot per term
    assert dots.get_offsets()[:, 0].tolist() == pytest.approx([0.2, 0.3, 1e-5])
    low, high = ax.get_xlim()
    assert low < 1e-5 and high > 0.3


def test_stage_figures_use_each_models_colour(exp):
    fig = plots.mse_by_model(exp.run("expert_teacher"))
    faces = {matplotlib.colors.to_hex(fc) for c in fig.axes[0].collections
             for fc in c.get_facecolors()}
    assert matplotlib.colors.to_hex(naming.color(EXPERT)) in faces


def test_ternary_heatmap_one_hexagon_per_point_and_the_choice_circled():
    rows = [{"hard": i / 10, "hp": j / 10, "jac": round(1 - i / 10 - j / 10, 10),
             "Weights": f"{i}/{j}", "Mean validation MSE": 0.3 + 0.01 * i + (5.0 if i + j == 0
                                                                             else 0.0)}
            for i in range(11) for j in range(11 - i)]
    table = pd.DataFrame(rows)
    fig = plots.ternary_heatmap(table, chosen="0/10")
    hexagons, circle = fig.axes[0].collections[:2]
    assert len(hexagons.get_offsets()) == 66 and len(circle.get_offsets()) == 1
    # the one very poor point does not stretch the colour scale
    assert hexagons.norm.vmax < 1.0
    assert "chosen: 0/10" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    with pytest.raises(ValueError, match="column"):
        plots.ternary_heatmap(table.drop(columns="jac"))


# ---------------------------------------------------------------- for a projector


def rectangles(ax):
    """The bars of ``ax``: its Rectangle patches (a legend's swatches are not among them)."""
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def in_view(label, axis) -> bool:
    """Whether a tick label's tick lies within the axis's view, so that it is drawn."""
    low, high = sorted(axis.get_view_interval())
    where = label.get_position()[0 if axis.axis_name == "x" else 1]
    return low - 1e-9 * (abs(low) + 1) <= where <= high + 1e-9 * (abs(high) + 1)


def drawn_texts(fig):
    """Every text ``fig`` draws, non-empty and visible: titles, axis and tick labels,
    texts and annotations, legends, the figure's own texts."""
    texts = [fig._suptitle, *fig.texts]
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        for axis in (ax.xaxis, ax.yaxis) if ax.axison else ():  # no axes drawn: no labels
            if not axis.get_visible():
                continue
            texts += [axis.label, axis.get_offset_text()]
            texts += [t for t in axis.get_ticklabels(which="both") if in_view(t, axis)]
        legend = ax.get_legend()
        if legend is not None:
            texts += [legend.get_title(), *legend.get_texts()]
    for legend in fig.legends:
        texts += [legend.get_title(), *legend.get_texts()]
    unique = list({id(t): t for t in texts if t is not None}.values())  # each once
    return [t for t in unique if t.get_visible() and t.get_text().strip()
            and (t.axes is None or t.axes.get_visible())]


def overlapping_texts(fig, tolerance_px: float = 0.5) -> list[tuple[str, str]]:
    """Pairs of drawn texts of ``fig`` whose boxes (``get_window_extent``) intersect."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in drawn_texts(fig)]
    found = []
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        wide = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
        tall = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
        if wide > tolerance_px and tall > tolerance_px:
            found.append((a, b))
    return found


def at_talk_size(draw):
    """``draw()``'s figure as the talk figures draw it: talk fonts, 16:9 slide size."""
    entry = talk_figures.TalkFigure("test", "test", lambda exp: draw())
    return talk_figures.draw(entry, None)


def relative_luminance(colour) -> float:
    """WCAG 2 relative luminance of an sRGB colour."""
    rgb = np.asarray(to_rgb(colour))
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return float(linear @ [0.2126, 0.7152, 0.0722])


def contrast_with_white(colour) -> float:
    """WCAG 2 contrast ratio of ``colour`` against a white background."""
    return 1.05 / (relative_luminance(colour) + 0.05)


def test_the_helpers_see_overlaps_and_contrast():
    fig, ax = plt.subplots()
    ax.text(0.5, 0.5, "one label")
    ax.text(0.5, 0.5, "another")
    ax.text(0.1, 0.1, "alone")
    assert overlapping_texts(fig) == [("one label", "another")]
    assert contrast_with_white("black") == pytest.approx(21.0)
    assert contrast_with_white("#767676") == pytest.approx(4.54, abs=0.01)  # WCAG's AA grey
    assert contrast_with_white("#bdbdbd") < 3  # the fit-part grey the lessons once drew


def near_equal_tests():
    """Lesson-shaped paired comparisons, 4 of them with 5 runs each, whose per-run
    differences nearly coincide (one has an outlying run that widens the axis)."""
    base = np.array([0.31, 0.35, 0.29, 0.33, 0.30])
    tiny = np.array([0.0, 1e-4, -1e-4, 2e-4, -2e-4])
    results = {
        SCRATCH: {"mse": base},
        DISTILLED: {"mse": base + 0.002 + tiny},
        DISTILLED_EXPERT: {"mse": base - 0.05 + tiny},
        LGR: {"mse": base - 0.049 + tiny + np.array([0, 0, 0, 0, 0.09])},
        JAC: {"mse": base - 0.08 + tiny / 2},
    }
    return [paired_test(results, DISTILLED, SCRATCH, "less"),
            paired_test(results, DISTILLED_EXPERT, SCRATCH),
            paired_test(results, LGR, DISTILLED_EXPERT),
            paired_test(results, JAC, DISTILLED_EXPERT, descriptive=True)]


@pytest.mark.parametrize("size", ["notebook", "talk"])
def test_paired_differences_run_numbers_never_overlap(size):
    tests = near_equal_tests()
    if size == "talk":
        fig = at_talk_size(lambda: plots.paired_differences(tests))
    else:
        fig = plots.paired_differences(tests)
    ax = fig.axes[0]
    numbers = [t for t in ax.texts if t.get_text().strip()]
    assert sorted(t.get_text() for t in numbers) == sorted("12345" * 4)
    assert not overlapping_texts(fig)
    for text in numbers:  # each number stays in its row, above its dot
        assert text.xyann[1] == plots.RUN_LABEL_RISE


def test_paired_differences_keeps_well_separated_numbers_above_their_dots():
    results = {SCRATCH: {"mse": [0.3, 0.3, 0.3]}, DISTILLED: {"mse": [0.1, 0.35, 0.6]}}
    fig = plots.paired_differences(paired_test(results, DISTILLED, SCRATCH))
    numbers = [t for t in fig.axes[0].texts if t.get_text().strip()]
    assert [t.xyann for t in numbers] == [(0.0, plots.RUN_LABEL_RISE)] * 3


def test_spread_centres_keeps_the_gap_the_order_and_the_bounds():
    wanted = [50.0, 50.1, 49.9, 90.0, 50.05]
    centres = plots.spread_centres(wanted, 10.0, 2.0, low=0.0, high=100.0)
    order = np.argsort(wanted, kind="stable")
    assert np.all(np.diff(centres[order]) >= 12.0 - 1e-9)  # in order, and apart
    assert centres[3] == pytest.approx(90.0)  # far enough: not moved
    crowded = centres[[0, 1, 2, 4]]
    assert np.mean(crowded) == pytest.approx(np.mean([50.0, 50.1, 49.9, 50.05]))  # centred
    edge = plots.spread_centres([1.0, 1.0, 99.0], 10.0, 2.0, low=0.0, high=100.0)
    assert edge.tolist() == pytest.approx([5.0, 17.0, 95.0])  # pushed inside the bounds
    assert plots.spread_centres([1.0, 50.0], 4.0, 1.0).tolist() == [1.0, 50.0]
    assert plots.spread_centres([], 4.0, 1.0).size == 0


def log_scale_figures(exp):
    """A figure of every plotting function that draws on a log scale."""
    final = exp.run("gradient_regularisation")
    norms = pd.DataFrame({"term": ["hard", "hp", "gr"], "weight": [0.2, 0.5, 0.3],
                          "loss value": [0.1, 0.01, 1e-6], "gradient norm": [0.2, 0.3, 1e-5],
                          "share of the pull": [0.4, 0.6, 2e-5]})
    costs = pd.DataFrame({LABEL: [SCRATCH, EXPERT], "latency batch 1 (µs)": [30.0, 90.0]})
    net = exp.run("standard_teacher").models[SCRATCH][0]
    history = final.history[final.history["model"] == LGR]
    return {
        "loss_curves": plots.loss_curves(final, model=LGR),
        "learning_curves": plots.learning_curves(exp.teacher_history("teacher"), [TEACHER]),
        "live_training": plots.live_training([1.0, 0.5], [1.1, 0.7], 10),
        "gradient_shares": plots.gradient_shares(norms),
        "cost_vs_error": plots.cost_vs_error(costs, {SCRATCH: [0.4, 0.5], EXPERT: [0.3]}),
        "retrained_student": plots.retrained_student(net, exp.data, {"mine": 0.4}, "mine",
                                                     history=history),
        "early_stopping_curves": plots.early_stopping_curves(exp.run("early_stopping")),
    }


def test_no_bars_on_a_log_axis(exp):
    for name, fig in log_scale_figures(exp).items():
        logs = [ax for ax in fig.axes if "log" in (ax.get_xscale(), ax.get_yscale())]
        assert logs, f"{name} draws no log axis"
        for ax in logs:
            assert not rectangles(ax), f"{name}: bars on a log axis"


def bar_figures(exp):
    """A figure of every plotting function that draws bars, and of those that once did."""
    net = exp.run("standard_teacher").models[SCRATCH][0]
    return {
        "mse_bars": plots.mse_bars({SCRATCH: 0.50, DISTILLED: 0.48, TEACHER: 0.47}),
        "grid_search_bars": plots.grid_search_bars(exp.run("grid_search")),
        "validation_vs_test": plots.validation_vs_test(exp.run("model_selection")),
        "retrained_student": plots.retrained_student(net, exp.data, {"mine": 0.4, SCRATCH: 0.5},
                                                     "mine"),
        "mse_by_model": plots.mse_by_model(exp.run("expert_teacher")),
        "final_boxplot": plots.final_boxplot(exp.run("gradient_regularisation")),
    }


def test_every_bar_starts_at_zero_on_an_axis_that_starts_at_zero(exp):
    with_bars = set()
    for name, fig in bar_figures(exp).items():
        for ax in fig.axes:
            for bar in rectangles(ax):
                with_bars.add(name)
                if bar.get_x() == 0:  # horizontal: the value runs along x
                    assert ax.get_xscale() == "linear" and ax.get_xlim()[0] == 0, name
                else:
                    assert bar.get_y() == 0, f"{name}: a bar that starts off zero"
                    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0, name
    assert {"mse_bars", "grid_search_bars", "retrained_student"} <= with_bars


def test_validation_vs_test_is_a_dot_per_measure_and_point(exp):
    selection = exp.run("model_selection")
    ax = plots.validation_vs_test(selection).axes[0]
    assert not rectangles(ax)
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]  # scatter's
    measured = [c for c in selection.validation.columns if c != "Weights"]
    assert "Mean validation MSE" in measured and "Mean test MSE" in measured
    assert [d.get_offsets()[:, 0].tolist() for d in dots] == [
        pytest.approx(selection.validation[c].tolist()) for c in measured]
    assert [d.get_label() for d in dots] == measured
    assert len({(d.get_paths()[0].vertices.tobytes(), tuple(d.get_facecolors()[0]))
                for d in dots}) == len(dots)  # a marker of its own for each measure


def test_residuals_are_plotted_against_the_prediction(exp):
    net = exp.run("standard_teacher").models[SCRATCH][0]
    pred = predict(net, exp.data.X_test).detach().cpu().numpy().ravel()
    y = exp.data.y_test.detach().cpu().numpy().ravel()
    ax = plots.residuals(net, exp.data).axes[0]
    xy = ax.collections[0].get_offsets()
    assert np.asarray(xy[:, 0]) == pytest.approx(pred, abs=1e-6)
    assert np.asarray(xy[:, 1]) == pytest.approx(pred - y, abs=1e-6)
    assert ax.get_xlabel() == plots.RESIDUAL_X_LABEL and "ŷ − y" in ax.get_ylabel()


def test_prediction_panels_residuals_against_the_prediction_on_their_own_x_axis(exp):
    part1 = exp.run("standard_teacher")
    fig = plots.prediction_panels(part1, exp.data, run=0, names=[SCRATCH, TEACHER])
    top, bottom = fig.axes[:2], fig.axes[2:]
    for name, above, below in zip([SCRATCH, TEACHER], top, bottom):
        pred = predict(part1.models[name][0], exp.data.X_test).detach().cpu().numpy().ravel()
        assert np.asarray(below.collections[0].get_offsets()[:, 0]) == pytest.approx(pred,
                                                                                   abs=1e-6)
        assert np.asarray(above.collections[0].get_offsets()[:, 1]) == pytest.approx(pred,
                                                                                   abs=1e-6)
        assert not below.get_shared_x_axes().joined(above, below)
    assert bottom[0].get_shared_x_axes().joined(bottom[0], bottom[1])


def test_prediction_panels_of_lesson_02_have_no_overlapping_labels_at_talk_size(exp):
    stages = [exp.run("standard_teacher"), exp.run("expert_teacher")]
    fig = at_talk_size(lambda: plots.prediction_panels(
        stages, exp.data, names=[TEACHER, EXPERT, SCRATCH, DISTILLED_EXPERT]))
    assert not overlapping_texts(fig)


BEST = {STOPPED["scratch"]: [4, 7], STOPPED["distilled"]: [9, 6]}
PATIENCE = 3


def stopped_history() -> pd.DataFrame:
    """A small early-stopping history: each run's validation MSE falls to its best epoch
    and rises for ``PATIENCE`` epochs after it, where the run stops; training terms and the
    test MSE beside it, as a stage's history holds them."""
    rows = []
    for name, best_epochs in BEST.items():
        for run, best in enumerate(best_epochs, start=1):
            for epoch in range(1, best + PATIENCE + 1):
                val = 0.3 + 0.02 * run + 0.01 * (epoch - best) ** 2
                for term, loss in ((VAL, val), ("hard", val / 2), ("heldout", val * 1.1)):
                    rows.append({"model": name, "run": run, "epoch": epoch, "term": term,
                                 "loss": loss})
    return pd.DataFrame(rows)


def test_early_stopping_curves_mark_each_runs_best_validation_epoch(exp):
    stage = dataclasses.replace(exp.run("early_stopping"), history=stopped_history(),
                                best_epochs=BEST)
    fig = plots.early_stopping_curves(stage, noise_var=0.25)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and "validation" in ax.get_ylabel()
    curves = [line for line in data_lines(ax) if "noise floor" not in line.get_label()]
    assert len(curves) == 4  # one per model and run
    for name, best_epochs in BEST.items():
        own = [line for line in curves if line.get_color() == naming.color(name)]
        assert [int(line.get_xdata()[-1]) for line in own] == [b + PATIENCE for b in best_epochs]
        (dots,) = [c for c in ax.collections
                   if matplotlib.colors.to_hex(c.get_facecolors()[0]) == naming.color(name)]
        xy = dots.get_offsets()
        assert xy[:, 0].tolist() == best_epochs
        assert xy[:, 1].tolist() == pytest.approx([0.3 + 0.02 * run for run in (1, 2)])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [*BEST, "noise floor σ² = 0.25"]


def test_early_stopping_curves_lines_are_dark_enough_on_white(exp):
    stopping = exp.run("early_stopping")
    fig = plots.early_stopping_curves(stopping, noise_var=0.25)
    ax = fig.axes[0]
    lines = data_lines(ax)
    assert len(lines) == len(stopping.best_epochs) * exp.settings.n_runs + 1
    for line in lines:
        assert contrast_with_white(line.get_color()) >= 3, line.get_label()
    for name, best_epochs in stopping.best_epochs.items():
        assert any(c.get_offsets()[:, 0].tolist() == best_epochs for c in ax.collections), name


def test_early_stopping_curves_need_a_stage_with_early_stopping(exp):
    with pytest.raises(ValueError, match="no best epochs"):
        plots.early_stopping_curves(exp.run("standard_teacher"))
    stage = dataclasses.replace(exp.run("early_stopping"),
                                history=stopped_history().query("term != @VAL"),
                                best_epochs=BEST)
    with pytest.raises(ValueError, match="no validation MSE"):
        plots.early_stopping_curves(stage)


def ternary_table():
    rows = [{"hard": i / 10, "hp": j / 10, "jac": round(1 - i / 10 - j / 10, 10),
             "Weights": f"H={i / 10:g}_HP={j / 10:g}_JAC={round(1 - i / 10 - j / 10, 10):g}",
             "Mean validation MSE": 0.3 + 0.01 * i + 0.002 * j}
            for i in range(11) for j in range(11 - i)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("size", ["notebook", "talk"])
def test_ternary_heatmap_ticks_every_weight_on_its_side_without_overlaps(size):
    table = ternary_table()
    def draw():
        return plots.ternary_heatmap(table, chosen="H=0_HP=0.3_JAC=0.7")

    fig = at_talk_size(draw) if size == "talk" else draw()
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts if t.get_text()]
    for tick in ("0.2", "0.4", "0.6", "0.8"):
        assert texts.count(tick) == 3  # once on each side
    assert {"hard = 1", "hp = 1", "jac = 1"} <= set(texts)
    assert not overlapping_texts(fig)
    for text in ax.texts:  # each tick's number sits by a point on its side
        hp, third = text.xy[0] - text.xy[1] / np.sqrt(3), text.xy[1] * 2 / np.sqrt(3)
        assert min(hp, third, 1 - hp - third) == pytest.approx(0.0, abs=1e-9)


def test_ternary_ticks_lie_where_their_weight_has_that_value():
    ax = plots.ternary_heatmap(ternary_table()).axes[0]
    numbers = [t for t in ax.texts if t.get_text() in {f"{v:g}" for v in plots.TERNARY_TICKS}]
    assert len(numbers) == 12
    for side, (name, *_) in enumerate(plots.ternary_sides("jac")):
        for text in numbers[4 * side:4 * side + 4]:
            hp = text.xy[0] - text.xy[1] / np.sqrt(3)
            third = text.xy[1] * 2 / np.sqrt(3)
            weights = {"hard": 1 - hp - third, "hp": hp, "jac": third}
            assert weights[name] == pytest.approx(float(text.get_text()), abs=1e-9), name
