"""ipywidgets explorers for the notebooks: move a slider, see the figure change.

Each ``*_explorer``/``*_selector`` function returns a :class:`Panel`, an ordinary
``VBox`` that also keeps its controls (``panel.controls``, by name) and its output
area (``panel.out``), so a test can drive it without a browser::

    panel = retrain_explorer(exp)
    panel.controls["hard"].value = 0.1
    panel.controls["retrain"].click()
    print(output_text(panel.out))

Retraining is synchronous and uses the readable one-model loop,
:func:`kdteach.train.train`, with its progress bar. The logic lives in plain
functions (:func:`retrain_student`, :func:`reference_scores`) that work without
any widget. Impossible choices (every loss weight 0, say) are reported in the
output area as a sentence, never as a traceback.
"""

from __future__ import annotations

import base64
import io
import sys
from importlib.metadata import PackageNotFoundError, version

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import plots
from .config import get_settings
from .experiments import (
    DISTILLED_EXPERT,
    LGR,
    SCRATCH,
    grid_name,
    initial_student,
    shuffle_seed,
)
from .losses import DistillationLoss
from .train import evaluate, train

YOURS = "your student"

# ---------------------------------------------------------------- the output area


class Panel(widgets.VBox):
    """A VBox that remembers its controls (by name) and its output area."""

    def __init__(self, controls: dict, out: widgets.Output, rows=None, **kwargs):
        super().__init__(children=[*(rows or controls.values()), out], **kwargs)
        self.controls = controls
        self.out = out


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


def output_figures(out: widgets.Output) -> int:
    """How many images an output area shows."""
    return sum("image/png" in item.get("data", {}) for item in out.outputs)


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
        show(out, text, plots.data_explorer_figure(feature.value, noise.value))

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
    run = widgets.Dropdown(options=[(f"run {r + 1}", r) for r in range(n_runs)], value=0,
                           description="run")
    out = widgets.Output()

    def redraw(_=None):
        scores = {
            name: evaluate(plots.net_of_run(models[name], run.value), data.X_test, data.y_test)
            for name in (names or models)
        }
        text = f"Run {run.value + 1}: " + ", ".join(
            f"{name} MSE {s['mse']:.4f}" for name, s in scores.items()
        )
        show(out, text, plots.prediction_panels(models, data, run=run.value, names=names))

    run.observe(redraw, names="value")
    redraw()
    return Panel({"run": run}, out)


# ---------------------------------------------------------------- retraining one student


def _role(weights: dict, settings) -> str:
    """The shuffle-seed role: the stage's own name when the weights match one of its
    students, so the retrained student sees the same batches as that student."""
    if weights == {"hard": 1.0}:
        return SCRATCH
    if weights == {t: float(w) for t, w in settings.gr_weights.items() if w > 0}:
        return LGR
    gr = weights.get("gr", 0.0)
    name = grid_name({"hard": weights.get("hard", 0.0), "hp": weights.get("hp", 0.0)})
    return name + (f"_GR={gr:g}" if gr else "")


def _notes(weights: dict, epochs: int) -> list[str]:
    """Plain-language remarks on extreme choices."""
    notes = []
    if epochs == 0:
        notes.append("0 epochs: nothing was trained. You see the run's shared starting "
                     "student, random weights before any learning.")
    if set(weights) == {"hard"}:
        notes.append("The teacher's terms have weight 0: the teacher is ignored, so this "
                     "is a student trained from scratch on the labels alone.")
    elif "hard" not in weights and "hp" in weights:
        notes.append("hard = 0: the labels are never used; the student only imitates the "
                     "teacher, so it can at best get as good as the teacher.")
    elif set(weights) == {"gr"}:
        notes.append("Only L_GR: the student copies the teacher's input gradients, but no "
                     "term tells it which values to predict. Expect a poor MSE.")
    return notes


def retrain_student(exp, hard: float, epochs: int | None = None, *, hp: float | None = None,
                    gr: float = 0.0, run: int = 0, teacher: str = "expert",
                    progress: bool = True) -> dict:
    """Train one student of run ``run`` from its shared initial weights, distilled from
    that run's (cached) ``teacher`` with ``hard·MSE + hp·L_HP + gr·L_GR``.

    ``hp`` defaults to ``1 - hard`` (the grid search's pairs); ``epochs`` to the
    profile's student epochs (0 is allowed: the untrained student). Raises ValueError
    for weights or epochs that cannot be trained (e.g. every weight 0).

    Returns a dict: ``weights``, ``epochs``, ``run``, ``mse``, ``r2`` (test set),
    ``net``, ``history`` (a long DataFrame of the loss terms) and ``notes`` (remarks
    on extreme choices, as sentences).
    """
    s = exp.settings
    epochs = s.epochs_student if epochs is None else epochs
    if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 0:
        raise ValueError(f"epochs must be a whole number >= 0, got {epochs!r}")
    epochs = int(epochs)
    if not 0 <= run < s.n_runs:
        raise ValueError(f"run must lie in 0..{s.n_runs - 1}, got {run!r}")
    hp = round(1.0 - hard, 10) if hp is None else hp
    loss = DistillationLoss(hard=hard, hp=hp, gr=gr)  # ValueError for impossible weights
    teacher_net = exp.teachers(teacher)[run] if loss.needs_teacher else None
    net = initial_student(run, s.n_features).to(exp.device)
    data = exp.data
    history = train(
        net, data.X_train, data.y_train, loss, teacher_net,
        num_epochs=epochs, lr=s.lr_student, weight_decay=s.weight_decay_student,
        batch_size=s.batch_size, seed=shuffle_seed(run, _role(loss.weights, s)),
        progress=progress, desc=f"{YOURS} ({loss!r})",
    )
    scores = evaluate(net, data.X_test, data.y_test)
    return {
        "weights": {"hard": float(hard), "hp": float(hp), "gr": float(gr)},
        "epochs": epochs,
        "run": run,
        "mse": scores["mse"],
        "r2": scores["r2"],
        "net": net,
        "history": history.to_frame(),
        "notes": _notes(loss.weights, epochs),
    }


def reference_scores(stages, names=None, run: int = 0) -> pd.DataFrame:
    """Mean test MSE over runs, and run ``run``'s MSE, of named models of some stages."""
    stages = stages if isinstance(stages, (list, tuple)) else [stages]
    results = {}
    for stage in stages:
        for name, data in stage.results.items():
            results.setdefault(name, data)
    names = list(names) if names is not None else list(results)
    rows = [
        {"model": n, "mean MSE": float(np.mean(results[n]["mse"])),
         f"run {run + 1} MSE": float(results[n]["mse"][run])}
        for n in names if n in results
    ]
    return pd.DataFrame(rows, columns=["model", "mean MSE", f"run {run + 1} MSE"])


def _describe(result: dict, references: pd.DataFrame) -> str:
    w = result["weights"]
    weights = " · ".join(f"{t} {w[t]:g}" for t in ("hard", "hp", "gr") if t in w)
    lines = [
        *result["notes"],
        f"{YOURS} (run {result['run'] + 1}, {weights}, {result['epochs']} epochs): "
        f"test MSE {result['mse']:.4f}, R² {result['r2']:.3f}",
    ]
    if not references.empty:
        lines += ["", "The stage's students for comparison:",
                  references.to_string(index=False, float_format=lambda v: f"{v:.4f}")]
    return "\n".join(lines)


def _retrain_and_show(out, exp, references, run, curves: bool, **kwargs) -> dict | None:
    """Retrain (progress bar in ``out`` in a notebook), then show the result or the reason
    it could not be trained. Returns the result, or None."""
    show(out, "Training…")
    problem = None
    with out:  # in a kernel this swallows exceptions (printing a traceback): catch inside
        try:
            result = retrain_student(exp, run=run, progress=exp.progress, **kwargs)
        except (ValueError, FloatingPointError) as exc:
            problem = exc
    if problem is not None:
        show(out, f"Cannot retrain with these settings: {problem}")
        return None
    run_col = f"run {run + 1} MSE"
    scores = {YOURS: result["mse"], **dict(zip(references["model"], references[run_col]))}
    history = result["history"] if curves else None
    fig = plots.retrained_student(result["net"], exp.data, scores, YOURS, history=history)
    fig.axes[-1].set_title(f"Run {run + 1}: test MSE beside the stage's students",
                           fontsize="medium")
    show(out, _describe(result, references), fig)
    return result


def _epochs_slider(settings) -> widgets.IntSlider:
    return widgets.IntSlider(value=settings.epochs_student, min=0,
                             max=max(2 * settings.epochs_student, 10), description="epochs",
                             continuous_update=False)


def _weight_slider(name: str, value: float) -> widgets.FloatSlider:
    return widgets.FloatSlider(value=value, min=0.0, max=1.0, step=0.05, description=name,
                               readout_format=".2f", continuous_update=False)


# ---------------------------------------------------------------- (c) the grid search, live


def retrain_explorer(exp, stages=None, run: int = 0) -> Panel:
    """Pick the hard weight (L_HP = 1 − hard) and the epochs, press Retrain: one student of
    run ``run`` is distilled from that run's expert and compared with the stage's students.

    ``stages``: where the reference students come from (default: parts 2 and 3).
    """
    s = exp.settings
    stages = stages if stages is not None else [exp.expert_teacher(), exp.grid_search()]
    grid = next((st for st in stages if st.best), None)
    names = [SCRATCH, DISTILLED_EXPERT] + ([grid.best] if grid is not None else [])
    references = reference_scores(stages, names, run)

    hard = _weight_slider("hard", s.kd_weights.get("hard", 0.3))
    hp = _weight_slider("L_HP", round(1.0 - hard.value, 10))
    hp.disabled = True  # it follows the hard weight: hp = 1 - hard
    epochs = _epochs_slider(s)
    button = widgets.Button(description="Retrain", button_style="primary", icon="refresh")
    out = widgets.Output()
    show(out, "Choose the weights and the epochs, then press Retrain.")

    def follow(change):
        hp.value = round(1.0 - change["new"], 10)

    def on_click(_):
        _retrain_and_show(out, exp, references, run, curves=False, hard=hard.value,
                          epochs=epochs.value)

    hard.observe(follow, names="value")
    button.on_click(on_click)
    controls = {"hard": hard, "hp": hp, "epochs": epochs, "retrain": button}
    rows = [widgets.HBox([hard, hp]), widgets.HBox([epochs, button])]
    return Panel(controls, out, rows=rows)


# ---------------------------------------------------------------- (d) the L_GR weight


def lgr_explorer(exp, stages=None, run: int = 0) -> Panel:
    """Sliders for the three loss weights (L_GR's first) and the epochs; Retrain trains one
    L_GR student of run ``run`` and shows its MSE and its loss-term curves.

    ``stages``: where the reference students come from (default: part 4).
    """
    s = exp.settings
    stages = stages if stages is not None else [exp.gradient_regularisation()]
    grid_best = next((st.best for st in stages if st.best), None)
    names = [SCRATCH, grid_best, LGR]
    references = reference_scores(stages, [n for n in names if n], run)

    w = s.gr_weights
    gr = _weight_slider("L_GR", w.get("gr", 0.3))
    hard = _weight_slider("hard", w.get("hard", 0.2))
    hp = _weight_slider("L_HP", w.get("hp", 0.5))
    epochs = _epochs_slider(s)
    button = widgets.Button(description="Retrain", button_style="primary", icon="refresh")
    out = widgets.Output()
    show(out, "Choose the weights and the epochs, then press Retrain.")

    def on_click(_):
        _retrain_and_show(out, exp, references, run, curves=True, hard=hard.value,
                          hp=hp.value, gr=gr.value, epochs=epochs.value)

    button.on_click(on_click)
    controls = {"gr": gr, "hard": hard, "hp": hp, "epochs": epochs, "retrain": button}
    rows = [widgets.HBox([gr, hard, hp]), widgets.HBox([epochs, button])]
    return Panel(controls, out, rows=rows)
