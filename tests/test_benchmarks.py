"""Smoke tests for benchmarks/: tiny runs, so the benchmark scripts cannot silently rot."""

import importlib.util
import json
import math
import os
from pathlib import Path

import pytest
import torch

from kdteach.core.data import make_dataset
from kdteach.core.models import ExpertTeacherNet, StudentNet, TeacherNet, count_parameters
from kdteach.protocol.settings import get_settings

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


def busy_machine_stat():
    """A fake /proc/stat reader: between two reads, the machine's cores were busy for 1000 s
    more, far more than this process can have used."""
    ticks = os.sysconf("SC_CLK_TCK")
    reads = iter(range(10**6))

    def read():
        busy = 1000 * ticks * next(reads)
        return f"cpu  {busy} 0 0 5000 0 0 0 0 0 0\ncpu0 {busy} 0 0 5000 0 0 0 0 0 0\n"

    return read


def test_interleaved_repeats_report_medians_spreads_and_a_busy_machine(original_protocol,
                                                                        tmp_path, capsys):
    path = tmp_path / "bench.json"
    out = original_protocol.main(["--scale", "0.0015", "--runs", "2", "--repeat", "2",
                                  "--no-whole-process", "--no-floor", "--json", str(path)],
                                 read_stat=busy_machine_stat())
    assert out["settings"]["epochs_teacher"] == out["settings"]["epochs_student"] == 1
    assert len(out["repeats"]) == 2
    summary = out["summary"]
    for side in ("original", "kdteach"):
        assert set(out["seconds"][side]) == set(original_protocol.STAGES)
        for stage in original_protocol.STAGES:
            per_repeat = [r["seconds"][side][stage] for r in out["repeats"]]
            s = summary["stages"][side][stage]
            assert s == {"median": sum(per_repeat) / 2, "min": min(per_repeat),
                         "max": max(per_repeat)}
            assert out["seconds"][side][stage] == s["median"]
        totals = [sum(r["seconds"][side].values()) for r in out["repeats"]]
        assert summary["total"][side]["median"] == pytest.approx(sum(totals) / 2)
        assert set(out["mse"][side]) == set(out["mse"]["original"])
        for values in out["mse"][side].values():
            assert len(values) == 2 and all(math.isfinite(v) for v in values)
    ratios = summary["ratios"]
    assert ratios["total"] == pytest.approx(
        summary["total"]["original"]["median"] / summary["total"]["kdteach"]["median"])
    assert "whole_process" not in ratios and summary["whole_process"] is None
    assert out["floor"] is None  # --no-floor
    # every timed part ran beside 1000 s a second of other work: each one is named
    assert len(out["load_warnings"]) == 2 * 2 * len(original_protocol.STAGES)
    assert all(r["load"]["kdteach"]["grid_search"]["other_cores"] > 100 for r in out["repeats"])
    saved = json.loads(path.read_text())
    assert saved["seconds"] == out["seconds"] and saved["repeats"] == out["repeats"]
    printed = capsys.readouterr().out
    assert "median of 2 interleaved repeat(s)" in printed and "sum of the stages" in printed
    assert "Student (Distilled with L_GR)" in printed
    assert "WARNING: other processes used" in printed
    assert "during repeat 2, kdteach's grid_search" in printed
    assert "threads: the original loop 1 intra-op" in printed
    assert "kdteach as `python -m kdteach reproduce` runs" in printed


def test_whole_processes_are_timed_beside_the_stages(original_protocol, capsys):
    out = original_protocol.main(["--scale", "0.0015", "--runs", "2", "--repeat", "1"])
    (repeat,) = out["repeats"]
    whole = repeat["whole_process"]
    for side in ("original", "kdteach"):
        assert whole["seconds"][side] > 0
        # each fresh process reported its own stages, and spent time beyond them
        assert 0 < whole["stage_seconds"][side] < whole["seconds"][side]
    ratios = out["summary"]["ratios"]
    assert ratios["whole_process"] == pytest.approx(
        whole["seconds"]["original"] / whole["seconds"]["kdteach"])
    printed = capsys.readouterr().out
    assert "whole process" in printed and "whole process " in printed.split("original/kdteach:")[-1]
    # the floor of these settings, beside the original loop's time of this run
    floor = out["floor"]
    assert floor["kinds"]["student"]["network_epochs"] == 2 * 9 * 1
    assert f"original loop {out['summary']['total']['original']['median']:.1f} s" in printed


def test_the_load_of_other_processes_is_the_machines_minus_our_own(original_protocol):
    ticks = os.sysconf("SC_CLK_TCK")
    stat = "cpu  {} 10 {} 9000 40 5 5 {} 0 0\n"
    busy = original_protocol.machine_busy_seconds
    assert busy(stat.format(100, 50, 0)) == pytest.approx((100 + 10 + 50 + 5 + 5) / ticks)
    assert busy(stat.format(100, 50, 30)) == pytest.approx((100 + 10 + 50 + 5 + 5 + 30) / ticks)
    assert busy(None) is None and busy("intr 0\n") is None
    Snapshot = original_protocol.Snapshot
    before = Snapshot(wall=0.0, machine_busy=100.0, own=1.0)
    quiet = original_protocol.other_load(before, Snapshot(10.0, 118.5, 19.0))  # 0.5 s others
    busy_ = original_protocol.other_load(before, Snapshot(10.0, 125.0, 19.0))  # 7 s others
    assert quiet["other_cpu_s"] == pytest.approx(0.5) and quiet["other_cores"] == 0.05
    assert busy_["other_cpu_s"] == pytest.approx(7.0) and busy_["other_cores"] == 0.7
    unknown = original_protocol.other_load(Snapshot(0.0, None, 0.0), Snapshot(1.0, None, 1.0))
    assert unknown["other_cores"] is None
    warnings = original_protocol.load_warnings({"quiet part": quiet, "busy part": busy_,
                                                "part without /proc": unknown})
    assert len(warnings) == 1
    assert "70 % of one core" in warnings[0] and "during busy part" in warnings[0]
    assert original_protocol.load_warnings({"busy part": busy_}, threshold=0.8) == []


def test_the_timer_reads_the_machine_before_and_after_the_part(original_protocol):
    ran = []
    seconds, load = original_protocol.Timer("cpu", busy_machine_stat())(lambda: ran.append(1))
    assert ran == [1] and seconds >= 0
    assert load["other_cpu_s"] > 999 and load["other_cores"] > 100


def test_machine_names_its_processor(original_protocol):
    info = original_protocol.machine_info("processor\t: 0\nmodel name\t: Test CPU 9000\n")
    assert info["cpu_model"] == "Test CPU 9000"
    assert info["threads"] == torch.get_num_threads()


def test_cuda_without_a_gpu_is_a_clear_error(original_protocol, monkeypatch, capsys):
    with pytest.raises(ValueError, match="no CUDA GPU.*--device cpu"):
        original_protocol.check_device("cuda", cuda_available=lambda: False)
    original_protocol.check_device("cpu", cuda_available=lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        original_protocol.main(["--device", "cuda", "--scale", "0.0015", "--runs", "2"])
    assert "--device cuda: this PyTorch sees no CUDA GPU" in capsys.readouterr().err


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
    profile = tmp_path / "profile.txt"
    rows = rates.main(["--runs", "2", "--batch", "8", "--min-run-time", "0.01",
                       "--json", str(path), "--profile", str(profile)])
    assert [(r["kind"], r["masks"]) for r in rows] == [
        ("teacher", ""), ("expert", "ahead"), ("expert", "inline"), ("expert", "none"),
        ("student", "")]
    assert set(rates.mask_shares(rows)) == {"expert"}
    assert profile.read_text().count("aten::bmm") == 3  # one table per stack, as trained
    assert all(r["step_ms"] > 0 and r["bmm_ms"] > 0 and r["step_gflops"] > 0 for r in rows)
    assert json.loads(path.read_text()) == rows
    with pytest.raises(SystemExit):
        rates.main(["--runs", "0"])


def test_the_arithmetic_floor_counts_every_training_step_of_the_protocol(capsys):
    rates = load("step_rates")
    # the original's 5 runs: 5 teachers and 5 experts of 700 epochs, 9 students a run of 600
    epochs = rates.protocol_network_epochs()
    assert epochs == {"teacher": 3500, "expert": 3500, "student": 5 * 9 * 600}
    assert rates.full_n_train() == 1600  # the 2000 samples less the 20 % held out
    floor = rates.arithmetic_floor({"teacher": 2, "student": 3}, n_train=100, cores=2,
                                   batch=8, stacks=(1, 2), min_run_time=0.01)
    teacher, student = floor["kinds"]["teacher"], floor["kinds"]["student"]
    per_sample = 6 * (10 * 256 + 256 * 256 + 256 * 128 + 128 * 64 + 64)
    assert teacher["tflop"] * 1e12 == pytest.approx(2 * 100 * per_sample)
    assert student["tflop"] * 1e12 == pytest.approx(3 * 100 * 6 * (640 + 4096 + 2048 + 32))
    for k in (teacher, student):
        assert k["stack"] in (1, 2)
        assert k["core_seconds"] == pytest.approx(k["tflop"] * 1e3 / k["bmm_gflops"])
        # the machine's rate with both cores at once: wall seconds, not core-seconds
        assert k["all_busy_seconds"] == pytest.approx(k["tflop"] * 1e3 / k["all_cores_gflops"])
    assert floor["seconds"] == pytest.approx((teacher["core_seconds"]
                                              + student["core_seconds"]) / 2)
    assert floor["seconds_all_busy"] == pytest.approx(teacher["all_busy_seconds"]
                                                      + student["all_busy_seconds"])
    text = rates.format_floor(floor, original_seconds=10 * floor["seconds_all_busy"])
    assert "over 2 core(s)" in text and "= 10.0×" in text and "2 cores at once" in text


def test_all_cores_rate_runs_each_cores_own_products_at_once(monkeypatch):
    rates = load("step_rates")
    stack = rates.stack_of("student", 2)
    calls = []
    real = rates.step_products

    def counted(stack, batch, seed=0):
        products = real(stack, batch, seed)

        def run():
            calls.append(seed)
            products()
        return run

    monkeypatch.setattr(rates, "step_products", counted)
    before = torch.get_num_threads()
    rate = rates.all_cores_bmm_rate(stack, batch=4, cores=3, seconds=0.05)
    assert torch.get_num_threads() == before  # restored
    assert set(calls) == {0, 1, 2}  # each core's thread ran its own products
    assert rate > 0


@pytest.fixture(scope="module")
def course():
    return load("course")


def test_course_cells_that_train_are_slow_or_show_a_progress_bar(course):
    bar = {"output_type": "display_data",
           "data": {"text/plain": "stages:  40%|████      | 2/5 [00:03<00:05,  1.2s/it]"}}
    printed = {"output_type": "stream", "name": "stdout", "text": "50%| not a bar"}
    cells = [course.CellTiming(1, 0.2, "exp.run('part1')", course.shows_progress_bar(
                 {"outputs": [bar]})),
             course.CellTiming(3, 7.5, "slider_grid(exp)", False),
             course.CellTiming(5, 4.9, "import kdteach", course.shows_progress_bar(
                 {"outputs": [printed]}))]
    lesson = course.LessonTiming("01_standard_teacher", 20.0, cells)
    rows = course.training_cells([lesson], threshold=5.0)
    assert [(r["cell"], r["progress_bar"]) for r in rows] == [(3, False), (1, True)]
    assert lesson.cell_seconds == pytest.approx(12.6)
    assert [p.stem[:2] for p in course.lesson_paths(only=["03", "00"])] == ["00", "03"]
    with pytest.raises(ValueError, match="no lesson"):
        course.lesson_paths(only=["09"])


def test_course_runs_a_lesson_from_an_empty_cache_beside_reproduce(course, tmp_path, capsys):
    committed = (course.NOTEBOOKS / "00_setup.ipynb").read_bytes()
    path = tmp_path / "course.json"
    kept = tmp_path / "kept"
    out = course.main(["--profile", "quick", "--only", "00", "--runs", "2",
                       "--epochs-teacher", "1", "--epochs-student", "1", "--json", str(path),
                       "--keep-cache", str(kept)])
    assert (course.NOTEBOOKS / "00_setup.ipynb").read_bytes() == committed
    assert kept.is_dir()  # the lessons' cache, moved out of the temporary folder
    with pytest.raises(SystemExit):
        course.parse_args(["--keep-cache", str(kept)])  # never into an existing folder
    saved = json.loads(path.read_text())
    (lesson,) = saved["lessons"]
    assert lesson["name"] == "00_setup" and lesson["seconds"] > 0
    timed = [c for c in lesson["cells"] if c["seconds"] is not None]
    assert len(timed) == len(lesson["cells"]) > 5  # every code cell ran and was timed
    assert 0 < lesson["cell_seconds"] < lesson["seconds"]
    assert "import pandas as pd" in [c["first_line"] for c in lesson["cells"]]
    assert saved["reproduce"]["seconds"] > 0 and "--no-cache" in saved["reproduce"]["command"]
    assert saved["course_over_reproduce"] == pytest.approx(
        lesson["seconds"] / saved["reproduce"]["seconds"])
    assert saved["settings"]["reproduce_overrides"] == {
        "runs": 2, "epochs_teacher": 1, "epochs_student": 1}
    assert saved["total_s"] == out["total_s"] == lesson["seconds"]
    printed = capsys.readouterr().out
    assert "machine:" in printed and "load average (1/5/15 min) before" in printed
    assert "00_setup" in printed and "course/reproduce" in printed


def test_input_gradients_by_products_equal_autograds_and_the_check_can_fail(capsys):
    bench = load("input_gradients")
    import torch as _torch

    from kdteach.core.losses import DistillationLoss

    stack, X, y, targets = bench.setup(n_models=3, batch=16)
    for weights in (bench.LOSSES["L_JAC"], bench.LOSSES["L_GR"]):
        diffs = bench.largest_differences(stack, DistillationLoss(**weights), X, y, targets)
        assert diffs["terms"] < 1e-5 and diffs["gradients"] < 1e-4, diffs
    # a product that forgets the masks is caught
    real = bench.input_vjp
    bench.input_vjp = lambda st, slopes, v: real(st, [_torch.ones_like(s) for s in slopes], v)
    try:
        wrong = bench.largest_differences(stack, DistillationLoss(**bench.LOSSES["L_JAC"]), X,
                                          y, targets)
    finally:
        bench.input_vjp = real
    assert wrong["terms"] > 1e-3
    assert bench.main(["--models", "2", "--batch", "8", "--min-run-time", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "L_JAC  step: autograd" in out and "products" in out and "plain  step" in out
