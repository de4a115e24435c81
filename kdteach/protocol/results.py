"""What a stage hands on: typed results, and the one way to merge several stages'.

``StageResult.results`` keeps the original notebook's shape, ``{model: {"mse": [per run],
"r2": [per run]}}``, under the original's model names; ``results.json`` is built from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kdteach.core.stats import PairedTest


@dataclass(frozen=True)
class TrainedStudents:
    """The students of one training: ``{name: [net per run]}``, the long history (model,
    run from 1, epoch, term, loss) and, with early stopping, ``{name: [best epoch per run]}``
    (1-based)."""

    models: dict
    history: pd.DataFrame
    best_epochs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StageResult:
    """What a stage produced: per-run rows, the summary, tests, models, histories."""

    stage: str
    title: str
    settings: object  # the Settings it ran with
    results: dict  # {model: {"mse": [per run], "r2": [per run]}}, the original's shape
    summary: pd.DataFrame
    tests: dict  # {description: PairedTest}
    models: dict = field(default_factory=dict)  # {model: [trained net per run]}
    history: pd.DataFrame | None = None  # model, run (from 1), epoch, term, loss
    weights: dict = field(default_factory=dict)  # {model: loss weights}
    seconds: float = 0.0
    best: str | None = None  # the grid point with the lowest mean *test* MSE (optimistic)
    chosen: str | None = None  # the grid point chosen on the validation split
    validation: pd.DataFrame | None = None  # validation and test MSE of the points chosen from
    best_epochs: dict = field(default_factory=dict)  # early stopping: {model: [per run]}
    # model selection: the point chosen with teachers that saw the validation labels
    leaked_choice: str | None = None
    student_epochs: int | None = None  # a search: the student-epochs it trained in all

    @property
    def runs(self) -> pd.DataFrame:
        """Tidy: one row per (model, run) with its loss weights, test MSE and R²; runs
        are numbered from 1."""
        rows = []
        for name, data in self.results.items():
            w = self.weights.get(name, {})
            for run, (mse, r2) in enumerate(zip(data["mse"], data["r2"]), start=1):
                rows.append({"stage": self.stage, "model": name, "run": run,
                             **{t: w.get(t, np.nan) for t in ("hard", "hp", "gr")},
                             **{t: w[t] for t in ("jac", "feat") if t in w},
                             "mse": mse, "r2": r2})
        return pd.DataFrame(rows)

    def per_run(self, names=None) -> pd.DataFrame:
        """Test MSE with one row per run (numbered from 1) and one column per model."""
        table = self.runs.pivot(index="run", columns="model", values="mse")
        names = list(names) if names is not None else list(self.results)
        return table[names]

    def chosen_epochs(self) -> pd.DataFrame:
        """The epochs early stopping chose (``best_epochs``): one row per run (from 1),
        one column per model."""
        table = pd.DataFrame(self.best_epochs)
        table.index = pd.RangeIndex(1, len(table) + 1, name="run")
        return table

    def report(self) -> str:
        """The stage's table and comparisons as text."""
        lines = [f"=== {self.title} ({self.settings.n_runs} runs) ===", self.summary.to_string()]
        if self.best:
            lines.append(f"Lowest mean test MSE (chosen on the test set, optimistic): {self.best}")
        if self.chosen:
            lines.append(f"Chosen on the validation split: {self.chosen}")
        lines += [t.describe() for t in self.tests.values()]
        return "\n".join(lines)


@dataclass(frozen=True)
class MergedResults:
    """Several stages' models and tests together; a model shown by more than one stage is
    taken from the first (every stage reports a shared model with the same numbers)."""

    results: dict  # {model: {"mse": [...], "r2": [...]}}
    tests: dict  # {description: PairedTest}


def merge(stages: Iterable[StageResult]) -> MergedResults:
    """Every model's per-run MSE and R² and every test, across ``stages`` in order."""
    results: dict = {}
    tests: dict[str, PairedTest] = {}
    for stage in stages:
        for name, data in stage.results.items():
            results.setdefault(name, data)
        tests.update(stage.tests)
    return MergedResults(results, tests)


def history_frame(history, keys: list[tuple[str, int]]) -> pd.DataFrame:
    """A training's long history with ``model`` and ``run`` (from 1) as columns, from the
    (name, 0-based run) of every trained network in order."""
    frame = history.to_frame()
    by_label = dict(zip(history.labels, keys))
    model_run = frame.pop("model").map(by_label)
    frame.insert(0, "run", [run + 1 for _, run in model_run])
    frame.insert(0, "model", [name for name, _ in model_run])
    return frame


def last_epoch(history: pd.DataFrame) -> pd.DataFrame:
    """Each model's loss terms and test MSE in its last epoch, averaged over runs: one row
    per model, one column per term (``heldout`` is the test MSE)."""
    last = history[history["epoch"] == history.groupby("model")["epoch"].transform("max")]
    table = last.groupby(["model", "term"], sort=False)["loss"].mean().unstack("term")
    table.columns.name = None
    return table[[t for t in ("hard", "hp", "gr", "total", "heldout") if t in table.columns]]
