"""The stage table is the one definition of each stage."""

import pytest

from kdteach.lesson.retrain import role
from kdteach.protocol import stages
from kdteach.protocol.experiment import Experiment
from kdteach.protocol.names import DISTILLED_EXPERT, HP_ONLY, JAC, LGR, SCRATCH, grid_name
from kdteach.protocol.settings import get_settings


def tiny(**changes):
    return get_settings("quick", device="cpu", n_samples=400, epochs_teacher=2,
                        epochs_student=2, **changes)


def test_the_table_lists_every_stage_once_in_its_part():
    assert stages.ORIGINAL == ("standard_teacher", "expert_teacher", "grid_search",
                               "gradient_regularisation")
    assert stages.names("lesson") == ("fair_baseline_teacher", "fair_baseline_expert",
                                      "fresh_inputs_teacher", "fresh_inputs_expert",
                                      "expert_ablation", "model_selection")
    assert set(stages.names()) == set(stages.STAGES)
    assert sum(len(stages.names(p)) for p in stages.PARTS) == len(stages.STAGES)
    with pytest.raises(ValueError, match="part must be one of original, lesson, further"):
        stages.names("extra")


def test_a_stage_depends_only_on_stages_listed_before_it():
    order = list(stages.STAGES)
    for name, stage in stages.STAGES.items():
        assert stage.name == name and stage.title
        for dependency in stage.depends_on:
            assert order.index(dependency) < order.index(name), (name, dependency)


def test_an_unknown_stage_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown stage 'part5'; valid stages: standard_teacher"):
        stages.stage("part5")


def test_a_stage_trains_exactly_the_jobs_the_table_declares(monkeypatch):
    exp = Experiment(tiny(), cache=False, progress=False)
    trained = {}
    real = exp.students

    def spy(part, jobs, *args, **kwargs):
        trained.setdefault(part, [job.name for job in jobs])
        return real(part, jobs, *args, **kwargs)

    monkeypatch.setattr(exp, "students", spy)
    for name in ("standard_teacher", "expert_teacher", "grid_search", "gradient_regularisation",
                 "fresh_inputs_teacher", "expert_ablation", "jacobian_matching"):
        exp.run(name)
        declared = [job.name for job in stages.STAGES[name].jobs(exp.settings)]
        part = name + ("-train" if name.startswith("fresh_inputs") else "")
        assert trained[part] == declared, name


def test_running_a_stage_runs_what_it_depends_on_first():
    exp = Experiment(tiny(), cache=False, progress=False)
    exp.run("gradient_regularisation")
    assert list(exp.completed) == ["standard_teacher", "expert_teacher", "grid_search",
                                   "gradient_regularisation"]
    assert exp.run("grid_search") is exp.completed["grid_search"]  # memoised


def test_a_retrained_students_role_is_the_table_student_with_its_loss_and_teacher():
    from kdteach.core.losses import DistillationLoss

    s = tiny()
    assert role(s, DistillationLoss(hard=1.0), "expert") == SCRATCH
    assert role(s, DistillationLoss(hard=0.3, hp=0.7), "expert") == DISTILLED_EXPERT
    assert role(s, DistillationLoss(hard=0.5, hp=0.5), "expert") == grid_name(
        {"hard": 0.5, "hp": 0.5})
    assert role(s, DistillationLoss(hp=1.0), "expert") == HP_ONLY["expert"]
    assert role(s, DistillationLoss.from_weights(s.gr_weights), "expert") == LGR
    assert role(s, DistillationLoss(hard=0.2, hp=0.5, jac=0.3), "expert") == JAC
    assert role(s, DistillationLoss(hard=0.25, hp=0.75), "expert") == (
        "Student (hard=0.25, hp=0.75, from expert)")


def test_each_stage_names_the_lesson_that_runs_it():
    import json
    import re
    from pathlib import Path

    notebooks = Path(__file__).resolve().parents[2] / "notebooks"
    ran = {}
    for path in sorted(notebooks.glob("0*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        source = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        for name in re.findall(r'exp\.run\("(\w+)"\)', source):
            ran.setdefault(name, path.stem)  # the first lesson that runs it
    assert {n: s.lesson for n, s in stages.STAGES.items() if s.lesson} == ran
    assert stages.lesson_stages() == tuple(n for n in stages.STAGES if n in ran)
