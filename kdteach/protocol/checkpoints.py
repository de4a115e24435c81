"""Every model the experiment needs, from the checkpoint cache or trained and stored: what
the cache holds is loaded, the rest trained (:mod:`kdteach.protocol.training`) and saved
under a key that records everything it depends on (:mod:`kdteach.protocol.keys`)."""

from __future__ import annotations

import pandas as pd

from kdteach.core.models import MLP
from kdteach.protocol.keys import students_key, teacher_key
from kdteach.protocol.recipes import TEACHER_KINDS
from kdteach.protocol.results import TrainedStudents
from kdteach.protocol.seeds import initial_teacher
from kdteach.protocol.training import train_students, train_teachers


def cpu_state(net) -> dict:
    """A detached CPU copy of a network's weights, as the cache stores them."""
    return {k: v.detach().cpu() for k, v in net.state_dict().items()}


def load_or_train_teachers(exp, kind: str, stop=None) -> tuple[list[MLP], pd.DataFrame]:
    """The teachers of ``kind`` for every run, each loaded from the cache, or, when any run
    is missing, every run trained again together and stored; and their long history."""
    n_runs, n_feat = exp.settings.n_runs, exp.settings.n_features
    nets: list = [None] * n_runs
    frames: list = [None] * n_runs
    for run in range(n_runs):  # the cached runs
        payload = exp.cache.load(f"{kind}-run{run}", teacher_key(exp.settings, kind, run))
        if payload is not None:
            net = initial_teacher(kind, run, n_feat).to(exp.device)
            net.load_state_dict(payload["state"])
            nets[run], frames[run] = net.eval(), pd.DataFrame(payload["history"])
    if any(net is None for net in nets):
        exp.check_may_train(f"the {TEACHER_KINDS[kind]} of every run")
        # every run trained again, together, as in a clean run: a stack of fewer runs
        # takes other matmul kernels and would round differently
        runs = list(range(n_runs))
        trained, frame = train_teachers(exp, kind, runs, stop)
        for run, net in zip(runs, trained):
            own = frame[frame["run"] == run + 1].reset_index(drop=True)
            payload = {"state": cpu_state(net),
                       "history": {c: own[c].tolist() for c in own.columns}}
            exp.cache.save(f"{kind}-run{run}", teacher_key(exp.settings, kind, run), payload)
            nets[run], frames[run] = net, own
    return nets, pd.concat(frames, ignore_index=True)


def load_or_train_students(exp, part: str, jobs, X, y, epochs: int, stopping=None, stop=None,
                           stop_epochs: dict | None = None) -> TrainedStudents:
    """The students of ``part`` (every job for every run, as
    :func:`~kdteach.protocol.training.train_students` trains them), loaded from the cache
    as ``students-<part>``, or trained and stored."""
    # the teachers first: the key records their weights, so new teachers mean new students
    teachers = {kind: exp.teachers(kind)
                for kind in sorted({job.teacher for job in jobs if job.teacher})}
    key = students_key(exp.settings, part, jobs, X, y, epochs, stopping, teachers, stop_epochs)
    payload = exp.cache.load(f"students-{part}", key)
    if payload is not None:
        models = {name: [exp.student_from_state(state) for state in states]
                  for name, states in payload["states"].items()}
        return TrainedStudents(models, pd.DataFrame(payload["history"]),
                               payload.get("best_epochs") or {})
    exp.check_may_train(f"the students of {part}")
    trained = train_students(exp, jobs, teachers, X, y, epochs, stopping, stop, stop_epochs)
    exp.cache.save(f"students-{part}", key, {
        "best_epochs": trained.best_epochs,
        "states": {name: [cpu_state(net) for net in nets]
                   for name, nets in trained.models.items()},
        "history": {c: trained.history[c].tolist() for c in trained.history.columns},
    })
    return trained
