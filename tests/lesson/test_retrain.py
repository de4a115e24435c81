"""One student retrained now: the stage student it matches, what it records, what it refuses."""

import dataclasses

import pytest
import torch

from kdteach.core.train import evaluate
from kdteach.lesson.retrain import TRAINED_NOW, RetrainedStudent, retrain_student
from kdteach.protocol.experiment import Experiment
from kdteach.protocol.names import DISTILLED, DISTILLED_EXPERT, SCRATCH
from kdteach.protocol.seeds import initial_student
from kdteach.protocol.settings import get_settings


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    settings = get_settings("quick", device="cpu", n_samples=400, epochs_teacher=2,
                            epochs_student=2)
    return Experiment(settings, cache=tmp_path_factory.mktemp("cache"), progress=False)


def test_a_retrained_student_is_a_frozen_record(exp):
    result = retrain_student(exp, {"hard": 0.3, "hp": 0.7}, progress=False)
    assert isinstance(result, RetrainedStudent) and result.source == TRAINED_NOW
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.mse = 0.0


def test_retrain_student_reproduces_the_stage_student_it_matches(exp):
    result = retrain_student(exp, {"hard": 1.0}, run=1, progress=False)
    assert result.role == SCRATCH and result.teacher is None
    assert result.mse == pytest.approx(
        exp.run("standard_teacher").results[SCRATCH]["mse"][1], rel=1e-4)
    # the teacher kind is part of the bookkeeping: 0.3/0.7 from the standard teacher is
    # part 1's student, from the expert part 2's
    assert retrain_student(exp, {"hard": 0.3, "hp": 0.7}, teacher="teacher",
                           progress=False).role == DISTILLED
    from_expert = retrain_student(exp, {"hard": 0.3, "hp": 0.7}, teacher="expert",
                                  progress=False)
    assert from_expert.role == DISTILLED_EXPERT
    assert from_expert.mse == pytest.approx(
        exp.run("expert_teacher").results[DISTILLED_EXPERT]["mse"][0], rel=1e-4)
    other = retrain_student(exp, {"hard": 0.25, "hp": 0.75}, teacher="teacher", progress=False)
    assert other.role == "Student (hard=0.25, hp=0.75, from teacher)"


def test_retrain_student_records_terms_heldout_and_batch_size(exp):
    result = retrain_student(exp, {"hard": 0.2, "hp": 0.5, "gr": 3.0}, batch_size=64,
                             progress=False)
    assert result.weights == {"hard": 0.2, "hp": 0.5, "gr": 3.0}
    assert result.batch_size == 64 and result.epochs == 2 and result.run == 0
    assert set(result.history["term"]) == {"hard", "hp", "gr", "total", "heldout"}
    assert result.mse == pytest.approx(evaluate(result.net, exp.data.X_test,
                                                exp.data.y_test)["mse"])


def test_retrain_with_zero_epochs_is_the_initial_student(exp):
    result = retrain_student(exp, {"hard": 0.5, "hp": 0.5}, epochs=0, progress=False)
    for p, q in zip(result.net.parameters(), initial_student(0).parameters()):
        assert torch.equal(p.detach().cpu(), q)
    assert result.history.empty


@pytest.mark.parametrize("kwargs, message", [
    ({"weights": {"hard": 0.0, "hp": 0.0}}, "at least one loss weight must be > 0"),
    ({"weights": {"hard": 0.3}, "epochs": -1}, "epochs"),
    ({"weights": {"hard": 0.3}, "run": 7}, "run must be one of run 1..run 2"),
    ({"weights": {"hard": 0.3}, "teacher": "wizard"}, "teacher kind"),
    ({"weights": {"hard": 0.3}, "batch_size": 5000}, "batch_size"),
    ({"weights": {"hard": -0.5}}, "'hard'"),
])
def test_retrain_student_rejects_what_cannot_be_trained(exp, kwargs, message):
    with pytest.raises(ValueError, match=message):
        retrain_student(exp, progress=False, **kwargs)
