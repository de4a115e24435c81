"""The positions of the lesson widgets' sliders, and which of them are prepared in advance.

A slider answers at once when the student it asks for was trained beforehand: one stacked
training (:func:`kdteach.core.train.train_many`) of every position of a widget's main slider,
to the epochs slider's maximum, with a copy of the weights kept at every position of the
epochs slider (the copy after epoch e is the student trained for e epochs).
:meth:`kdteach.protocol.experiment.Experiment.slider_grid` trains and caches it;
:meth:`~kdteach.protocol.experiment.Experiment.prepared_student` looks a position up.

This module only says *which* students: the widgets build their sliders from the same
numbers, so every position a learner can reach on the main slider is in the grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kdteach.protocol.settings import Settings

GRIDS = ("retrain", "lgr")  # retrain_explorer (notebook 03), lgr_explorer (notebook 04)
EPOCH_POSITIONS = 12  # at most this many epochs-slider steps up to the profile's epochs
HARD_STEP = 0.05  # the hard-weight sliders: 0..1 in steps of 0.05
GR_LOG_MIN, GR_LOG_MAX, GR_LOG_STEP = -3.0, 4.0, 0.25  # the L_GR slider: 10^-3..10^4
SMALL_BATCH = 32  # notebook 04's question on the batch size


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
    """What the grid ``name`` trains.

    * ``"retrain"``: every hard weight h (L_HP = 1 − h) at the profile's batch size;
    * ``"lgr"``: every L_GR position, the default 0.3 and "off", at the profile's hard and
      L_HP weights and batch size; L_GR alone (hard = L_HP = 0); and, at batch
      :data:`SMALL_BATCH` for the profile's epochs, the profile's weights with and
      without L_GR (notebook 04's questions).
    """
    step, maximum = epochs_range(settings)
    batch = settings.batch_size
    if name == "retrain":
        weights = tuple({"hard": h, "hp": round(1.0 - h, 10)} for h in hard_positions())
        return [Group(batch, maximum, step, weights)]
    if name == "lgr":
        w = settings.gr_weights
        hard, hp, gr = w.get("hard", 0.0), w.get("hp", 0.0), w.get("gr", 0.0)
        values = sorted({*gr_positions(), gr} - {0.0})
        main = tuple([{"hard": hard, "hp": hp, "gr": g} for g in values]
                     + [{"hard": hard, "hp": hp, "gr": 0.0}, {"hard": 0.0, "hp": 0.0, "gr": gr}])
        groups_ = [Group(batch, maximum, step, main)]
        if SMALL_BATCH != batch and SMALL_BATCH <= settings.n_samples:
            small = ({"hard": hard, "hp": hp, "gr": gr}, {"hard": hard, "hp": hp, "gr": 0.0})
            groups_.append(Group(SMALL_BATCH, settings.epochs_student, step, small))
        return groups_
    raise ValueError(f"unknown slider grid {name!r}; valid: {', '.join(GRIDS)}")


def weights_key(weights: dict) -> tuple:
    """Loss weights compared to 8 significant digits, zero weights dropped: a slider's
    value sent back by the browser may differ from Python's in its last bits."""
    return tuple(sorted((t, f"{float(w):.8g}") for t, w in weights.items() if w))
