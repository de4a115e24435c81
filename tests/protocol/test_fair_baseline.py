"""The baseline given the method's chance, the teachers trained on the fit part only, and
the one rule for one- and two-sided tests."""

import numpy as np
import pytest
from tiny_protocol import same_weights, tiny

from kdteach.core.losses import DistillationLoss
from kdteach.protocol import stages
from kdteach.protocol.experiment import Experiment
from kdteach.protocol.keys import teacher_key
from kdteach.protocol.names import (
    DISTILLED,
    DISTILLED_EXPERT,
    EXPERT_FIT,
    SCRATCH,
    TEACHER_FIT,
    TUNED,
)
from kdteach.protocol.recipes import StudentJob
from kdteach.protocol.seeds import initial_teacher
from kdteach.protocol.stages import LEAKED


@pytest.fixture(scope="module")
def fair(tmp_path_factory):
    # enough epochs that the validation curve can turn, a patience that can run out
    exp = Experiment(tiny(epochs_student=8, patience=2), cache=tmp_path_factory.mktemp("c"),
                     progress=False)
    names = ("fair_baseline_teacher", "fair_baseline_expert", "model_selection")
    return exp, {name: exp.run(name) for name in names}


def test_fit_teachers_start_like_their_twins_and_never_see_the_validation_part(fair):
    exp, _ = fair
    for kind, name in (("teacher", TEACHER_FIT), ("expert", EXPERT_FIT)):
        fit_kind = f"{kind}_fit"
        assert same_weights(initial_teacher(fit_kind, 1), initial_teacher(kind, 1))
        key = teacher_key(exp.settings, fit_kind, 0)
        assert key["trained_on"] == "fit" and "trained_on" not in teacher_key(exp.settings,
                                                                               kind, 0)
        assert exp.training_data("fit")[0].shape[0] == exp.validation()[0].shape[0]
        twin, fitted = exp.teachers(kind)[0], exp.teachers(fit_kind)[0]
        assert not same_weights(twin, fitted)  # other data, same start and shuffle seed
        assert exp.teacher_history(fit_kind)["model"].iloc[0] == name


def test_the_tuned_students_are_their_600_epoch_twins_stopped_at_their_own_epochs(fair):
    exp, results = fair
    tuned = results["fair_baseline_teacher"]
    epochs = tuned.best_epochs
    assert set(epochs) == {TUNED["scratch"], TUNED["distilled"]}
    for per_run in epochs.values():
        assert len(per_run) == 2 and all(1 <= e <= exp.settings.epochs_student for e in per_run)
    # scratch stopped at epoch e of the 600-epoch trajectory is the scratch student trained
    # for e epochs from the same start and batches
    e = epochs[TUNED["scratch"]][0]
    job = StudentJob("check", DistillationLoss(hard=1.0), shuffle_as=SCRATCH)
    again = exp.students("check", [job], epochs=e)
    assert same_weights(again.models["check"][0], tuned.models[TUNED["scratch"]][0])
    history = tuned.history
    for (model, run), rows in history.groupby(["model", "run"]):
        assert rows["epoch"].max() == epochs[model][run - 1]


def test_each_model_of_a_stack_can_train_for_its_own_epochs(fair):
    exp, _ = fair
    job = StudentJob(SCRATCH, DistillationLoss(hard=1.0))
    same = exp.students("same", [job], stop_epochs={SCRATCH: [3, 3]})
    plain = exp.students("plain", [job], epochs=3)
    for a, b in zip(same.models[SCRATCH], plain.models[SCRATCH]):
        assert same_weights(a, b)
    mixed = exp.students("mixed", [job], stop_epochs={SCRATCH: [2, 4]})
    assert not same_weights(mixed.models[SCRATCH][1], plain.models[SCRATCH][1])
    assert sorted(mixed.history.groupby("run")["epoch"].max()) == [2, 4]


def test_the_fair_comparisons_are_fixed_two_sided_and_the_expert_stage_reuses_scratch(fair):
    _, results = fair
    teacher, expert = results["fair_baseline_teacher"], results["fair_baseline_expert"]
    test = teacher.tests["distilled vs scratch, epochs chosen on validation"]
    assert (test.a, test.b, test.alternative) == (TUNED["distilled"], TUNED["scratch"],
                                                  "two-sided")
    test = expert.tests["distilled from expert vs scratch, epochs chosen on validation"]
    assert (test.a, test.b) == (TUNED["distilled_expert"], TUNED["scratch"])
    assert expert.results[TUNED["scratch"]] == teacher.results[TUNED["scratch"]]
    assert {SCRATCH, DISTILLED} <= set(teacher.results)
    assert DISTILLED_EXPERT in expert.results


def test_the_epoch_choice_uses_the_fit_teachers(fair, monkeypatch):
    exp, _ = fair
    seen = []
    real = exp.students

    def spy(part, jobs, *args, **kwargs):
        seen.append((part, [job.teacher for job in jobs]))
        return real(part, jobs, *args, **kwargs)

    monkeypatch.setattr(exp, "students", spy)
    stages.fair_baseline(exp, stages.stage("fair_baseline_teacher"))
    choose = dict(seen)["fair_baseline_teacher-choose"]
    assert choose == [None, "teacher_fit"]
    assert dict(seen)["fair_baseline_teacher"] == [None, "teacher"]


def test_model_selection_chooses_with_fit_teachers_and_shows_the_leak(fair):
    _, results = fair
    selection = results["model_selection"]
    table = selection.validation
    assert LEAKED in table and np.isfinite(table[LEAKED]).all()
    assert not np.allclose(table[LEAKED], table["Mean validation MSE"])
    assert selection.chosen == table.iloc[0]["Weights"]
    assert selection.leaked_choice == table.loc[table[LEAKED].idxmin(), "Weights"]
    if selection.leaked_choice != selection.chosen:
        assert "validation-chosen vs chosen with the leak" in selection.tests


ONE_SIDED = {("standard_teacher", "distilled vs scratch"),
             ("expert_teacher", "distilled vs scratch"),
             ("expert_teacher", "distilled from expert vs scratch")}


def test_one_sided_tests_only_for_the_originals_hypotheses_and_no_leak_into_a_choice(
        tmp_path, monkeypatch):
    """Every stage at tiny settings: its tests follow the one rule, and every student
    trained on the fit part (for a choice made on the validation part) learns from a
    teacher trained on the fit part, but for the leak model selection shows on purpose."""
    exp = Experiment(tiny(epochs_teacher=1, epochs_student=1), cache=tmp_path, progress=False)
    n_fit = len(exp.validation()[0])
    on_fit = {}
    real = exp.students

    def spy(part, jobs, X=None, *args, **kwargs):
        if X is not None and len(X) == n_fit:
            on_fit[part] = {job.teacher for job in jobs} - {None}
        return real(part, jobs, X, *args, **kwargs)

    monkeypatch.setattr(exp, "students", spy)
    seen = set()
    for name in stages.STAGES:
        for description, test in exp.run(name).tests.items():
            seen.add((name, description))
            if test.descriptive:
                continue
            one_sided = (name, description) in ONE_SIDED
            assert test.alternative == ("less" if one_sided else "two-sided"), (name,
                                                                                description)
    assert ONE_SIDED <= seen
    assert {"model_selection", "three_way_search_jac-fit", "early_stopping",
            "fair_baseline_teacher-choose", "model_selection-leaked"} <= set(on_fit)
    for part, teachers in on_fit.items():
        expected = {"expert"} if part == "model_selection-leaked" else None
        assert teachers == expected if expected else all(t.endswith("_fit") for t in teachers), \
            (part, teachers)
