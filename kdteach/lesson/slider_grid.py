"""The positions of the lesson widgets' sliders, and which of them are prepared in advance.

A slider answers at once when the student it asks for was trained beforehand: one stacked
training (:func:`kdteach.core.stacked.train_many`) of every position of a widget's main
slider, to the profile's student epochs, with a copy of the weights kept at every position
of the epochs slider up to there (the copy after epoch e is the student trained for e
epochs). Longer trainings, and the widgets' other controls, train live: preparing every
combination would cost more than a class can wait for (see :func:`groups`).
:func:`slider_grid` trains and caches it; :func:`prepared_student` looks a position up.

:func:`groups` says *which* students: the widgets build their sliders from the same
numbers, so every position a learner can reach on the main slider is in the grid. Every
student sees the batches :func:`kdteach.lesson.retrain.retrain_student` would give it (the
same role, hence the same shuffle seed), so a looked-up student is the one
``retrain_student(..., engine="stacked")`` trains, up to the rounding of the batched
matrix products.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from kdteach.core.losses import DistillationLoss
from kdteach.core.stacked import train_many
from kdteach.core.train import HELDOUT, evaluate
from kdteach.lesson.retrain import PREPARED, RetrainedStudent, check_run, role, shown_weights
from kdteach.protocol.keys import data_key, teacher_key, weights_fingerprint
from kdteach.protocol.names import run_label
from kdteach.protocol.seeds import initial_student, shuffle_seed
from kdteach.protocol.settings import Settings

GRIDS = ("retrain", "lgr")  # retrain_explorer (notebook 03), lgr_explorer (notebook 04)
EPOCH_POSITIONS = 12  # at most this many epochs-slider steps up to the profile's epochs
HARD_STEP = 0.05  # the hard-weight sliders: 0..1 in steps of 0.05
GR_LOG_MIN, GR_LOG_MAX, GR_LOG_STEP = -2.0, 4.0, 1.0  # the L_GR slider: 10^-2..10^4 by 10x


def epochs_step(epochs: int) -> int:
    """The epochs slider's step: the smallest divisor of the profile's student ``epochs``
    that cuts them into at most :data:`EPOCH_POSITIONS` steps (50 for 600, 4 for 40)."""
    if epochs < 1:
        return 1
    return next(d for d in range(1, epochs + 1)
                if epochs % d == 0 and epochs // d <= EPOCH_POSITIONS)


def epochs_range(settings: Settings) -> tuple[int, int]:
    """``(step, maximum)`` of the epochs slider: up to twice the profile's student epochs
    (at least 10), a whole number of steps, so the profile's epochs are a position."""
    step = epochs_step(settings.epochs_student)
    maximum = step * math.ceil(max(2 * settings.epochs_student, 10) / step)
    return step, maximum


def hard_positions() -> list[float]:
    """Every position of a hard-weight slider: 0, 0.05, ..., 1."""
    n = round(1.0 / HARD_STEP)
    return [round(k * HARD_STEP, 10) for k in range(n + 1)]


def gr_positions() -> list[float]:
    """Every position of the L_GR slider: 10^-3, 10^-2.75, ..., 10^4."""
    n = round((GR_LOG_MAX - GR_LOG_MIN) / GR_LOG_STEP)
    return [10.0 ** (GR_LOG_MIN + k * GR_LOG_STEP) for k in range(n + 1)]


@dataclass(frozen=True)
class Group:
    """Students trained together: one batch size, one number of epochs, a weight dict
    (``hard``, ``hp``, ``gr``) per student; snapshots at every ``snapshot_step`` epochs."""

    batch_size: int
    epochs: int
    snapshot_step: int
    weights: tuple  # of dicts

    @property
    def snapshots(self) -> list[int]:
        return list(range(0, self.epochs + 1, self.snapshot_step))


def groups(name: str, settings: Settings) -> list[Group]:
    """What the grid ``name`` trains, each student for the profile's epochs, at its batch size.

    * ``"retrain"``: every hard weight h (L_HP = 1 − h);
    * ``"lgr"``: every L_GR position, the default 0.3 and "off", at the profile's hard and
      L_HP weights; and L_GR alone (hard = L_HP = 0), for notebook 04's questions.

    Every student with L_GR costs a double backward pass per step, more than twice a plain
    student's time (11 students at the full profile, one thread: 78 against 36 ms per
    epoch), which is why the L_GR slider moves by powers of ten and other batch sizes
    train live.
    """
    step, _ = epochs_range(settings)
    batch, epochs = settings.batch_size, settings.epochs_student
    if name == "retrain":
        weights = tuple({"hard": h, "hp": round(1.0 - h, 10)} for h in hard_positions())
        return [Group(batch, epochs, step, weights)]
    if name == "lgr":
        w = settings.gr_weights
        hard, hp, gr = w.get("hard", 0.0), w.get("hp", 0.0), w.get("gr", 0.0)
        values = sorted({*gr_positions(), gr} - {0.0})
        main = tuple([{"hard": hard, "hp": hp, "gr": g} for g in values]
                     + [{"hard": hard, "hp": hp, "gr": 0.0}, {"hard": 0.0, "hp": 0.0, "gr": gr}])
        return [Group(batch, epochs, step, main)]
    raise ValueError(f"unknown slider grid {name!r}; valid: {', '.join(GRIDS)}")


def weights_key(weights: dict) -> tuple:
    """Loss weights compared to 8 significant digits, zero weights dropped: a slider's
    value sent back by the browser may differ from Python's in its last bits."""
    return tuple(sorted((t, f"{float(w):.8g}") for t, w in weights.items() if w))


# -- the prepared students ----------------------------------------------------------------


@dataclass(frozen=True)
class SliderGridEntry:
    """One prepared student: its loss weights, batch size and role, a copy of its weights at
    every snapshot epoch, its test MSE and R² there, and one value per epoch of each loss
    term and of the test MSE (``heldout``)."""

    weights: dict
    batch_size: int
    role: str
    snapshots: list  # epochs
    states: list  # one state_dict per snapshot
    mse: list
    r2: list
    history: dict  # {term: float64 tensor, one value per epoch}


_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # exp → {(name, run): grid}


def slider_grid_key(exp, name: str, run: int = 0) -> dict:
    s = exp.settings
    return {
        "what": f"slider-grid-{name}", "run": run, "engine": "stacked",
        "groups": [(g.batch_size, g.epochs, g.snapshots, list(g.weights))
                   for g in groups(name, s)],
        "lr": s.lr_student, "weight_decay": s.weight_decay_student,
        "teacher": teacher_key(s, "expert", run),
        "teacher_weights": weights_fingerprint(exp.teachers("expert")[run]), **data_key(s),
    }


def slider_grid(exp, name: str, run: int = 0) -> list[SliderGridEntry]:
    """The prepared students of a widget's sliders (``"retrain"``: lesson 03's
    :func:`~kdteach.lesson.widgets.retrain_explorer`; ``"lgr"``: lesson 04's
    :func:`~kdteach.lesson.widgets.lgr_explorer`) for run ``run``, from run ``run``'s expert:
    loaded from the cache, else trained (each group of :func:`groups` in one stacked
    training, with snapshots at every epochs-slider position) and stored."""
    check_run(exp.settings, run)
    return _grid(exp, name, run, build=True)


def _grid(exp, name: str, run: int, build: bool) -> list[SliderGridEntry] | None:
    """The grid, memoised per experiment: from the cache, else trained and stored when
    ``build``; a lookup (not ``build``) trains nothing, not even the teachers, and gives
    None for what is not prepared."""
    prepared = _PREPARED.setdefault(exp, {})
    if (name, run) not in prepared:
        if not build and (name not in GRIDS or not exp.has_teachers("expert")):
            return None
        cache_name, key = f"slider-grid-{name}-run{run}", slider_grid_key(exp, name, run)
        payload = (exp.cache.load_or_build(cache_name, key,
                                           lambda: _train_slider_grid(exp, name, run))
                   if build else exp.cache.load(cache_name, key))
        if payload is None:
            return None
        prepared[(name, run)] = [SliderGridEntry(**e) for e in payload["entries"]]
    return prepared[(name, run)]


def _train_slider_grid(exp, name: str, run: int) -> dict:
    exp.check_may_train(f"the {name!r} slider grid of {run_label(run)}")
    s = exp.settings
    expert = exp.teachers("expert")[run]
    entries = []
    for group in groups(name, s):
        losses = [DistillationLoss.from_weights(w) for w in group.weights]
        roles = [role(s, loss, "expert") for loss in losses]
        trained, history = train_many(
            [initial_student(run, s.n_features).to(exp.device) for _ in losses],
            exp.data.X_train, exp.data.y_train, losses,
            [expert if loss.needs_teacher else None for loss in losses],
            num_epochs=group.epochs, lr=s.lr_student, weight_decay=s.weight_decay_student,
            batch_size=group.batch_size, seeds=[shuffle_seed(run, r) for r in roles],
            labels=[f"{loss!r}" for loss in losses], heldout=exp.heldout,
            snapshot_epochs=group.snapshots, progress=exp.progress,
            desc=f"slider grid: {len(losses)} students, batch {group.batch_size}")
        for m, (loss, name_m) in enumerate(zip(losses, roles)):
            states = [history.snapshots[e][m] for e in group.snapshots]
            scores = [evaluate(exp.student_from_state(state), exp.data.X_test, exp.data.y_test)
                      for state in states]
            curves = {t: torch.tensor(np.array([v[m] for v in history.epochs[t]]),
                                      dtype=torch.float64) for t in [*loss.terms, "total"]}
            curves[HELDOUT] = torch.tensor(np.array([v[m] for v in history.heldout]),
                                           dtype=torch.float64)
            entries.append(asdict(SliderGridEntry(
                weights=shown_weights(loss), batch_size=group.batch_size, role=name_m,
                snapshots=group.snapshots, states=states, mse=[x["mse"] for x in scores],
                r2=[x["r2"] for x in scores], history=curves)))
    return {"entries": entries}


def prepared_student(exp, name: str, weights: dict, run: int = 0, epochs: int | None = None,
                     batch_size: int | None = None) -> RetrainedStudent | None:
    """The student of the prepared grid ``name`` with these loss ``weights``, epochs and
    batch size (defaults: the profile's), distilled from run ``run``'s expert, with
    ``source`` :data:`~kdteach.lesson.retrain.PREPARED`; None when the grid has no such
    student or has not been prepared (:func:`slider_grid` is never started from here:
    preparing is announced, never a surprise). ValueError for weights that cannot be
    trained or a run that does not exist, like ``retrain_student``."""
    loss = DistillationLoss.from_weights(weights)  # ValueError for impossible weights
    s = exp.settings
    check_run(s, run)
    epochs = s.epochs_student if epochs is None else epochs
    batch_size = s.batch_size if batch_size is None else batch_size
    grid = _grid(exp, name, run, build=False)
    if grid is None:
        return None
    wanted = weights_key(loss.weights)
    for entry in grid:
        if (entry.batch_size == batch_size and epochs in entry.snapshots
                and weights_key(entry.weights) == wanted):
            return _prepared_result(exp, entry, run, int(epochs))
    return None


def _prepared_result(exp, entry: SliderGridEntry, run: int, epochs: int) -> RetrainedStudent:
    i = entry.snapshots.index(epochs)
    frames = [pd.DataFrame({"run": run + 1, "epoch": np.arange(1, epochs + 1), "term": term,
                            "loss": values[:epochs].numpy()})
              for term, values in entry.history.items()]
    loss = DistillationLoss.from_weights(dict(entry.weights))
    return RetrainedStudent(
        weights=dict(entry.weights), teacher="expert" if loss.needs_teacher else None,
        epochs=epochs, batch_size=entry.batch_size, run=run, role=entry.role,
        mse=entry.mse[i], r2=entry.r2[i], net=exp.student_from_state(entry.states[i]),
        history=pd.concat(frames, ignore_index=True), source=PREPARED)
