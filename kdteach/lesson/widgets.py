"""ipywidgets explorers for the notebooks: move a slider, see the figure change.

Each ``*_explorer``/``*_selector`` function returns a :class:`Panel`, an ordinary
``VBox`` that also keeps its controls (``panel.controls``, by name) and its output
area (``panel.out``), so a test can drive it without a browser::

    panel = retrain_explorer(exp)
    panel.controls["hard"].value = 0.1
    panel.controls["retrain"].click()
    print(output_text(panel.out))

Retrain first looks the student up among those the notebook prepared
(:func:`kdteach.lesson.slider_grid.prepared_student`: every position of the widget's
main slider and of the epochs slider, trained in advance by
:func:`~kdteach.lesson.slider_grid.slider_grid`), which answers at once. Anything else
is trained now, synchronously, by
:func:`~kdteach.lesson.retrain.retrain_student` with the stacked engine, its loss
curve drawn live as it trains. The output says which of the two it was. The experiment
owns the run, shuffle and cache bookkeeping; the widgets only read controls and show
results.
Impossible choices (every loss weight 0, say) are reported in the output area as a
sentence, never as a traceback.
"""

from __future__ import annotations

import base64
import io
import sys
import time
from importlib.metadata import PackageNotFoundError, version

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from kdteach.core.train import evaluate
from kdteach.lesson import plots, slider_grid, task
from kdteach.lesson.retrain import PREPARED, TRAINED_NOW, RetrainedStudent, retrain_student
from kdteach.lesson.slider_grid import prepared_student
from kdteach.protocol.analysis import stopping_at_patience
from kdteach.protocol.names import DISTILLED_EXPERT, FIT, LGR, SCRATCH, STOPPED, YOURS, run_label
from kdteach.protocol.results import merge
from kdteach.protocol.settings import get_settings

# ---------------------------------------------------------------- the output area


class Panel(widgets.VBox):
    """A VBox that remembers its controls (by name) and its output area.

    Where no widget can be drawn (a static viewer of a saved notebook), it shows its last
    figure and a line naming its controls instead of ``Panel(children=…)``.
    """

    def __init__(self, controls: dict, out: widgets.Output, rows=None, **kwargs):
        super().__init__(children=[*(rows or controls.values()), out], **kwargs)
        self.controls = controls
        self.out = out

    def __repr__(self):
        names = ", ".join(getattr(c, "description", "") or name
                          for name, c in self.controls.items())
        text = output_text(self.out).strip().splitlines()
        shown = f" It shows: {text[0]}" if text else ""
        return (f"An interactive panel ({names}): run the notebook in JupyterLab to use "
                f"it.{shown}")

    def _repr_mimebundle_(self, **kwargs):
        data = super()._repr_mimebundle_(**kwargs) or {"text/plain": repr(self)}
        data["text/plain"] = repr(self)
        images = [item["data"]["image/png"] for item in self.out.outputs
                  if "image/png" in item.get("data", {})]
        if images:
            data["image/png"] = images[-1]
        return data


def _figure_output(fig) -> dict:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    png = base64.b64encode(buffer.getvalue()).decode("ascii")
    return {
        "output_type": "display_data",
        "data": {"image/png": png, "text/plain": "<Figure>"},
        "metadata": {},
    }


def _text_output(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": text.rstrip("\n") + "\n"}


def show(out: widgets.Output, text: str | None = None, fig=None) -> None:
    """Replace what ``out`` shows with a message and/or a figure (closed once drawn).

    Writing the ``outputs`` trait, rather than printing inside ``with out:``, works the
    same in a notebook and in a plain Python process, where tests read it back.
    """
    items = []
    if text:
        items.append(_text_output(text))
    if fig is not None:
        items.append(_figure_output(fig))
    out.outputs = ()  # always a change, so the front end redraws even for equal content
    out.outputs = tuple(items)


def output_text(out: widgets.Output) -> str:
    """All text an output area shows (its stdout streams and plain-text data)."""
    parts = []
    for item in out.outputs:
        if item.get("output_type") == "stream":
            parts.append(item.get("text", ""))
        else:
            parts.append(item.get("data", {}).get("text/plain", ""))
    return "".join(parts)


# ---------------------------------------------------------------- the environment

NEEDED = ("torch", "numpy", "pandas", "scipy", "scikit-learn", "matplotlib", "seaborn", "tqdm",
          "ipywidgets")


def _installed(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def check_environment(settings=None) -> str:
    """A short report for the first notebook: versions, device and profile, and for
    anything that would stop the series, what to do about it."""
    found = {p: _installed(p) for p in NEEDED}
    lines = [f"Python {sys.version.split()[0]}; "
             + ", ".join(f"{p} {v}" for p, v in found.items() if v)]
    fixes = [f"install {p}: pip install {p} (or make lab, which installs everything)"
             for p, v in found.items() if v is None]
    if found["ipywidgets"] and int(found["ipywidgets"].split(".")[0]) < 8:
        fixes.append("the sliders need ipywidgets 8: pip install 'ipywidgets>=8'")
    try:
        settings = settings or get_settings()
        lines.append(f"device: {settings.torch_device}; profile: {settings.profile} "
                     f"({settings.n_runs} runs, {settings.epochs_teacher} teacher and "
                     f"{settings.epochs_student} student epochs)")
        if settings.profile == "full" and settings.torch_device.type == "cpu":
            lines.append("note: no GPU, so the full profile takes a few minutes on a small "
                         "CPU; KDTEACH_PROFILE=quick is much faster")
    except (ValueError, RuntimeError) as exc:
        fixes.append(f"fix KDTEACH_PROFILE / KDTEACH_DEVICE: {exc}")
    lines += [f"FIX: {fix}" for fix in fixes] or ["All good: every notebook can run here."]
    return "\n".join(lines)


# ---------------------------------------------------------------- (a) the data


def data_explorer(settings=None) -> Panel:
    """Sliders for the noise level and the sliced feature; the figure follows them."""
    settings = settings or get_settings()
    feature = widgets.IntSlider(value=0, min=0, max=settings.n_features - 1,
                                description="feature", continuous_update=False)
    noise = widgets.FloatSlider(value=settings.noise, min=0.0, max=1.0, step=0.05,
                                description="noise std", continuous_update=False)
    out = widgets.Output()

    def redraw(_=None):
        text = (f"Slicing along x{feature.value} with noise std {noise.value:g}. "
                f"The experiments use noise std {settings.noise:g}.")
        show(out, text, task.data_explorer_figure(feature.value, noise.value))

    feature.observe(redraw, names="value")
    noise.observe(redraw, names="value")
    redraw()
    controls = {"feature": feature, "noise": noise}
    return Panel(controls, out, rows=[widgets.HBox([feature, noise])])


# ---------------------------------------------------------------- (b) runs of a stage


def run_selector(models, data, names=None) -> Panel:
    """A dropdown of runs; shows predicted-vs-true and residuals of that run's models.

    ``models``: a StageResult, ``{name: [net per run]}``, or a list of them.
    """
    models = plots.as_models(models)
    lengths = [len(nets) for nets in models.values() if isinstance(nets, (list, tuple))]
    n_runs = min(lengths, default=1)
    run = widgets.Dropdown(options=[(run_label(r), r) for r in range(n_runs)], value=0,
                           description="run")
    out = widgets.Output()

    def redraw(_=None):
        scores = {
            name: evaluate(plots.net_of_run(models[name], run.value), data.X_test, data.y_test)
            for name in (names or models)
        }
        text = f"{run_label(run.value).capitalize()}: " + ", ".join(
            f"{name} MSE {s['mse']:.4f}" for name, s in scores.items()
        )
        show(out, text, plots.prediction_panels(models, data, run=run.value, names=names))

    run.observe(redraw, names="value")
    redraw()
    return Panel({"run": run}, out)


# ---------------------------------------------------------------- retraining one student


def _notes(weights: dict, epochs: int) -> list[str]:
    """Plain-language remarks on extreme choices."""
    active = {t for t, w in weights.items() if w > 0}
    notes = []
    if epochs == 0:
        notes.append("0 epochs: nothing was trained. You see the run's shared starting "
                     "student, random weights before any learning.")
    if active == {"hard"}:
        notes.append("The teacher's terms have weight 0: the teacher is ignored, so this "
                     "is a student trained from scratch on the labels alone.")
    elif "hard" not in active and "hp" in active:
        notes.append("hard = 0: the labels are never used; the student only imitates the "
                     "teacher at the training inputs.")
    elif active == {"gr"}:
        notes.append("Only L_GR: the student copies the teacher's input gradients, but no "
                     "term tells it which values to predict. Expect a poor MSE.")
    return notes


def reference_scores(stages, names=None, run: int = 0) -> pd.DataFrame:
    """Mean test MSE over runs, and run ``run``'s MSE, of named models of some stages."""
    stages = stages if isinstance(stages, (list, tuple)) else [stages]
    results = merge(stages).results
    names = list(names) if names is not None else list(results)
    column = f"{run_label(run)} MSE"
    rows = [
        {"model": n, "mean MSE": float(np.mean(results[n]["mse"])),
         column: float(results[n]["mse"][run])}
        for n in names if n in results
    ]
    return pd.DataFrame(rows, columns=["model", "mean MSE", column])


SOURCE_LINES = {
    PREPARED: "Looked up: this student was trained in advance, when the notebook prepared "
              "the sliders' grid.",
    TRAINED_NOW: "Trained now: this combination is not among the prepared students.",
}


def _describe(result: RetrainedStudent, references: pd.DataFrame) -> str:
    w = result.weights
    weights = " · ".join(f"{t} {w[t]:g}" for t in ("hard", "hp", "gr") if w.get(t))
    lines = [
        *_notes(w, result.epochs),
        f"{YOURS} ({run_label(result.run)}, {weights}, {result.epochs} epochs, "
        f"batch {result.batch_size}): test MSE {result.mse:.4f}, R² {result.r2:.3f}",
        SOURCE_LINES[result.source],
    ]
    if result.role in set(references["model"]):
        lines.append(f"(Same loss, teacher and batches as {result.role}.)")
    if not references.empty:
        lines += ["", "The stage's students for comparison:",
                  references.to_string(index=False, float_format=lambda v: f"{v:.4f}")]
    return "\n".join(lines)


LIVE_REFRESH_S = 0.5  # a live curve is redrawn at most this often (and after epoch 1)


class LiveCurve:
    """An ``on_epoch`` callback that draws the training's loss and test MSE so far into
    an output area: after the first epoch, then at most every :data:`LIVE_REFRESH_S`
    seconds (a figure costs a few hundredths of a second; the last epoch is left to the
    final figure). ``drawn`` counts the figures shown."""

    def __init__(self, out: widgets.Output, num_epochs: int):
        self.out = out
        self.num_epochs = num_epochs
        self.drawn = 0
        self._last = 0.0

    def __call__(self, epoch: int, history) -> None:
        if epoch == self.num_epochs:
            return
        now = time.perf_counter()
        if self.drawn and now - self._last < LIVE_REFRESH_S:
            return
        total = [float(v[0]) for v in history.epochs["total"]]
        heldout = [float(v[0]) for v in history.heldout]
        show(self.out, f"Training now: epoch {epoch} of {self.num_epochs}…",
             plots.live_training(total, heldout, self.num_epochs))
        self.drawn += 1
        self._last = time.perf_counter()


def _retrain_and_show(out, exp, references, run, curves: bool, weights: dict, grid: str,
                      epochs: int, batch_size: int | None = None
                      ) -> RetrainedStudent | None:
    """Look the student up in the prepared grid ``grid``, else train it now with the
    stacked engine, its loss curve drawn live in ``out``; then show the result or the
    reason it could not be trained. Returns the result, or None."""
    problem = None
    with out:  # in a kernel this swallows exceptions (printing a traceback): catch inside
        try:
            result = prepared_student(exp, grid, weights, run=run, epochs=epochs,
                                      batch_size=batch_size)
            if result is None:
                show(out, "Training now…")
                result = retrain_student(exp, weights, run=run, teacher="expert",
                                         epochs=epochs, batch_size=batch_size,
                                         engine="stacked", progress=False,
                                         on_epoch=LiveCurve(out, epochs))
        except (ValueError, FloatingPointError) as exc:
            problem = exc
    if problem is not None:
        show(out, f"Cannot retrain with these settings: {problem}")
        return None
    column = f"{run_label(run)} MSE"
    scores = {YOURS: result.mse, **dict(zip(references["model"], references[column]))}
    history = result.history if curves else None
    fig = plots.retrained_student(result.net, exp.data, scores, YOURS, history=history)
    fig.axes[-1].set_title(f"{run_label(run).capitalize()}: test MSE beside the stage's "
                           "students", fontsize="medium")
    show(out, _describe(result, references), fig)
    return result


def _epochs_slider(settings) -> widgets.IntSlider:
    """Every position is a snapshot of the prepared grids (see kdteach.lesson.slider_grid)."""
    step, maximum = slider_grid.epochs_range(settings)
    return widgets.IntSlider(value=settings.epochs_student, min=0, max=maximum, step=step,
                             description="epochs", continuous_update=False)


def _weight_slider(name: str, value: float) -> widgets.FloatSlider:
    return widgets.FloatSlider(value=value, min=0.0, max=1.0, step=slider_grid.HARD_STEP,
                               description=name, readout_format=".2f",
                               continuous_update=False)


def _retrain_button() -> widgets.Button:
    return widgets.Button(description="Retrain", button_style="primary", icon="refresh")


# ---------------------------------------------------------------- (c) the grid search, live


def retrain_explorer(exp, stages=None, run: int = 0) -> Panel:
    """Pick the hard weight (L_HP = 1 − hard) and the epochs, press Retrain: one student of
    run ``run`` is distilled from that run's expert and compared with the stage's students.

    ``stages``: where the reference students come from (default: parts 2 and 3).
    """
    s = exp.settings
    stages = stages if stages is not None else [exp.run("expert_teacher"), exp.run("grid_search")]
    grid = next((st for st in stages if st.best), None)
    names = [SCRATCH, DISTILLED_EXPERT] + ([grid.best] if grid is not None else [])
    references = reference_scores(stages, names, run)

    hard = _weight_slider("hard", s.kd_weights.get("hard", 0.3))
    hp = _weight_slider("L_HP", round(1.0 - hard.value, 10))
    hp.disabled = True  # it follows the hard weight: hp = 1 - hard
    epochs = _epochs_slider(s)
    button = _retrain_button()
    out = widgets.Output()
    show(out, "Choose the weights and the epochs, then press Retrain.")

    def follow(change):
        hp.value = round(1.0 - change["new"], 10)

    def on_click(_):
        _retrain_and_show(out, exp, references, run, curves=False,
                          weights={"hard": hard.value, "hp": round(1.0 - hard.value, 10)},
                          grid="retrain", epochs=epochs.value)

    hard.observe(follow, names="value")
    button.on_click(on_click)
    controls = {"hard": hard, "hp": hp, "epochs": epochs, "retrain": button}
    rows = [widgets.HBox([hard, hp]), widgets.HBox([epochs, button])]
    return Panel(controls, out, rows=rows)


# ---------------------------------------------------------------- (d) the L_GR weight

BATCH_SIZES = (16, 32, 64, 128, 256, 512)


def lgr_explorer(exp, stages=None, run: int = 0) -> Panel:
    """The L_GR weight by powers of ten (10⁻² to 10⁴, or off), the hard and L_HP weights, the
    batch size and the epochs; Retrain trains one student of run ``run`` from that run's expert and
    shows its MSE and its loss-term curves.

    ``stages``: where the reference students come from (default: part 4).
    """
    s = exp.settings
    stages = stages if stages is not None else [exp.run("gradient_regularisation")]
    names = [SCRATCH, DISTILLED_EXPERT, LGR]
    references = reference_scores(stages, names, run)

    w = s.gr_weights
    gr = widgets.FloatLogSlider(value=w.get("gr", 0.3), base=10, min=slider_grid.GR_LOG_MIN,
                                max=slider_grid.GR_LOG_MAX, step=slider_grid.GR_LOG_STEP,
                                description="L_GR", readout_format=".3g",
                                continuous_update=False)
    use_gr = widgets.Checkbox(value=True, description="use L_GR", indent=False)
    hard = _weight_slider("hard", w.get("hard", 0.2))
    hp = _weight_slider("L_HP", w.get("hp", 0.5))
    batch = widgets.Dropdown(options=[b for b in BATCH_SIZES if b <= len(exp.data.X_train)],
                             value=s.batch_size, description="batch size")
    epochs = _epochs_slider(s)
    button = _retrain_button()
    out = widgets.Output()
    show(out, "Choose the weights, the batch size and the epochs, then press Retrain.")

    def on_click(_):
        _retrain_and_show(out, exp, references, run, curves=True,
                          weights={"hard": hard.value, "hp": hp.value,
                                   "gr": gr.value if use_gr.value else 0.0},
                          grid="lgr", epochs=epochs.value, batch_size=batch.value)

    button.on_click(on_click)
    controls = {"gr": gr, "use_gr": use_gr, "hard": hard, "hp": hp, "batch_size": batch,
                "epochs": epochs, "retrain": button}
    rows = [widgets.HBox([gr, use_gr]), widgets.HBox([hard, hp]),
            widgets.HBox([batch, epochs, button])]
    return Panel(controls, out, rows=rows)


# ---------------------------------------------------------------- (e) early stopping's patience


def _patience_text(table: pd.DataFrame, patience: int, run: int, stopping) -> str:
    """One line per early-stopped student: the epoch it keeps in ``run`` and the mean test
    MSE over the runs, beside its twin trained for every epoch."""
    twins = {STOPPED[k]: FIT[k] for k in STOPPED}
    lines = [f"patience {patience} epochs:"]
    for model, rows in table.groupby("model", sort=False):
        mine = rows[rows["run"] == run + 1].iloc[0]
        all_epochs = np.mean(stopping.results[twins[model]]["mse"])
        lines.append(f"- {model}: in {run_label(run)} keeps epoch {mine['best epoch']} "
                     f"(stopped at {mine['stopped at']}); mean test MSE over the runs "
                     f"{rows['test MSE'].mean():.4f}, trained every epoch {all_epochs:.4f}")
    return "\n".join(lines)


def patience_explorer(stopping, run: int = 0) -> Panel:
    """The patience of early stopping, from 1 to the ``early_stopping`` stage's own, and a
    run: where each early-stopped student would stop, which epoch it keeps, and that
    epoch's test MSE, beside its twin trained for every epoch.

    Nothing is trained: a smaller patience stops the same training earlier, so every
    position is replayed from the validation and test curves recorded in training
    (:func:`kdteach.protocol.analysis.stopping_at_patience`) and answers at once."""
    s = stopping.settings
    patience = widgets.IntSlider(value=s.patience, min=1, max=s.patience, step=1,
                                 description="patience", continuous_update=False)
    runs = widgets.Dropdown(options=[(run_label(r), r) for r in range(s.n_runs)], value=run,
                            description="run")
    out = widgets.Output()

    def update(_=None):
        table = stopping_at_patience(stopping, patience.value)
        show(out, _patience_text(table, patience.value, runs.value, stopping),
             plots.patience_curves(stopping, table, runs.value))

    patience.observe(update, names="value")
    runs.observe(update, names="value")
    update()
    return Panel({"patience": patience, "run": runs}, out,
                 rows=[widgets.HBox([patience, runs])])
