"""The checker of pick_weights and its example grid: each typical mistake of choosing the
weights is "incorrect" with the message meant for it, other correct forms pass."""

from __future__ import annotations

import numpy as np
import pytest

from kdteach import exercises

# --------------------------------------------------------------------------- pick_weights

VAL, TEST = exercises.grid_example()


def _pick_on_test(val_mse):
    return min(TEST, key=lambda label: np.mean(TEST[label]))  # reads the notebook's test set


def _pick_global_val(val_mse):
    return min(VAL, key=lambda label: np.mean(VAL[label]))  # ignores its argument


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (_pick_on_test, "best on the test set"),
        (lambda v: min(v, key=lambda k: np.mean(TEST[k])), "best on the test set"),
        (_pick_global_val, "returns the same label whatever"),
        (lambda v: max(v, key=lambda k: np.mean(v[k])), "highest mean validation MSE"),
        (lambda v: min(v, key=lambda k: min(v[k])), "single luckiest run"),
        (lambda v: min(v, key=lambda k: v[k][0]), "first run only"),
        (lambda v: min(v, key=lambda k: v[k][-1]), "last run only"),
        (lambda v: min(np.mean(r) for r in v.values()), "returned a float"),
        (lambda v: min(v, key=lambda k: np.mean(v[k])).lower(), "not a key of `val_mse`"),
        (lambda v: min(v, key=lambda k: np.median(v[k])), "does not always pick"),
    ],
)
def test_pick_weights_mistakes(incorrect, answer, fragment):
    incorrect("pick_weights", answer, fragment)


@pytest.mark.parametrize(
    "answer",
    [
        lambda v: list(v)[int(np.argmin([np.mean(r) for r in v.values()]))],
        lambda v: sorted(v.items(), key=lambda item: sum(item[1]) / len(item[1]))[0][0],
    ],
)
def test_pick_weights_accepts_other_correct_forms(answer):
    assert exercises.check("pick_weights", answer).status == exercises.CORRECT


def test_grid_example_chooses_differently_on_validation_and_test():
    val, test = exercises.grid_example()
    assert list(val) == list(test) and len(val) == 5
    best = {name: min(d, key=lambda k: np.mean(d[k])) for name, d in (("val", val), ("test", test))}
    assert best["val"] != best["test"]
    val["H=0.1_HP=0.9"].append(0.0)
    assert exercises.grid_example()[0] == VAL, "each call returns fresh copies"


def _pick_sorted_copies(val_mse):
    runs = {label: sorted(r) for label, r in val_mse.items()}  # the answer's own lists
    for r in runs.values():
        r.reverse()
    return min(runs, key=lambda label: np.mean(runs[label]))


def test_pick_weights_may_change_its_own_copies():
    assert exercises.check("pick_weights", _pick_sorted_copies).status == exercises.CORRECT
