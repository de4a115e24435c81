"""The checker of choosing the loss weights on the validation set, and its example grid."""

from __future__ import annotations

import copy

import numpy as np

from kdteach.exercises.cases import SEED
from kdteach.exercises.running import call
from kdteach.exercises.verdicts import Incorrect
from kdteach.protocol.names import grid_name

# --------------------------------------------------------------------------- pick_weights

_GRID_HARD = (0.1, 0.3, 0.5, 0.7, 0.9)
_GRID_LABELS = tuple(grid_name({"hard": h, "hp": round(1 - h, 10)}) for h in _GRID_HARD)
# Made-up per-run MSEs of a weight grid, shaped like the lessons' results: the grid point
# that looks best on the test set is not the one that is best on the validation set.
_GRID_MSE = (  # per grid point: (validation MSE per run), (test MSE per run)
    ((0.3498, 0.3311, 0.3620, 0.3365, 0.3587), (0.3361, 0.3298, 0.3452, 0.3350, 0.3399)),
    ((0.3301, 0.3452, 0.3387, 0.3339, 0.3405), (0.3397, 0.3440, 0.3371, 0.3425, 0.3383)),
    ((0.3604, 0.3551, 0.3712, 0.3498, 0.3640), (0.3689, 0.3602, 0.3745, 0.3571, 0.3706)),
    ((0.3836, 0.3950, 0.3791, 0.3874, 0.3902), (0.3960, 0.3899, 0.4017, 0.3921, 0.3978)),
    ((0.4157, 0.4082, 0.4311, 0.4198, 0.4120), (0.4402, 0.4288, 0.4351, 0.4423, 0.4331)),
)


def grid_example() -> tuple[dict, dict]:
    """``(val_mse, test_mse)`` of a weight grid: label → per-run MSEs, fresh copies each call."""
    val = {label: list(runs) for label, (runs, _) in zip(_GRID_LABELS, _GRID_MSE)}
    test = {label: list(runs) for label, (_, runs) in zip(_GRID_LABELS, _GRID_MSE)}
    return val, test


def _best(scores: dict) -> str:
    return min(scores, key=scores.get)


def _mean_best(val: dict) -> str:
    return _best({label: float(np.mean(runs)) for label, runs in val.items()})


def check_pick_weights(answer) -> str:
    rng = np.random.default_rng(SEED + 4)
    test_best = _mean_best(grid_example()[1])
    mistakes = [
        ("`pick_weights` picks the grid point with the highest mean validation MSE; the "
         "best has the lowest.", lambda v: _best({k: -np.mean(r) for k, r in v.items()})),
        ("`pick_weights` picks the grid point with the single luckiest run; compare the mean "
         "over all runs.", lambda v: _best({k: min(r) for k, r in v.items()})),
        ("`pick_weights` looks at the first run only; compare the mean over all runs.",
         lambda v: _best({k: r[0] for k, r in v.items()})),
        ("`pick_weights` looks at the last run only; compare the mean over all runs.",
         lambda v: _best({k: r[-1] for k, r in v.items()})),
    ]
    wrong_choices = [rule for _, rule in mistakes] + [lambda v: test_best]
    cases = [_grid_case(rng, wrong_choices) for _ in range(20)]
    answers = []
    for val in cases:
        out = call("pick_weights", answer, val_mse=copy.deepcopy(val))
        if not isinstance(out, str):
            raise Incorrect(
                f"`pick_weights` returned a {type(out).__name__}; return the chosen label, "
                "one of the keys of `val_mse`."
            )
        answers.append(out)
    if all(a == _mean_best(v) for a, v in zip(answers, cases)):
        return (
            f"`pick_weights` picks the lowest mean validation MSE in {len(cases)} random grids, "
            "and never looks at the test set."
        )
    if all(a == test_best for a in answers):
        raise Incorrect(
            "`pick_weights` returns the grid point that is best on the test set, whatever "
            "`val_mse` holds: choose from `val_mse` only, and keep the test set for the final, "
            "unbiased report."
        )
    if len(set(answers)) == 1:
        raise Incorrect(
            "`pick_weights` returns the same label whatever `val_mse` holds: choose from "
            "its argument."
        )
    if any(a not in v for a, v in zip(answers, cases)):
        raise Incorrect("`pick_weights` returned a label that is not a key of `val_mse`.")
    for message, rule in mistakes:
        if all(a == rule(v) for a, v in zip(answers, cases)):
            raise Incorrect(message)
    raise Incorrect(
        "`pick_weights` does not always pick the grid point with the lowest mean validation MSE."
    )


def _grid_case(rng: np.random.Generator, wrong_choices: list) -> dict:
    """A random grid in which the right choice differs from every typical wrong one."""
    while True:
        n_runs = int(rng.integers(3, 7))
        val = {}
        for label in _GRID_LABELS:
            mean, spread = rng.uniform(0.33, 0.42), rng.uniform(0.002, 0.04)
            val[label] = [float(v) for v in mean + rng.normal(0, spread, n_runs)]
        means = sorted(np.mean(r) for r in val.values())
        right = _mean_best(val)
        if means[1] - means[0] > 1e-3 and all(choose(val) != right for choose in wrong_choices):
            return val
