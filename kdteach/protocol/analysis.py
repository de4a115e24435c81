"""Looking at what an experiment trained: how well models fit, and what they cost."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kdteach.core.costs import LABEL, model_costs
from kdteach.core.train import HELDOUT, VAL, evaluate, replay_early_stopping
from kdteach.protocol.names import EXPERT, TEACHER
from kdteach.protocol.results import merge
from kdteach.protocol.seeds import initial_student


def fit_summary(exp, models: dict) -> pd.DataFrame:
    """Mean MSE on the training set and on the test set, in evaluation mode (dropout
    off), of ``{name: [net per run]}``: how well each model fits the data it saw against
    data it never saw, beside the noise floor σ² (lesson 01, section 5)."""
    d, rows = exp.data, []
    for name, nets in models.items():
        train_mse = np.mean([evaluate(net, d.X_train, d.y_train)["mse"] for net in nets])
        test_mse = np.mean([evaluate(net, d.X_test, d.y_test)["mse"] for net in nets])
        rows.append({"model": name, "training MSE": train_mse, "test MSE": test_mse,
                     "training MSE / σ²": train_mse / exp.settings.noise ** 2})
    return pd.DataFrame(rows).set_index("model")


def cost_comparison(exp, students: list[str], min_run_time: float = 1.0,
                    threads: int = 1) -> tuple[pd.DataFrame, dict]:
    """What each model costs beside what it gets right: the costs table of
    :func:`kdteach.core.costs.model_costs` for run 1's teacher, expert and student (every
    student has the same architecture, so one row per named student repeats the student's
    costs), and ``{name: [test MSE per run]}`` for the same models. The named students must
    come from stages the experiment has run (lesson 05, section 5)."""
    found = merge(exp.completed.values()).results
    missing = [n for n in students if n not in found]
    if missing:
        raise ValueError(f"run the stages of {missing} first; have {sorted(found)}")
    student = initial_student(0, exp.settings.n_features)
    table = model_costs({TEACHER: exp.teachers("teacher")[0],
                         EXPERT: exp.teachers("expert")[0], "Student": student},
                        min_run_time=min_run_time, threads=threads)
    row = table[table[LABEL] == "Student"]
    table = pd.concat([table[table[LABEL] != "Student"],
                       *[row.assign(**{LABEL: name}) for name in students]],
                      ignore_index=True)
    part2 = exp.run("expert_teacher")
    mse = {TEACHER: part2.results[TEACHER]["mse"], EXPERT: part2.results[EXPERT]["mse"],
           **{name: found[name]["mse"] for name in students}}
    return table, mse


def stopping_at_patience(stopping, patience: int) -> pd.DataFrame:
    """What early stopping with ``patience`` gives each early-stopped student of the
    ``early_stopping`` stage, replayed from its recorded validation curve (no training:
    :func:`kdteach.core.train.replay_early_stopping`): one row per (model, run from 1) with
    the best epoch, the epoch it stopped at, and the validation and test MSE of the best
    epoch's weights (the test MSE recorded after that epoch). Up to the stage's own
    patience the replay is exact."""
    if patience > stopping.settings.patience:
        raise ValueError(f"patience {patience} is beyond the recorded {stopping.settings.patience}"
                         " epochs: the curves stop there")
    history, rows = stopping.history, []
    for model in stopping.best_epochs:
        own = history[history["model"] == model]
        for run, curves in own.groupby("run"):
            wide = curves.pivot(index="epoch", columns="term", values="loss").sort_index()
            best, stopped = replay_early_stopping(wide[VAL].to_numpy(), patience)
            rows.append({"model": model, "run": int(run), "best epoch": best,
                         "stopped at": stopped, "validation MSE": wide[VAL].loc[best],
                         "test MSE": wide[HELDOUT].loc[best]})
    return pd.DataFrame(rows)
