"""Smoke tests for benchmarks/: tiny runs, so the benchmark scripts cannot silently rot."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

from kdteach.config import get_settings
from kdteach.data import make_dataset
from kdteach.models import ExpertTeacherNet, StudentNet, TeacherNet, count_parameters

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def seed_protocol():
    return load("seed_protocol")


def test_baseline_nets_are_the_seeds(seed_protocol):
    pairs = [
        (seed_protocol.teacher_net(), TeacherNet()),
        (seed_protocol.expert_teacher_net(), ExpertTeacherNet()),
        (seed_protocol.student_net(), StudentNet()),
    ]
    for ours, theirs in pairs:
        assert count_parameters(ours) == count_parameters(theirs)
        assert [type(m) for m in ours] == [type(m) for m in theirs.layers]


def test_scaled_epochs(seed_protocol):
    assert seed_protocol.scaled_epochs(0.1) == (70, 60)
    assert seed_protocol.scaled_epochs(1) == (700, 600)
    assert seed_protocol.scaled_epochs(1e-6) == (1, 1)
    with pytest.raises(ValueError):
        seed_protocol.scaled_epochs(0)


def test_seed_baseline_runs_every_stage(seed_protocol):
    bench = seed_protocol.SeedProtocol(make_dataset(), runs=2, epochs_teacher=1,
                                       epochs_student=1)
    for stage in seed_protocol.STAGES:
        assert bench.run(stage) > 0
    assert list(bench.seconds) == list(seed_protocol.STAGES)
    assert len(bench.mse) == 11  # 2 teachers + scratch + 2 distilled + 5 grid + L_GR
    for name, values in bench.mse.items():
        assert len(values) == 2, name
        assert all(math.isfinite(v) and v > 0 for v in values), name


def test_both_sides_end_to_end(seed_protocol, tmp_path, capsys):
    path = tmp_path / "bench.json"
    out = seed_protocol.main(["--scale", "0.0015", "--runs", "2", "--json", str(path)])
    assert out["settings"]["epochs_teacher"] == out["settings"]["epochs_student"] == 1
    for side in ("seed", "kdteach"):
        assert set(out["seconds"][side]) == set(seed_protocol.STAGES)
        assert all(s > 0 for s in out["seconds"][side].values())
        assert set(out["mse"][side]) == set(out["mse"]["seed"])
        for values in out["mse"][side].values():
            assert len(values) == 2 and all(math.isfinite(v) for v in values)
    assert json.loads(path.read_text())["seconds"] == out["seconds"]
    printed = capsys.readouterr().out
    assert "total" in printed and "Student (Distilled with L_GR)" in printed


def test_widget_retrain_times_each_weight():
    widget = load("widget_retrain")
    settings = get_settings("quick", device="cpu", epochs_student=1)
    data = make_dataset()
    teacher = ExpertTeacherNet().eval()
    result = widget.time_retrains(teacher, data, settings, [0.2, 0.8], repeats=1, warmup=False)
    assert set(result["seconds"]) == {0.2, 0.8}
    assert all(s[0] > 0 for s in result["seconds"].values())
    assert all(math.isfinite(m[0]) for m in result["mse"].values())
