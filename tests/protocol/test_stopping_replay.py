"""The patience slider's numbers: early stopping replayed from the recorded curves."""

import numpy as np
import pytest
from tiny_protocol import tiny

from kdteach.protocol.analysis import stopping_at_patience
from kdteach.protocol.experiment import Experiment


@pytest.fixture(scope="module")
def stopping(tmp_path_factory):
    exp = Experiment(tiny(epochs_student=10, patience=4), cache=tmp_path_factory.mktemp("c"),
                     progress=False)
    return exp, exp.run("early_stopping")


def test_the_replay_at_the_stages_patience_is_what_training_chose(stopping):
    exp, result = stopping
    table = stopping_at_patience(result, exp.settings.patience)
    for model, per_run in result.best_epochs.items():
        rows = table[table["model"] == model].sort_values("run")
        assert list(rows["best epoch"]) == per_run
        scores = exp.evaluate({model: result.models[model]})[model]["mse"]
        np.testing.assert_allclose(rows["test MSE"], scores, rtol=1e-5)


def test_a_smaller_patience_stops_no_later_and_a_larger_one_is_refused(stopping):
    exp, result = stopping
    full = stopping_at_patience(result, exp.settings.patience)
    short = stopping_at_patience(result, 1)
    assert (short["stopped at"] <= full["stopped at"]).all()
    assert (short["best epoch"] <= full["best epoch"]).all()
    with pytest.raises(ValueError, match="beyond the recorded 4 epochs"):
        stopping_at_patience(result, 5)
