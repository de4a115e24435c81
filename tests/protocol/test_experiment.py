import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_protocol import close_weights, same_weights, spy_trainings, tiny

from kdteach.core.models import ExpertTeacherNet, RegularisedTeacherNet, StudentNet
from kdteach.core.train import evaluate
from kdteach.protocol import names, search, stages, training
from kdteach.protocol.analysis import cost_comparison, fit_summary
from kdteach.protocol.cache import CacheWarning
from kdteach.protocol.experiment import Experiment
from kdteach.protocol.keys import teacher_key
from kdteach.protocol.names import (
    DISTILLED,
    DISTILLED_EXPERT,
    EXPERT,
    FRESH,
    HP_ONLY,
    JAC,
    SCRATCH,
    TEACHER,
)
from kdteach.protocol.results import last_epoch, merge
from kdteach.protocol.seeds import initial_student
from kdteach.protocol.stages import LEAKED


def test_every_student_of_a_run_starts_from_one_state(tmp_path, monkeypatch):
    seen = spy_trainings(monkeypatch)
    exp = Experiment(tiny(), cache=False, progress=False)
    exp.run("grid_search")
    students = [t for t in seen if isinstance(t.nets[0], StudentNet)][0]
    states, labels = students.initial_states, students.labels
    assert len(states) == 2 * 5
    for state, label in zip(states, labels):
        run = int(label.split()[1].rstrip(":")) - 1  # labels read "run 1: <model>"
        ref = initial_student(run).state_dict()
        assert all(torch.equal(state[k], ref[k]) for k in ref)


def test_stage_results_use_the_originals_names_and_shapes(tmp_path):
    exp = Experiment(tiny(), cache=tmp_path, progress=False)
    stages = exp.reproduce()
    shown = set(merge(stages.values()).results)
    grid = {names.grid_name(w) for w in exp.settings.grid_weights}
    assert grid == {"H=0.1_HP=0.9", "H=0.3_HP=0.7", "H=0.5_HP=0.5", "H=0.7_HP=0.3", "H=0.9_HP=0.1"}
    assert shown == {TEACHER, SCRATCH, DISTILLED, EXPERT, DISTILLED_EXPERT, names.LGR} | grid
    for result in stages.values():
        for data in result.results.values():
            assert len(data["mse"]) == len(data["r2"]) == 2
            assert np.all(np.isfinite(data["mse"]))
        runs = result.runs
        assert list(runs.columns) == ["stage", "model", "run", "hard", "hp", "gr", "mse", "r2"]
        assert set(runs["run"]) == {1, 2}  # runs are numbered from 1 wherever people read them
        assert isinstance(result.summary, pd.DataFrame) and result.report()
    part2 = stages["expert_teacher"]
    assert part2.tests["distilled from expert vs scratch"].alternative == "less"
    final = stages["gradient_regularisation"]
    # the original's L_GR comparison has a partner chosen on the test set: descriptive only
    original_test = final.tests["L_GR vs best L_HP"]
    assert original_test.descriptive and original_test.p is None
    matched = final.tests["L_GR vs matched L_HP (0.3/0.7)"]
    assert (matched.b, matched.alternative, matched.descriptive) == (DISTILLED_EXPERT, "two-sided",
                                                                     False)
    assert stages["grid_search"].tests["best vs worst grid point"].descriptive
    assert final.best == stages["grid_search"].summary.iloc[0]["Weights"]
    hist = final.history
    assert list(hist.columns) == ["model", "run", "epoch", "term", "loss"]
    assert set(hist["term"]) == {"hard", "hp", "gr", "total", "heldout"}
    assert set(hist["model"]) == {names.LGR} and set(hist["run"]) == {1, 2}
    assert hist["epoch"].max() == 2


def test_a_stage_runs_alone_then_comes_from_the_cache(tmp_path, monkeypatch):
    first = Experiment(tiny(), cache=tmp_path, progress=False).run("gradient_regularisation")
    entries = sorted(p.name.rsplit("-", 1)[0] for p in tmp_path.glob("*.pt"))
    assert entries == [
        "expert-run0", "expert-run1", "students-expert_teacher",
        "students-gradient_regularisation", "students-grid_search", "students-standard_teacher",
        "teacher-run0", "teacher-run1",
    ]
    again = Experiment(tiny(), cache=tmp_path, progress=False)
    assert set(again.teacher_history("expert")["run"]) == {1, 2}

    def no_training(*args, **kwargs):
        raise AssertionError("everything should come from the cache")

    monkeypatch.setattr(training, "train_many", no_training)
    again = Experiment(tiny(), cache=tmp_path, progress=False).run("gradient_regularisation")
    assert again.results == first.results


def test_cached_gives_a_stage_only_when_nothing_must_train(tmp_path, monkeypatch):
    Experiment(tiny(), cache=tmp_path, progress=False).run("standard_teacher")
    trained = spy_trainings(monkeypatch)
    exp = Experiment(tiny(), cache=tmp_path, progress=False)
    assert exp.cached("expert_teacher") is None  # its experts are not in the cache
    assert exp.cached("standard_teacher").results == exp.run("standard_teacher").results
    assert trained == [] and exp.may_train  # it trained nothing, and may train again
    assert exp.run("expert_teacher") is exp.cached("expert_teacher")
    assert trained != []
    assert Experiment(tiny(), cache=False, progress=False).cached("standard_teacher") is None


def test_changed_settings_do_not_reuse_the_cache(tmp_path):
    Experiment(tiny(), cache=tmp_path, progress=False).teachers("teacher")
    before = set(tmp_path.glob("*.pt"))
    Experiment(tiny(epochs_teacher=3), cache=tmp_path, progress=False).teachers("teacher")
    assert len(set(tmp_path.glob("*.pt")) - before) == 2


def test_corrupt_teacher_checkpoint_is_rebuilt(tmp_path):
    exp = Experiment(tiny(), cache=tmp_path, progress=False)
    original = exp.teachers("expert")
    path = next(tmp_path.glob("expert-run1-*.pt"))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(CacheWarning, match="expert-run1"):
        rebuilt = Experiment(tiny(), cache=tmp_path, progress=False).teachers("expert")
    assert type(rebuilt[1]) is ExpertTeacherNet
    # both runs trained again together, as in a clean run: the same weights to the bit
    assert same_weights(rebuilt[0], original[0]) and same_weights(rebuilt[1], original[1])
    assert Experiment(tiny(), cache=tmp_path, progress=False).teachers("expert")  # now valid


def test_a_runs_teacher_does_not_depend_on_the_other_runs():
    one = Experiment(tiny(n_runs=1), cache=False, progress=False).teachers("expert")
    three = Experiment(tiny(n_runs=3), cache=False, progress=False).teachers("expert")
    assert close_weights(one[0], three[0])
    assert not close_weights(three[0], three[1], atol=1e-2)


def test_same_settings_give_bit_identical_results_twice():
    a = Experiment(tiny(), cache=False, progress=False).run("expert_teacher")
    b = Experiment(tiny(), cache=False, progress=False).run("expert_teacher")
    assert a.results == b.results


def test_unknown_stage():
    with pytest.raises(ValueError, match="valid stages"):
        Experiment(tiny(), cache=False, progress=False).run("part5")


# ---------------------------------------------------------------- the lessons' stages


@pytest.fixture(scope="module")
def lessons(tmp_path_factory):
    exp = Experiment(tiny(), cache=tmp_path_factory.mktemp("cache"), progress=False)
    return exp, {stage: exp.run(stage) for stage in stages.names("lesson")}


def test_heldout_mse_per_epoch_is_the_test_mse_of_the_final_weights(lessons):
    exp, _ = lessons
    history = exp.teacher_history("teacher")
    last = history[(history["term"] == "heldout") & (history["epoch"] == 2)]
    for run, net in enumerate(exp.teachers("teacher"), start=1):
        value = last[last["run"] == run]["loss"].item()
        assert value == pytest.approx(evaluate(net, exp.data.X_test, exp.data.y_test)["mse"],
                                      rel=1e-5)


def test_fresh_inputs_students_take_the_same_number_of_steps(lessons, monkeypatch):
    exp, stages = lessons
    result = stages["fresh_inputs_teacher"]
    assert set(result.results) == {TEACHER, SCRATCH, names.TUNED["scratch"], DISTILLED,
                                   HP_ONLY["teacher"], FRESH["teacher"]}
    assert len(exp.fresh_inputs()) == exp.settings.fresh_factor * len(exp.data.X_train)
    trainings = spy_trainings(monkeypatch)
    settings = tiny(epochs_student=10)
    Experiment(settings, cache=False, progress=False).run("fresh_inputs_teacher")
    seen = {t.labels[0]: (len(t.X), t.kwargs["num_epochs"], t.kwargs["batch_size"])
            for t in trainings}
    (n_only, e_only, b), (n_fresh, e_fresh, _) = (
        seen[f"run 1: {HP_ONLY['teacher']}"], seen[f"run 1: {FRESH['teacher']}"])
    assert n_fresh == 5 * n_only and e_only == 10 and e_fresh == 2
    assert -(-n_only // b) * e_only == pytest.approx(-(-n_fresh // b) * e_fresh, rel=0.05)


def test_expert_ablation_pairs_the_regularised_teacher_with_the_standard_one(lessons):
    exp, stages = lessons
    result = stages["expert_ablation"]
    assert {names.REGULARISED, TEACHER, EXPERT, names.DISTILLED_REGULARISED} <= set(result.results)
    key = teacher_key(exp.settings, "regularised", 0)
    assert key["weight_decay"] == exp.settings.weight_decay_expert
    assert teacher_key(exp.settings, "regularised", 0)["shuffle"] == "teacher"
    assert all(type(net) is RegularisedTeacherNet for net in exp.teachers("regularised"))
    assert result.tests["regularised teacher vs teacher"].alternative == "two-sided"


def test_model_selection_chooses_on_validation_never_on_test(lessons, monkeypatch):
    exp, stages = lessons
    result = stages["model_selection"]
    table = result.validation
    assert list(table.columns) == ["Weights", "Mean validation MSE", LEAKED, "Mean test MSE"]
    assert result.chosen == table.iloc[0]["Weights"]
    assert table["Mean validation MSE"].is_monotonic_increasing
    X_fit, _, X_val, _ = exp.validation()
    assert len(X_fit) + len(X_val) == len(exp.data.X_train)
    # the choice follows the validation numbers even when the test set disagrees
    grid = exp.run("grid_search")
    flipped = {n: {"mse": [-v for v in d["mse"]], "r2": d["r2"]} for n, d in grid.results.items()}
    monkeypatch.setitem(exp._stages, "grid_search", dataclasses.replace(grid, results=flipped))
    monkeypatch.delitem(exp._stages, "model_selection")
    again = exp.run("model_selection")
    assert again.chosen == result.chosen


def test_last_epoch_averages_each_models_final_terms(lessons):
    exp, stages = lessons
    table = last_epoch(exp.run("standard_teacher").history)
    assert list(table.index) == [SCRATCH, DISTILLED]
    assert list(table.columns) == ["hard", "hp", "total", "heldout"]
    h = exp.run("standard_teacher").history
    expected = h[(h.model == DISTILLED) & (h.term == "hp") & (h.epoch == 2)]["loss"].mean()
    assert table.loc[DISTILLED, "hp"] == pytest.approx(expected)
    assert np.isnan(table.loc[SCRATCH, "hp"])  # scratch has no L_HP term
    fresh = last_epoch(stages["fresh_inputs_teacher"].history)
    assert set(fresh.index) == {HP_ONLY["teacher"], FRESH["teacher"]}


def test_fit_summary_scores_training_and_test_sets_in_eval_mode(lessons):
    exp, _ = lessons
    experts = exp.teachers("expert")
    table = fit_summary(exp, {EXPERT: experts})
    assert list(table.columns) == ["training MSE", "test MSE", "training MSE / σ²"]
    train_mse = np.mean([evaluate(n, exp.data.X_train, exp.data.y_train)["mse"] for n in experts])
    assert table.loc[EXPERT, "training MSE"] == pytest.approx(train_mse)
    assert table.loc[EXPERT, "training MSE / σ²"] == pytest.approx(train_mse / 0.01)
    again = fit_summary(exp, {EXPERT: experts})  # dropout off: the same numbers twice
    assert again.equals(table)


# ---------------------------------------------------------------- going further (05)


@pytest.fixture(scope="module")
def further(tmp_path_factory):
    exp = Experiment(tiny(), cache=tmp_path_factory.mktemp("cache"), progress=False)
    return exp


def test_jacobian_and_feature_students_are_compared_with_the_validation_choice(further):
    exp = further
    chosen = exp.run("model_selection").chosen
    for stage, name in ((exp.run("jacobian_matching"), JAC),
                        (exp.run("feature_distillation"), names.FEAT)):
        assert stage.chosen == chosen and name in stage.results and chosen in stage.results
        main = stage.tests[f"{name} vs validation-chosen L_HP"]
        assert (main.a, main.b, main.alternative, main.descriptive) == (name, chosen,
                                                                        "two-sided", False)
        assert all(isinstance(net, StudentNet) for net in stage.models[name])
    assert exp.run("jacobian_matching").weights[JAC] == {"hard": 0.2, "hp": 0.5,
                                                                "jac": 0.3}
    assert exp.run("feature_distillation").weights[names.FEAT] == exp.settings.feat_weights


def test_three_way_points_cover_the_simplex_at_step_a_tenth(further):
    points = search.three_way_points("jac")
    assert len(points) == 66
    assert all(abs(sum(p.values()) - 1) < 1e-9 for p in points)
    assert {"hard": 0.0, "hp": 0.0, "jac": 1.0} in points and {"hard": 1.0, "hp": 0.0,
                                                                "jac": 0.0} in points


def test_three_way_search_chooses_on_validation(further, monkeypatch):
    exp = further
    # a smaller simplex keeps the test fast; the choice logic is the same
    monkeypatch.setattr(search, "three_way_points", lambda term: [
        {"hard": 0.5, "hp": 0.5, term: 0.0}, {"hard": 0.2, "hp": 0.5, term: 0.3},
        {"hard": 0.0, "hp": 0.0, term: 1.0}])
    result = exp.run("three_way_search_jac")
    table = result.validation
    best = table.loc[table["Mean validation MSE"].idxmin(), "Weights"]
    assert result.chosen == best and len(table) == 3
    row = table[table["Weights"] == best].iloc[0]
    assert result.weights[names.THREE_WAY] == {
        t: float(row[t]) for t in ("hard", "hp", "jac") if row[t] > 0}
    assert "3-way vs validation-chosen L_HP" in result.tests


def test_early_stopping_restores_the_best_validation_epoch(tmp_path):
    exp = Experiment(tiny(epochs_student=6, patience=50), cache=tmp_path, progress=False)
    result = exp.run("early_stopping")
    X_fit, y_fit, X_val, y_val = exp.validation()
    best = exp.run("early_stopping").best_epochs
    for kind in ("scratch", "distilled"):
        stopped, plain = names.STOPPED[kind], names.FIT[kind]
        assert all(1 <= b <= 6 for b in best[stopped])
        for run in range(2):
            # same start and batches: the stopped student is never worse on validation
            v_stopped = evaluate(result.models[stopped][run], X_val, y_val)["mse"]
            v_plain = evaluate(result.models[plain][run], X_val, y_val)["mse"]
            assert v_stopped <= v_plain + 1e-7
            if best[stopped][run] == 6:
                assert v_stopped == pytest.approx(v_plain, rel=1e-6)
    assert result.tests["early stopped vs all epochs (scratch)"].alternative == "two-sided"
    # the best epochs come back from the cache too
    again = Experiment(tiny(epochs_student=6, patience=50), cache=tmp_path, progress=False)
    again.run("early_stopping")
    assert again.run("early_stopping").best_epochs == best


def test_cost_comparison_repeats_the_students_costs_and_collects_their_errors(further):
    exp = further
    exp.run("jacobian_matching")
    table, mse = cost_comparison(exp, [SCRATCH, JAC], min_run_time=0.01)
    assert list(table["Model"]) == [TEACHER, EXPERT, SCRATCH, JAC]
    assert list(table["parameters"]) == [109_825, 126_337, 6_977, 6_977]
    assert (table["latency batch 1 (µs)"] > 0).all()
    assert mse[JAC] == exp.run("jacobian_matching").results[JAC]["mse"]
    with pytest.raises(ValueError, match="run the stages"):
        cost_comparison(exp, ["Student (nobody)"], min_run_time=0.01)
