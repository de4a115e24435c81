import ipywidgets
import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
from widget_outputs import output_figures

from kdteach.lesson import widgets
from kdteach.protocol.experiment import Experiment
from kdteach.protocol.names import DISTILLED_EXPERT, EXPERT, LGR, SCRATCH, TEACHER
from kdteach.protocol.settings import get_settings

matplotlib.use("Agg")  # headless, whatever MPLBACKEND says

EPOCHS = 3



@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    settings = get_settings(
        "quick", device="cpu", n_runs=2, epochs_teacher=EPOCHS, epochs_student=EPOCHS
    )
    return Experiment(settings, cache=tmp_path_factory.mktemp("cache"), progress=False)


@pytest.fixture(autouse=True)
def no_figures_left_open():
    yield
    assert plt.get_fignums() == [], "a widget left a matplotlib figure open"


def shown(panel):
    return widgets.output_text(panel.out), output_figures(panel.out)


# ---------------------------------------------------------------- the plain functions


def test_notes_name_the_extreme_choices():
    assert "from scratch" in widgets._notes({"hard": 1.0, "hp": 0.0, "gr": 0.0}, 5)[0]
    assert "never used" in widgets._notes({"hard": 0.0, "hp": 1.0, "gr": 0.0}, 5)[0]
    assert "Only L_GR" in widgets._notes({"hard": 0.0, "hp": 0.0, "gr": 2.0}, 5)[0]
    assert "0 epochs" in widgets._notes({"hard": 0.5, "hp": 0.5, "gr": 0.0}, 0)[0]
    assert widgets._notes({"hard": 0.3, "hp": 0.7, "gr": 0.0}, 5) == []


def test_reference_scores_mean_and_one_run(exp):
    part2 = exp.run("expert_teacher")
    table = widgets.reference_scores(part2, [SCRATCH, "missing", EXPERT], run=1)
    assert list(table["model"]) == [SCRATCH, EXPERT]
    assert table.loc[0, "run 2 MSE"] == part2.results[SCRATCH]["mse"][1]


# ---------------------------------------------------------------- (a) and (b)


def test_data_explorer_redraws_on_every_slider(exp):
    panel = widgets.data_explorer(exp.settings)
    assert isinstance(panel, ipywidgets.VBox)
    text, figures = shown(panel)
    assert "x0" in text and figures == 1
    panel.controls["feature"].value = 9
    panel.controls["noise"].value = 0.0  # the extreme: no noise at all
    text, figures = shown(panel)
    assert "x9" in text and "noise std 0" in text and figures == 1


def test_run_selector_shows_the_chosen_run(exp):
    panel = widgets.run_selector([exp.run("standard_teacher"), exp.run("expert_teacher")], exp.data,
                                 names=[TEACHER, EXPERT, DISTILLED_EXPERT])
    assert [o[0] for o in panel.controls["run"].options] == ["run 1", "run 2"]
    text, figures = shown(panel)
    assert text.startswith("Run 1") and figures == 1
    panel.controls["run"].value = 1
    text, figures = shown(panel)
    second = exp.run("expert_teacher").results[EXPERT]["mse"][1]
    assert text.startswith("Run 2") and f"{EXPERT} MSE {second:.4f}" in text


# ---------------------------------------------------------------- (c) the grid search, live


@pytest.fixture(scope="module")
def grid_panel(exp):
    return widgets.retrain_explorer(exp)


def test_retrain_explorer_shows_both_weights_and_the_profiles_epochs(grid_panel):
    c = grid_panel.controls
    assert c["hard"].value == pytest.approx(0.3) and c["hp"].value == pytest.approx(0.7)
    assert c["hp"].disabled and c["epochs"].value == EPOCHS and c["epochs"].min == 0
    c["hard"].value = 0.1
    assert c["hp"].value == pytest.approx(0.9)
    assert "press Retrain" in shown(grid_panel)[0]


@pytest.mark.parametrize(
    "hard, epochs, expected",
    [
        (0.1, EPOCHS, "test MSE"),
        (1.0, EPOCHS, "teacher is ignored"),
        (0.0, EPOCHS, "labels are never used"),
        (0.5, 0, "0 epochs: nothing was trained"),
    ],
)
def test_retrain_button_including_extremes(grid_panel, exp, hard, epochs, expected):
    c = grid_panel.controls
    c["hard"].value, c["epochs"].value = hard, epochs
    c["retrain"].click()
    text, figures = shown(grid_panel)
    assert expected in text and "Traceback" not in text
    assert figures == 1
    assert SCRATCH in text and DISTILLED_EXPERT in text and exp.run("grid_search").best in text


# ---------------------------------------------------------------- (d) the L_GR weight


@pytest.fixture(scope="module")
def lgr_panel(exp):
    return widgets.lgr_explorer(exp)


def test_lgr_explorer_starts_at_the_originals_weights(lgr_panel):
    c = lgr_panel.controls
    assert (c["hard"].value, c["hp"].value) == (0.2, 0.5)
    assert c["gr"].value == pytest.approx(0.3) and c["use_gr"].value
    assert c["batch_size"].value == 128
    c["retrain"].click()
    text, figures = shown(lgr_panel)
    assert "gr 0.3" in text and LGR in text and figures == 1


def test_lgr_button_with_every_weight_zero_shows_a_message(lgr_panel):
    c = lgr_panel.controls
    c["use_gr"].value, c["hard"].value, c["hp"].value = False, 0.0, 0.0
    c["retrain"].click()  # must not raise
    text, figures = shown(lgr_panel)
    assert text.startswith("Cannot retrain with these settings")
    assert "at least one loss weight must be > 0" in text and figures == 0


@pytest.mark.parametrize(
    "gr, use_gr, hard, hp, epochs, batch, expected",
    [
        (1.0, True, 0.0, 0.0, EPOCHS, 128, "Only L_GR"),
        (1.0, False, 1.0, 0.0, EPOCHS, 128, "teacher is ignored"),
        (0.3, True, 0.2, 0.5, 0, 128, "0 epochs"),
        (1e4, True, 0.2, 0.5, EPOCHS, 32, "gr 10000, 3 epochs, batch 32"),
    ],
)
def test_lgr_button_extremes(lgr_panel, gr, use_gr, hard, hp, epochs, batch, expected):
    c = lgr_panel.controls
    c["gr"].value, c["use_gr"].value, c["hard"].value, c["hp"].value = gr, use_gr, hard, hp
    c["epochs"].value, c["batch_size"].value = epochs, batch
    c["retrain"].click()
    text, figures = shown(lgr_panel)
    assert expected in text and figures == 1


def test_lgr_slider_reaches_ten_thousand_on_a_log_scale(lgr_panel):
    gr = lgr_panel.controls["gr"]
    assert isinstance(gr, ipywidgets.FloatLogSlider)
    assert gr.base ** gr.max == pytest.approx(1e4) and gr.base ** gr.min == pytest.approx(1e-2)
    assert gr.step == 1.0  # by powers of ten, every position prepared in advance
    assert 512 in lgr_panel.controls["batch_size"].options


def test_a_diverging_run_is_reported_not_raised(exp, monkeypatch):
    def explode(*args, **kwargs):
        raise FloatingPointError("the loss became nan in epoch 2")

    monkeypatch.setattr(widgets, "retrain_student", explode)
    panel = widgets.retrain_explorer(exp)
    panel.controls["retrain"].click()
    assert "the loss became nan" in shown(panel)[0]


# ---------------------------------------------------------------- the environment check


def test_check_environment_reports_versions_device_and_profile():
    text = widgets.check_environment(get_settings("quick", device="cpu"))
    assert "torch" in text and "ipywidgets" in text
    assert "device: cpu; profile: quick" in text and "All good" in text


def test_check_environment_says_what_to_fix(monkeypatch):
    versions = {"seaborn": None, "ipywidgets": "7.8.1"}
    monkeypatch.setattr(widgets, "_installed", lambda p: versions.get(p, "1.0"))
    text = widgets.check_environment(get_settings("quick", device="cpu"))
    assert "FIX: install seaborn" in text and "ipywidgets 8" in text
    assert "All good" not in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_check_environment_explains_a_device_that_is_not_there(monkeypatch):
    monkeypatch.setenv("KDTEACH_DEVICE", "cuda")
    text = widgets.check_environment()
    assert "FIX:" in text and "no CUDA GPU" in text


def test_messages_survive_a_kernels_output_capture(exp, monkeypatch):
    """In a kernel, ``with out:`` prints a traceback and swallows the exception; the
    widget must catch it inside the block, so the learner sees the sentence instead."""
    monkeypatch.setattr(ipywidgets.Output, "__exit__", lambda self, *exc: True)
    panel = widgets.lgr_explorer(exp)
    c = panel.controls
    c["use_gr"].value, c["hard"].value, c["hp"].value = False, 0.0, 0.0
    c["retrain"].click()
    assert shown(panel)[0].startswith("Cannot retrain with these settings")


def test_a_saved_panel_shows_its_last_figure_and_names_its_controls(exp):
    panel = widgets.run_selector(exp.run("standard_teacher"), exp.data)
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["image/png"] == panel.out.outputs[-1]["data"]["image/png"]
    assert bundle["text/plain"].startswith("An interactive panel (run)")
    assert "Panel(children" not in bundle["text/plain"]
    grid = widgets.retrain_explorer(exp)
    text = grid._repr_mimebundle_()["text/plain"]
    assert "Retrain" in text and "press Retrain" in text
    assert "image/png" not in grid._repr_mimebundle_()  # nothing drawn yet


def test_patience_explorer_replays_each_patience_at_once(exp):
    stopping = exp.run("early_stopping")
    panel = widgets.patience_explorer(stopping)
    start = widgets.output_text(panel.out)
    assert f"patience {exp.settings.patience} epochs" in start
    for model, per_run in stopping.best_epochs.items():  # the stage's own choice, run 1
        assert f"{model}: in run 1 keeps epoch {per_run[0]} " in start
    assert shown(panel)
    panel.controls["patience"].value = 1
    one = widgets.output_text(panel.out)
    assert "patience 1 epochs" in one and one != start
    panel.controls["run"].value = 1
    assert "in run 2 keeps epoch" in widgets.output_text(panel.out)
    assert panel.controls["patience"].max == exp.settings.patience
