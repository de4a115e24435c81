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
def original_protocol():
    return load("original_protocol")


def test_baseline_nets_are_the_originals(original_protocol):
    pairs = [
        (original_protocol.teacher_net(), TeacherNet()),
        (original_protocol.expert_teacher_net(), ExpertTeacherNet()),
        (original_protocol.student_net(), StudentNet()),
    ]
    for ours, theirs in pairs:
        assert count_parameters(ours) == count_parameters(theirs)
        assert [type(m) for m in ours] == [type(m) for m in theirs.layers]


def test_scaled_epochs(original_protocol):
    assert original_protocol.scaled_epochs(0.1) == (70, 60)
    assert original_protocol.scaled_epochs(1) == (700, 600)
    assert original_protocol.scaled_epochs(1e-6) == (1, 1)
    with pytest.raises(ValueError):
        original_protocol.scaled_epochs(0)


def test_original_baseline_runs_every_stage(original_protocol):
    bench = original_protocol.OriginalProtocol(make_dataset(), runs=2, epochs_teacher=1,
                                       epochs_student=1)
    for stage in original_protocol.STAGES:
        assert bench.run(stage) > 0
    assert list(bench.seconds) == list(original_protocol.STAGES)
    assert len(bench.mse) == 11  # 2 teachers + scratch + 2 distilled + 5 grid + L_GR
    for name, values in bench.mse.items():
        assert len(values) == 2, name
        assert all(math.isfinite(v) and v > 0 for v in values), name


def test_both_sides_end_to_end(original_protocol, tmp_path, capsys):
    path = tmp_path / "bench.json"
    out = original_protocol.main(["--scale", "0.0015", "--runs", "2", "--json", str(path)])
    assert out["settings"]["epochs_teacher"] == out["settings"]["epochs_student"] == 1
    for side in ("original", "kdteach"):
        assert set(out["seconds"][side]) == set(original_protocol.STAGES)
        assert all(s > 0 for s in out["seconds"][side].values())
        assert set(out["mse"][side]) == set(out["mse"]["original"])
        for values in out["mse"][side].values():
            assert len(values) == 2 and all(math.isfinite(v) for v in values)
    assert json.loads(path.read_text())["seconds"] == out["seconds"]
    printed = capsys.readouterr().out
    assert "total" in printed and "Student (Distilled with L_GR)" in printed


def test_widget_retrain_times_preparing_looking_up_and_training_live(tmp_path, capsys):
    widget = load("widget_retrain")
    settings = get_settings("quick", device="cpu", n_runs=1, epochs_teacher=1, epochs_student=2)
    result = widget.measure(settings, tmp_path, repeats=1)
    assert set(result["prepare"]) == set(result["prepared"]) == {"retrain", "lgr"}
    assert all(s > 0 for s in result["prepare"].values())
    assert all(len(s) == 1 and s[0] > 0 for s in result["prepared"].values())
    off = result["off_grid"]
    assert 0 < off["first_curve"][0] < off["seconds"][0]  # the curve came before the result
    assert capsys.readouterr().out == ""  # measuring prints nothing; main() prints


def test_step_rates_count_three_products_per_layer_and_report_every_kind(tmp_path):
    rates = load("step_rates")
    stack = rates.stack_of("student", 2)
    assert rates.layer_shapes(stack) == [(10, 64), (64, 64), (64, 32), (32, 1)]
    assert rates.step_flops(stack, 8) == 6 * 2 * 8 * (640 + 4096 + 2048 + 32)
    assert rates.stack_of("expert", 2).dropout_generators is not None
    path = tmp_path / "rates.json"
    rows = rates.main(["--runs", "2", "--batch", "8", "--min-run-time", "0.01",
                       "--json", str(path)])
    assert [r["kind"] for r in rows] == ["teacher", "expert", "student"]
    assert all(r["step_ms"] > 0 and r["bmm_ms"] > 0 and r["step_gflops"] > 0 for r in rows)
    assert json.loads(path.read_text()) == rows
    with pytest.raises(SystemExit):
        rates.main(["--runs", "0"])
