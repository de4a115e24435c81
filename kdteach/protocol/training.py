"""How the protocol calls the engine: one stacked training for a kind of teacher, one for a
part's students. The experiment decides what to train and :mod:`kdteach.protocol.checkpoints`
caches it; these train it."""

from __future__ import annotations

import pandas as pd

from kdteach.core.stacked import train_many
from kdteach.protocol.names import run_label
from kdteach.protocol.overlap import stop_when
from kdteach.protocol.recipes import TEACHER_RECIPES
from kdteach.protocol.results import TrainedStudents, history_frame
from kdteach.protocol.seeds import initial_student, initial_teacher, shuffle_seed


def train_teachers(exp, kind: str, runs: list[int], stop=None) -> tuple[list, pd.DataFrame]:
    """The teachers of ``kind`` for ``runs``, trained together in one stack; and their
    long history."""
    s, recipe = exp.settings, TEACHER_RECIPES[kind]
    X, y = exp.training_data(recipe.trained_on)
    trained, history = train_many(
        [initial_teacher(kind, run, s.n_features).to(exp.device) for run in runs], X, y,
        num_epochs=s.epochs_teacher, lr=s.lr_teacher,
        weight_decay=getattr(s, recipe.weight_decay), batch_size=s.batch_size,
        seeds=[shuffle_seed(run, recipe.shuffle_role) for run in runs],
        labels=[f"{run_label(run)}: {recipe.name}" for run in runs],
        heldout=exp.heldout, progress=exp.progress,
        desc=f"{recipe.name} x{len(runs)} runs", on_epoch=stop_when(stop))
    return trained, history_frame(history, [(recipe.name, run) for run in runs])


def train_students(exp, jobs, teachers: dict, X, y, epochs: int, stopping=None, stop=None,
                   stop_epochs: dict | None = None) -> TrainedStudents:
    """Every job for every run, trained together in one stack from run ``i``'s shared
    initial student, each with its own shuffle; ``teachers``: {kind: [net per run]}.

    ``stop_epochs={job name: [epochs per run]}``: each model is trained for its own number
    of epochs (the stack trains for the largest, and each model keeps its weights of its
    own last epoch, bit for bit what training it alone that long gives); ``epochs`` is
    then ignored, and each model's history ends at its own last epoch."""
    s = exp.settings
    runs_jobs = [(run, job) for run in range(s.n_runs) for job in jobs]  # run-major
    own_epochs = None
    if stop_epochs is not None:
        own_epochs = [int(stop_epochs[job.name][run]) for run, job in runs_jobs]
        epochs = max(own_epochs)
    trained, history = train_many(
        [initial_student(run, s.n_features).to(exp.device) for run, _ in runs_jobs],
        X, y, [job.loss for _, job in runs_jobs],
        [teachers[job.teacher][run] if job.teacher else None for run, job in runs_jobs],
        num_epochs=epochs, lr=s.lr_student, weight_decay=s.weight_decay_student,
        batch_size=s.batch_size,
        seeds=[shuffle_seed(run, job.shuffle_as or job.name) for run, job in runs_jobs],
        labels=[f"{run_label(run)}: {job.name}" for run, job in runs_jobs],
        heldout=exp.heldout, progress=exp.progress,
        desc=f"{len(jobs)} student(s) x{s.n_runs} runs", on_epoch=stop_when(stop),
        snapshot_epochs=None if own_epochs is None else sorted(set(own_epochs)),
        **({} if stopping is None else {"val": stopping[0], "patience": stopping[1]}))
    frame = history_frame(history, [(job.name, run) for run, job in runs_jobs])
    if own_epochs is not None:
        for net, own, m in zip(trained, own_epochs, range(len(trained))):
            net.load_state_dict(history.snapshots[own][m])
        last = {(job.name, run + 1): own for (run, job), own in zip(runs_jobs, own_epochs)}
        keep = [epoch <= last[(model, run)] for model, run, epoch
                in zip(frame["model"], frame["run"], frame["epoch"])]
        frame = frame[keep].reset_index(drop=True)
    models = {job.name: trained[j :: len(jobs)] for j, job in enumerate(jobs)}
    best_epochs = {}
    if stopping is not None:
        best = [int(b) for b in history.best_epoch]
        best_epochs = {job.name: best[j :: len(jobs)] for j, job in enumerate(jobs)}
    return TrainedStudents(models, frame, best_epochs)

