import numpy as np
import pandas as pd
import pytest
import torch

from kdteach import experiments
from kdteach.cache import CacheWarning
from kdteach.config import get_settings
from kdteach.experiments import (
    DISTILLED,
    DISTILLED_EXPERT,
    EXPERT,
    LGR,
    SCRATCH,
    TEACHER,
    Experiment,
    all_results,
    grid_name,
    initial_student,
    initial_teacher,
)
from kdteach.models import ExpertTeacherNet, StudentNet, TeacherNet


def tiny(**changes):
    fields = {"n_runs": 2, "epochs_teacher": 2, "epochs_student": 2, **changes}
    return get_settings("quick", device="cpu", **fields)


def same_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_initial_states_follow_the_seeds_order():
    torch.manual_seed(3)
    student = StudentNet()
    teacher = TeacherNet()
    torch.manual_seed(3)
    expert = ExpertTeacherNet()
    assert same_weights(initial_student(3), student)
    assert same_weights(initial_teacher("teacher", 3), teacher)
    assert same_weights(initial_teacher("expert", 3), expert)
    assert not same_weights(initial_student(3), initial_student(4))
    with pytest.raises(ValueError, match="teacher kind"):
        initial_teacher("wizard", 0)


def test_initial_states_leave_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    initial_student(0)
    initial_teacher("expert", 1)
    assert torch.equal(torch.rand(3), expected)


def test_every_student_of_a_run_starts_from_one_state(tmp_path, monkeypatch):
    seen = []
    original = experiments.train_many

    def spy(nets, *args, **kwargs):
        if isinstance(nets[0], StudentNet):
            seen.append(([n.state_dict() for n in nets], kwargs["labels"]))
        return original(nets, *args, **kwargs)

    monkeypatch.setattr(experiments, "train_many", spy)
    exp = Experiment(tiny(), cache=False, progress=False)
    exp.grid_search()
    states, labels = seen[0]
    assert len(states) == 2 * 5
    for state, label in zip(states, labels):
        run = int(label.split()[1].rstrip(":")) - 1
        ref = initial_student(run).state_dict()
        assert all(torch.equal(state[k], ref[k]) for k in ref)


def test_stage_results_use_the_seeds_names_and_shapes(tmp_path):
    exp = Experiment(tiny(), cache=tmp_path, progress=False)
    stages = exp.reproduce()
    names = set(all_results(stages))
    grid = {grid_name(w) for w in exp.settings.grid_weights}
    assert grid == {"H=0.1_HP=0.9", "H=0.3_HP=0.7", "H=0.5_HP=0.5", "H=0.7_HP=0.3", "H=0.9_HP=0.1"}
    assert names == {TEACHER, SCRATCH, DISTILLED, EXPERT, DISTILLED_EXPERT, LGR} | grid
    for result in stages.values():
        for data in result.results.values():
            assert len(data["mse"]) == len(data["r2"]) == 2
            assert np.all(np.isfinite(data["mse"]))
        runs = result.runs
        assert list(runs.columns) == ["stage", "model", "run", "hard", "hp", "gr", "mse", "r2"]
        assert set(runs["run"]) == {0, 1}
        assert isinstance(result.summary, pd.DataFrame) and result.report()
    part2 = stages["expert_teacher"]
    assert part2.tests["distilled from expert vs scratch"].alternative == "less"
    final = stages["gradient_regularisation"]
    assert final.tests["L_GR vs best L_HP"].alternative == "two-sided"
    assert final.best == stages["grid_search"].summary.iloc[0]["Weights"]
    hist = final.history
    assert set(hist["term"]) == {"hard", "hp", "gr", "total"}
    assert hist["epoch"].max() == 2


def test_a_stage_runs_alone_then_comes_from_the_cache(tmp_path, monkeypatch):
    first = Experiment(tiny(), cache=tmp_path, progress=False).gradient_regularisation()
    names = sorted(p.name.rsplit("-", 1)[0] for p in tmp_path.glob("*.pt"))
    assert names == [
        "expert-run0", "expert-run1", "students-expert_teacher",
        "students-gradient_regularisation", "students-grid_search", "students-standard_teacher",
        "teacher-run0", "teacher-run1",
    ]

    def no_training(*args, **kwargs):
        raise AssertionError("everything should come from the cache")

    monkeypatch.setattr(experiments, "train_many", no_training)
    again = Experiment(tiny(), cache=tmp_path, progress=False).gradient_regularisation()
    assert again.results == first.results


def test_changed_settings_do_not_reuse_the_cache(tmp_path):
    Experiment(tiny(), cache=tmp_path, progress=False).teachers("teacher")
    before = set(tmp_path.glob("*.pt"))
    Experiment(tiny(epochs_teacher=3), cache=tmp_path, progress=False).teachers("teacher")
    assert len(set(tmp_path.glob("*.pt")) - before) == 2


def close_weights(a, b, atol=1e-4):
    """Equal up to rounding: Adam turns last-bit gradient differences on near-zero gradients
    into at most about one step of the learning rate (1e-4 for teachers)."""
    pairs = zip(a.state_dict().values(), b.state_dict().values())
    return all(torch.allclose(p, q, rtol=0, atol=atol) for p, q in pairs)


def test_corrupt_teacher_checkpoint_is_rebuilt(tmp_path):
    exp = Experiment(tiny(), cache=tmp_path, progress=False)
    original = exp.teachers("expert")
    path = next(tmp_path.glob("expert-run1-*.pt"))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(CacheWarning, match="expert-run1"):
        rebuilt = Experiment(tiny(), cache=tmp_path, progress=False).teachers("expert")
    assert type(rebuilt[1]) is ExpertTeacherNet
    assert same_weights(rebuilt[0], original[0])  # the valid entry was loaded as stored
    # run 1 was retrained alone rather than in a stack of two: same numbers up to rounding
    assert close_weights(rebuilt[1], original[1])
    assert Experiment(tiny(), cache=tmp_path, progress=False).teachers("expert")  # now valid


def test_a_runs_teacher_does_not_depend_on_the_other_runs():
    one = Experiment(tiny(n_runs=1), cache=False, progress=False).teachers("expert")
    three = Experiment(tiny(n_runs=3), cache=False, progress=False).teachers("expert")
    assert close_weights(one[0], three[0])
    assert not close_weights(three[0], three[1], atol=1e-2)


def test_same_settings_give_bit_identical_results_twice():
    a = Experiment(tiny(), cache=False, progress=False).expert_teacher()
    b = Experiment(tiny(), cache=False, progress=False).expert_teacher()
    assert a.results == b.results


def test_unknown_stage():
    with pytest.raises(ValueError, match="valid stages"):
        Experiment(tiny(), cache=False, progress=False).run("part5")
