import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from kdteach.core.models import StudentNet
from kdteach.core.train import train
from kdteach.lesson import plots
from kdteach.protocol import names as naming
from kdteach.protocol.experiment import Experiment
from kdteach.protocol.names import DISTILLED, EXPERT, LGR, SCRATCH, TEACHER
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
    assert fig.axes[3].get_ylabel() == "prediction − true"
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
    assert len(fig.axes) == 3 and fig.axes[1].get_ylabel() == "prediction − true"
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
    assert len(fig.axes[0].patches) == 3 and fig.axes[0].get_xscale() == "log"


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
