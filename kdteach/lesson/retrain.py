"""One student retrained now, for the lessons' sliders and Try-it cells.

:func:`retrain_student` trains one student of one run from its shared initial weights,
distilled from that run's cached teacher, and hands back a :class:`RetrainedStudent`.
:func:`kdteach.lesson.slider_grid.prepared_student` hands back the same record for a
student trained in advance.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from kdteach.core.losses import DistillationLoss
from kdteach.core.stacked import train_many
from kdteach.core.train import evaluate, train
from kdteach.protocol.names import run_label
from kdteach.protocol.recipes import check_teacher_kind
from kdteach.protocol.seeds import initial_student, shuffle_seed
from kdteach.protocol.stages import training_set_jobs

ENGINES = ("loop", "stacked")
TRAINED_NOW = "trained now"  # a retrained student's ``source``
PREPARED = "prepared"  # a student looked up in a prepared slider grid


@dataclass(frozen=True)
class RetrainedStudent:
    """A student trained now (``source`` :data:`TRAINED_NOW`) or looked up in a prepared
    slider grid (:data:`PREPARED`)."""

    weights: dict  # hard, hp and gr always; jac and feat when used
    teacher: str | None  # the kind of teacher, None when the loss does not use one
    epochs: int
    batch_size: int
    run: int  # 0-based
    role: str  # the stage student it matches, or a name made from its loss
    mse: float  # test set
    r2: float
    net: object  # the trained StudentNet, in eval mode
    history: pd.DataFrame  # run (from 1), epoch, term, loss (``heldout``: test MSE)
    source: str


def shown_weights(loss: DistillationLoss) -> dict:
    """The weights a retrained student reports: hard, hp and gr always, jac/feat if used."""
    shown = ("hard", "hp", "gr") + tuple(t for t in ("jac", "feat") if t in loss.weights)
    return {t: float(loss.weights.get(t, 0.0)) for t in shown}


def check_run(settings, run) -> None:
    """A run index the settings have: 0..n_runs − 1."""
    if isinstance(run, bool) or not (isinstance(run, int) and 0 <= run < settings.n_runs):
        raise ValueError(f"run must be one of {run_label(0)}..{run_label(settings.n_runs - 1)} "
                         f"(index 0..{settings.n_runs - 1}), got index {run!r}")


def role(settings, loss: DistillationLoss, teacher: str | None) -> str:
    """The name that fixes a retrained student's shuffle: the stage student with the same
    loss weights and teacher when there is one (so it sees the same batches and, with the
    profile's epochs and batch size, ends with the same weights), else a name made from the
    weights and the teacher."""
    teacher = teacher if loss.needs_teacher else None
    for job in training_set_jobs(settings):
        if job.loss == loss and job.teacher == teacher:
            return job.name
    weights = ", ".join(f"{t}={w:g}" for t, w in loss.weights.items())
    return f"Student ({weights}" + (f", from {teacher})" if teacher else ")")


def retrain_student(exp, weights: dict, run: int = 0, teacher: str = "expert",
                    epochs: int | None = None, batch_size: int | None = None,
                    progress: bool | None = None, engine: str = "loop",
                    on_epoch=None) -> RetrainedStudent:
    """Train one student of run ``run`` of the experiment ``exp`` with the loss ``weights``
    (``hard``, ``hp``, ``gr``), distilled from that run's cached ``teacher`` (lesson 03,
    section 4; lesson 04's sliders).

    ``engine="loop"`` uses the readable one-model loop (:func:`kdteach.core.train.train`),
    ``"stacked"`` the stages' engine (:func:`kdteach.core.stacked.train_many`), with the
    student beside an identical twin: a stack of one takes other matmul kernels than a stack
    of several, whose sums round differently, so only with the twin does a student trained
    now agree with the prepared one to about 1e-7 (bit for bit where the stacks are small).
    Over hundreds of epochs even 1e-7 can grow into a visible difference.
    ``on_epoch(epoch, history)`` is called after every epoch. ``epochs`` and ``batch_size``
    default to the profile's; 0 epochs is the untrained student. ValueError for what cannot
    be trained (every weight 0, a run that does not exist, a batch larger than the data).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    s = exp.settings
    epochs = s.epochs_student if epochs is None else epochs
    if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 0:
        raise ValueError(f"epochs must be a whole number >= 0, got {epochs!r}")
    check_run(s, run)
    check_teacher_kind(teacher)
    loss = DistillationLoss.from_weights(weights)  # ValueError for impossible weights
    name = role(s, loss, teacher)
    teacher_net = exp.teachers(teacher)[run] if loss.needs_teacher else None
    net = initial_student(run, s.n_features).to(exp.device)
    batch_size = s.batch_size if batch_size is None else batch_size
    common = dict(num_epochs=int(epochs), lr=s.lr_student, weight_decay=s.weight_decay_student,
                  batch_size=batch_size, heldout=exp.heldout, on_epoch=on_epoch,
                  progress=exp.progress if progress is None else progress, desc=f"{loss!r}")
    X, y = exp.data.X_train, exp.data.y_train
    if engine == "loop":
        history = train(net, X, y, loss, teacher_net, seed=shuffle_seed(run, name), **common)
    else:  # a stack of two twins: one model alone would take another matmul kernel
        (net, _), history = train_many([net, net], X, y, [loss] * 2, [teacher_net] * 2,
                                       seeds=[shuffle_seed(run, name)] * 2,
                                       labels=[f"{loss!r}", "twin"], **common)
    scores = evaluate(net, exp.data.X_test, exp.data.y_test)
    frame = history.to_frame()
    frame = frame[frame["model"] == history.labels[0]].drop(columns="model")
    frame = frame.reset_index(drop=True)
    frame.insert(0, "run", run + 1)
    return RetrainedStudent(
        weights=shown_weights(loss), teacher=teacher if loss.needs_teacher else None,
        epochs=int(epochs), batch_size=batch_size, run=run, role=name, mse=scores["mse"],
        r2=scores["r2"], net=net, history=frame, source=TRAINED_NOW)
