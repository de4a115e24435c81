"""How the protocol calls the engine: one stacked training for a kind of teacher, one for a
part's students. The experiment decides what to train (and caches it); these train it."""

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
    trained, history = train_many(
        [initial_teacher(kind, run, s.n_features).to(exp.device) for run in runs],
        exp.data.X_train, exp.data.y_train,
        num_epochs=s.epochs_teacher, lr=s.lr_teacher,
        weight_decay=getattr(s, recipe.weight_decay), batch_size=s.batch_size,
        seeds=[shuffle_seed(run, recipe.shuffle_role) for run in runs],
        labels=[f"{run_label(run)}: {recipe.name}" for run in runs],
        heldout=exp.heldout, progress=exp.progress,
        desc=f"{recipe.name} x{len(runs)} runs", on_epoch=stop_when(stop))
    return trained, history_frame(history, [(recipe.name, run) for run in runs])


def train_students(exp, jobs, teachers: dict, X, y, epochs: int, stopping=None, stop=None
                   ) -> TrainedStudents:
    """Every job for every run, trained together in one stack from run ``i``'s shared
    initial student, each with its own shuffle; ``teachers``: {kind: [net per run]}."""
    s = exp.settings
    runs_jobs = [(run, job) for run in range(s.n_runs) for job in jobs]  # run-major
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
        **({} if stopping is None else {"val": stopping[0], "patience": stopping[1]}))
    models = {job.name: trained[j :: len(jobs)] for j, job in enumerate(jobs)}
    frame = history_frame(history, [(job.name, run) for run, job in runs_jobs])
    best_epochs = {}
    if stopping is not None:
        best = [int(b) for b in history.best_epoch]
        best_epochs = {job.name: best[j :: len(jobs)] for j, job in enumerate(jobs)}
    return TrainedStudents(models, frame, best_epochs)

