"""Widgets drawn from the state a notebook saved, with no JavaScript."""

import copy

from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from kdteach.publish.saved_widgets import (
    WIDGET_STATE,
    WIDGET_VIEW,
    SavedWidgetsPreprocessor,
    panel_figure_text,
    render_widget,
    saved_settings,
)

PNG = "iVBORw0KGgo="


def model(name, **state):
    return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}


STATES = {
    "panel": model("VBoxModel", children=["IPY_MODEL_row", "IPY_MODEL_out"]),
    "row": model("HBoxModel", children=["IPY_MODEL_hard", "IPY_MODEL_go", "IPY_MODEL_run"]),
    "hard": model("FloatSliderModel", description="hard", value=0.25, min=0.0, max=1.0,
                  step=0.05, readout_format=".2f"),
    "go": model("ButtonModel", description="Retrain"),
    "run": model("DropdownModel", description="run", _options_labels=["run 1", "run 2"],
                 index=1),
    "out": model("OutputModel", outputs=[
        {"output_type": "stream", "name": "stdout", "text": "test MSE 0.4321 <best>\n"},
        {"output_type": "display_data", "metadata": {},
         "data": {"image/png": PNG, "text/plain": "<Figure>"}},
        {"output_type": "display_data", "metadata": {},
         "data": {WIDGET_VIEW: {"model_id": "bar"}, "text/plain": "HBox()"}},
    ]),
    "bar": model("FloatProgressModel", value=40, max=40),
}


def test_a_panel_is_drawn_from_its_saved_state():
    text = render_widget("panel", STATES)
    assert text.startswith('<div class="kd-widget-column"><div class="kd-widget-row">')
    assert 'value="0.25"' in text and "<span>0.25</span>" in text
    assert "<button disabled>Retrain</button>" in text
    assert "<option>run 2</option>" in text
    assert "test MSE 0.4321 &lt;best&gt;" in text  # printed text is escaped
    assert f'src="data:image/png;base64,{PNG}"' in text
    assert '<progress value="40" max="40">' in text  # a widget inside an output area


def test_a_widget_without_saved_state_says_so():
    assert "state was not saved" in render_widget("IPY_MODEL_nobody", STATES)


def test_preprocessor_replaces_widget_outputs_and_drops_the_state():
    cell = new_code_cell("panel", execution_count=1)
    cell.outputs = [new_output("display_data", data={WIDGET_VIEW: {"model_id": "panel"},
                                                     "text/plain": "Panel(...)"})]
    nb = new_notebook(cells=[cell])
    nb.metadata["widgets"] = {WIDGET_STATE: {"state": copy.deepcopy(STATES),
                                             "version_major": 2, "version_minor": 0}}
    nb, _ = SavedWidgetsPreprocessor().preprocess(nb, {})
    (output,) = nb.cells[0].outputs
    assert list(output["data"]) == ["text/html"]
    assert "Retrain" in output["data"]["text/html"]
    assert "widgets" not in nb.metadata


def test_every_drawn_control_has_a_name_for_assistive_technology():
    text = render_widget("panel", STATES)
    assert '<label><span>hard</span><input type="range"' in text  # the label wraps it
    assert '<label><span>run</span><select disabled>' in text
    unnamed = {"knob": model("IntSliderModel", value=3, min=0, max=9, tooltip="epochs")}
    assert 'aria-label="epochs"' in render_widget("knob", unnamed)
    bare = {"knob": model("IntSliderModel", value=3, min=0, max=9)}
    assert 'aria-label="slider"' in render_widget("knob", bare)


def test_a_panels_figures_say_what_they_show_and_how_the_panel_was_saved():
    assert saved_settings("panel", STATES) == ["hard = 0.25", "run = run 2"]
    text = render_widget("panel", STATES)
    assert 'alt="Figure of a saved panel, as saved, with hard = 0.25, run = run 2."' in text
    what = "Figure of “5. Retrain”: Pick the hard weight"
    assert panel_figure_text("panel", STATES, what) == (
        f"{what} (as saved, with hard = 0.25, run = run 2).")


def test_the_preprocessor_gives_the_panel_figures_the_cells_text():
    cell = new_code_cell("widgets.retrain_explorer(exp)", execution_count=1)
    cell.outputs = [new_output("display_data", data={WIDGET_VIEW: {"model_id": "panel"},
                                                     "text/plain": "Panel(...)"})]
    nb = new_notebook(cells=[new_markdown_cell("## 5. Your turn"), cell])
    nb.metadata["widgets"] = {WIDGET_STATE: {"state": copy.deepcopy(STATES),
                                             "version_major": 2, "version_minor": 0}}
    nb, _ = SavedWidgetsPreprocessor().preprocess(nb, {})
    drawn = nb.cells[1].outputs[0]["data"]["text/html"]
    assert 'alt="Figure of “5. Your turn”: Pick the hard weight' in drawn
    assert "(as saved, with hard = 0.25, run = run 2)." in drawn
