"""Successive halving as the three-way search's second method."""

import numpy as np
import pytest
from tiny_protocol import tiny

from kdteach.protocol import stages
from kdteach.protocol.experiment import Experiment
from kdteach.protocol.names import THREE_WAY_HALVING
from kdteach.protocol.search import halving_rungs


def test_the_rungs_cut_the_points_by_three_and_end_at_the_full_epochs():
    assert halving_rungs(66, 600) == [(66, 22), (22, 67), (8, 200), (3, 600)]
    assert halving_rungs(66, 40) == [(66, 1), (22, 4), (8, 13), (3, 40)]
    assert halving_rungs(2, 10) == [(2, 10)]  # too few points to cut: the full grid
    assert halving_rungs(9, 9) == [(9, 1), (3, 3), (1, 9)]
    with pytest.raises(ValueError, match="rate >= 2"):
        halving_rungs(66, 600, rate=1)


@pytest.fixture(scope="module")
def halving(tmp_path_factory):
    exp = Experiment(tiny(epochs_student=9), cache=tmp_path_factory.mktemp("c"), progress=False)
    return exp, exp.run("three_way_halving_jac")


def test_each_rung_keeps_the_best_third_and_the_last_rungs_best_is_chosen(halving):
    exp, result = halving
    table = result.validation
    rungs = halving_rungs(66, 9)
    assert len(table) == 66
    for k, (points, epochs) in enumerate(rungs):
        reached = table[table["Rung"] >= k]
        assert len(reached) == points, k
        assert (table[table["Rung"] == k]["Epochs"] == epochs).all()
    last = table[table["Rung"] == len(rungs) - 1]
    assert result.chosen == last.loc[last["Mean validation MSE"].idxmin(), "Weights"]
    assert result.student_epochs == exp.settings.n_runs * sum(n * e for n, e in rungs)
    full = 66 * 9 * exp.settings.n_runs
    assert result.student_epochs < full / 4


def test_the_points_that_went_on_were_the_best_of_their_rung(halving, monkeypatch):
    exp, result = halving
    scores = {}
    real = exp.evaluate

    def spy(models, X=None, y=None):
        out = real(models, X, y)
        if X is not None and len(X) == len(exp.validation()[2]):
            scores[len(scores)] = {n: np.mean(v["mse"]) for n, v in out.items()}
        return out

    monkeypatch.setattr(exp, "evaluate", spy)
    again = stages.three_way_halving(exp, stages.stage("three_way_halving_jac"))
    assert again.chosen == result.chosen
    for k in range(len(scores) - 1):
        survivors = set(scores[k + 1])
        threshold = max(scores[k][n] for n in survivors)
        assert all(v >= threshold for n, v in scores[k].items() if n not in survivors)


def test_the_chosen_point_is_trained_on_the_whole_training_set_and_tested(halving):
    _, result = halving
    assert THREE_WAY_HALVING in result.results
    assert len(result.models[THREE_WAY_HALVING]) == 2
    assert all(t.alternative == "two-sided" for t in result.tests.values())
