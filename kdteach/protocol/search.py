"""Choices made on the validation part: each run's epochs (early stopping), and loss
weights among many, by the full grid or by successive halving.

All of them train students on the fit part of the training set, from teachers trained on
the fit part only, and score them on its validation part; none looks at the test set. The
two weight searches return the name of the chosen job, a table of what they scored, and
the student-epochs they trained (their cost). What a stage does with the
choice (train it on the whole training set, compare it) is the stage's business
(:mod:`kdteach.protocol.stages`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from kdteach.core.losses import DistillationLoss
from kdteach.protocol.recipes import StudentJob


def on_fit_teachers(job: StudentJob) -> StudentJob:
    """The job with its teacher trained on the fit part only: for choices made on the
    validation part, which its usual teacher was trained on."""
    return job if job.teacher is None else dataclasses.replace(job, teacher=f"{job.teacher}_fit")


def epochs_chosen_on_validation(exp, part: str, jobs) -> dict:
    """``{job name: [epochs per run]}``: each job trained on the fit part from the fit-part
    teachers, stopped early on the validation part (the profile's patience); the best
    epochs."""
    s = exp.settings
    X_fit, y_fit, X_val, y_val = exp.validation()
    chosen = exp.students(part, [on_fit_teachers(job) for job in jobs], X_fit, y_fit,
                          stopping=((X_val, y_val), s.patience))
    return chosen.best_epochs


def three_way_points(term: str = "jac") -> list[dict]:
    """Every (hard, hp, ``term``) with weights in steps of 0.1 summing to 1: 66 points."""
    return [{"hard": i / 10, "hp": j / 10, term: round(1 - i / 10 - j / 10, 10)}
            for i in range(11) for j in range(11 - i)]


def three_way_jobs(term: str) -> list[StudentJob]:
    """One job per point of :func:`three_way_points`, distilled from the fit-part experts."""
    return [StudentJob(f"H={w['hard']:g}_HP={w['hp']:g}_{term.upper()}={w[term]:g}",
                       DistillationLoss.from_weights(w), "expert_fit")
            for w in three_way_points(term)]


HALVING_RATE = 3  # η of successive halving: a third of the points goes on at each rung


def halving_rungs(n_points: int, epochs: int, rate: int = HALVING_RATE) -> list[tuple[int, int]]:
    """``(points, epochs)`` of each rung of successive halving (Jamieson & Talwalkar, 2016):
    every point trains for ``epochs / rate^K`` epochs, the best ``1/rate`` of them for
    ``rate`` times as long, and so on, until the last rung trains its few points for the
    full ``epochs``; ``K`` is the number of times ``n_points`` can be cut by ``rate``."""
    if n_points < 1 or epochs < 1 or rate < 2:
        raise ValueError(f"need n_points >= 1, epochs >= 1 and rate >= 2, got {n_points}, "
                         f"{epochs}, {rate}")
    rungs = 0
    while rate ** (rungs + 1) <= n_points:
        rungs += 1
    return [(-(-n_points // rate ** k), max(1, round(epochs / rate ** (rungs - k))))
            for k in range(rungs + 1)]


def _scored(exp, part: str, jobs: list[StudentJob], terms: tuple, epochs=None,
            extra: dict | None = None) -> dict:
    """Train ``jobs`` on the fit part for ``epochs`` (the profile's by default) and give
    each a row: its weights over ``terms`` (zeros included), its name, the ``extra``
    columns and its mean validation MSE."""
    X_fit, y_fit, X_val, y_val = exp.validation()
    fit = exp.students(part, jobs, X_fit, y_fit, epochs=epochs)
    val = exp.evaluate(fit.models, X_val, y_val)
    return {job.name: {**{t: job.loss.weights.get(t, 0.0) for t in terms}, "Weights": job.name,
                       **(extra or {}),
                       "Mean validation MSE": float(np.mean(val[job.name]["mse"]))}
            for job in jobs}


def full_grid(exp, part: str, jobs: list[StudentJob], terms: tuple
              ) -> tuple[str, pd.DataFrame, int]:
    """Every job trained for all the profile's epochs; the lowest mean validation MSE wins.
    The table has one row per job, in the jobs' order."""
    rows = _scored(exp, part, jobs, terms)
    table = pd.DataFrame(list(rows.values()))
    chosen = str(table.loc[table["Mean validation MSE"].idxmin(), "Weights"])
    s = exp.settings
    return chosen, table, s.n_runs * len(jobs) * s.epochs_student


def successive_halving(exp, part: str, jobs: list[StudentJob], terms: tuple
                       ) -> tuple[str, pd.DataFrame, int]:
    """The rungs of :func:`halving_rungs`: every job trains for a few epochs, the best
    third goes on (trained again from its start) for three times as many, and so on; the
    last rung's best job wins. The table has one row per job, the last rung it reached
    (``Rung``, ``Epochs``) and its mean validation MSE there, best rungs first."""
    s = exp.settings
    by_name = {job.name: job for job in jobs}
    alive, rows = list(by_name), {}
    rungs = halving_rungs(len(jobs), s.epochs_student)
    for k, (_, epochs) in enumerate(rungs):
        rows.update(_scored(exp, f"{part}-rung{k}", [by_name[n] for n in alive], terms, epochs,
                            {"Rung": k, "Epochs": epochs}))
        alive.sort(key=lambda n: rows[n]["Mean validation MSE"])
        alive = alive[:rungs[k + 1][0]] if k + 1 < len(rungs) else alive[:1]
    table = pd.DataFrame(list(rows.values())).sort_values(
        ["Rung", "Mean validation MSE"], ascending=[False, True]).reset_index(drop=True)
    return alive[0], table, s.n_runs * sum(n * e for n, e in rungs)
