"""The work trained alongside on a second core: the same numbers, errors that reach the
caller, nothing left running."""

import dataclasses

import pytest
import torch
from tiny_protocol import close_weights, spy_trainings, tiny

from kdteach.protocol import stages
from kdteach.protocol.experiment import Experiment
from kdteach.protocol.results import merge


def test_overlapping_teachers_changes_no_number_and_restores_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = Experiment(tiny(), cache=False, progress=False).reproduce()
        torch.set_num_threads(2)
        overlapped = Experiment(tiny(), cache=False, progress=False).reproduce(
            overlap_teachers=True)
        assert torch.get_num_threads() == 2  # the one-thread setting is undone
    finally:
        torch.set_num_threads(before)
    assert merge(overlapped.values()).results == merge(alone.values()).results
    for stage in alone:
        for name, nets in alone[stage].models.items():
            for a, b in zip(nets, overlapped[stage].models[name]):
                assert close_weights(a, b, atol=0.0)


def test_an_error_in_the_teachers_thread_reaches_the_caller(monkeypatch):
    exp = Experiment(tiny(), cache=False, progress=False)
    real = exp._get_teachers

    def failing(kind, stop=None):
        if kind == "expert":
            raise RuntimeError("expert training failed")
        return real(kind, stop)

    monkeypatch.setattr(exp, "_get_teachers", failing)
    with pytest.raises(RuntimeError, match="expert training failed"):
        exp.reproduce(overlap_teachers=True)


def test_teachers_in_background_are_the_teachers_trained_in_the_foreground():
    exp = Experiment(tiny(), cache=False, progress=False)
    exp.teachers_in_background("expert")
    exp.teachers_in_background("expert")  # already under way: nothing new starts
    background = exp.teachers("expert")
    foreground = Experiment(tiny(), cache=False, progress=False).teachers("expert")
    for a, b in zip(background, foreground):
        assert close_weights(a, b, atol=0.0)
    with pytest.raises(ValueError, match="unknown teacher kind"):
        exp.teachers_in_background("giant")


def test_an_error_in_part_1_stops_the_teachers_training_alongside(monkeypatch):
    import threading

    exp = Experiment(tiny(epochs_teacher=10_000), cache=False, progress=False)
    failing = dataclasses.replace(stages.STAGES["standard_teacher"], build=lambda exp, stage: (
        _ for _ in ()).throw(RuntimeError("part 1 failed")))
    monkeypatch.setitem(stages.STAGES, "standard_teacher", failing)
    with pytest.raises(RuntimeError, match="part 1 failed"):
        exp.reproduce(overlap_teachers=True)  # would take minutes if the experts trained on
    assert not [t for t in threading.enumerate() if t.name == "kdteach-alongside"]
    assert "expert" not in exp._teachers


def test_students_trained_in_background_are_used_by_their_stage(monkeypatch):
    exp = Experiment(tiny(), cache=False, progress=False)
    calls = []
    real = exp._get_students

    def counting(stage, *args, **kwargs):
        calls.append(stage)
        return real(stage, *args, **kwargs)

    monkeypatch.setattr(exp, "_get_students", counting)
    exp.students_in_background("gradient_regularisation")
    background = exp.run("gradient_regularisation")
    assert calls.count("gradient_regularisation") == 1  # trained once, in the background
    foreground = Experiment(tiny(), cache=False, progress=False).run("gradient_regularisation")
    assert background.results == foreground.results


def test_two_kinds_of_teachers_in_one_background_thread():
    exp = Experiment(tiny(), cache=False, progress=False)
    exp.teachers_in_background("regularised", "expert_fit")
    pending = exp._alongside._pending  # one thread gets both kinds
    assert pending[("teachers", "regularised")] is pending[("teachers", "expert_fit")]
    fit = exp.teachers("expert_fit")
    regularised = exp.teachers("regularised")
    alone = Experiment(tiny(), cache=False, progress=False)
    for kind, nets in (("expert_fit", fit), ("regularised", regularised)):
        for a, b in zip(nets, alone.teachers(kind)):
            assert close_weights(a, b, atol=0.0)
    with pytest.raises(ValueError, match="unknown teacher kind"):
        exp.teachers_in_background("expert", "giant")
    assert ("teachers", "expert") not in exp._alongside  # a bad name starts nothing


def test_a_stage_in_background_is_the_stage_run_in_the_foreground(monkeypatch):
    seen = spy_trainings(monkeypatch)
    exp = Experiment(tiny(), cache=False, progress=False)
    exp.stage_in_background("fresh_inputs_teacher")
    exp.stage_in_background("fresh_inputs_teacher")  # already under way: nothing new starts
    exp.run("standard_teacher")  # meanwhile, a dependency of it: built once, by one thread
    background = exp.run("fresh_inputs_teacher")
    assert ("stage", "fresh_inputs_teacher") not in exp._alongside
    in_background = sorted(tuple(t.labels) for t in seen)
    seen.clear()
    foreground = Experiment(tiny(), cache=False, progress=False).run("fresh_inputs_teacher")
    assert in_background == sorted(tuple(t.labels) for t in seen)  # the same, none twice
    assert background.results == foreground.results
    with pytest.raises(ValueError, match="unknown stage"):
        exp.stage_in_background("no_such_stage")


def test_an_error_in_a_stage_in_background_reaches_run(monkeypatch):
    failing = dataclasses.replace(stages.STAGES["standard_teacher"], build=lambda exp, stage: (
        _ for _ in ()).throw(RuntimeError("part 1 failed")))
    monkeypatch.setitem(stages.STAGES, "standard_teacher", failing)
    exp = Experiment(tiny(), cache=False, progress=False)
    exp.stage_in_background("standard_teacher")
    with pytest.raises(RuntimeError, match="part 1 failed"):
        exp.run("standard_teacher")


def test_a_stage_in_background_stops_when_cancelled():
    import threading

    exp = Experiment(tiny(epochs_teacher=10_000), cache=False, progress=False)
    exp.stage_in_background("standard_teacher")  # minutes of teacher training
    exp.cancel_background()  # would wait minutes if the training did not stop
    assert not [t for t in threading.enumerate() if t.name == "kdteach-alongside"]
    assert "teacher" not in exp._teachers and "standard_teacher" not in exp.completed
