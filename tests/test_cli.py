import errno
import json
import os
import subprocess
import sys
import warnings

import pandas as pd
import pytest
import torch

from kdteach import __main__ as cli
from kdteach.core.stacked import StackedMLP
from kdteach.protocol.cache import CacheWarning
from kdteach.protocol.experiment import Experiment

TINY = ["--profile", "quick", "--runs", "2", "--epochs-teacher", "2", "--epochs-student", "2"]


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KDTEACH_DEVICE", "cpu")


def test_reproduce_writes_json_csv_and_figures(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["reproduce", *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Part 3: grid search" in printed and "p = " in printed
    assert printed.rstrip().splitlines()[-1].startswith("Stages ")  # and the whole command
    doc = json.loads((out / "results.json").read_text())
    assert set(doc) == {"profile", "settings", "timings_s", "models", "tests"}
    assert doc["profile"] == "quick" and doc["settings"]["n_runs"] == 2
    assert list(doc["timings_s"]) == [
        "standard_teacher", "expert_teacher", "grid_search", "gradient_regularisation"
    ]
    assert set(doc["models"]) >= {
        "Teacher", "Student (Scratch)", "Student (Distilled)", "Expert Teacher",
        "Student (Distilled from Expert)", "H=0.1_HP=0.9", "H=0.9_HP=0.1",
        "Student (Distilled with L_GR)",
    }
    assert all(len(m["mse"]) == 2 for m in doc["models"].values())
    # the original's comparison has a partner chosen on the test set: no p-value
    assert doc["tests"]["L_GR vs best L_HP"]["p"] is None
    matched = doc["tests"]["L_GR vs matched L_HP (0.3/0.7)"]
    assert 0 <= matched["p"] <= 1
    low, high = matched["ci95"]
    assert low <= matched["mean_diff"] <= high and len(matched["diffs"]) == 2
    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == 2 * len(doc["models"])
    for png in ("grid_search.png", "final_comparison.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))


def test_quiet_prints_one_line(tmp_path, capsys):
    assert cli.main(["reproduce", *TINY, "--out", str(tmp_path / "o"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 1 and "wrote 4 files" in captured.out
    assert "stages " in captured.out and "whole command " in captured.out
    assert captured.err == ""


def test_the_whole_command_is_counted_from_the_start_of_the_process(monkeypatch):
    since_import = cli.time.perf_counter() - cli._IMPORTED
    assert cli.seconds_since_start() >= since_import  # Python's start-up came first

    def no_proc(path, *args, **kwargs):
        raise FileNotFoundError(path)

    monkeypatch.setattr(cli, "open", no_proc, raising=False)  # a system without /proc
    fallback = cli.seconds_since_start()
    assert fallback == pytest.approx(cli.time.perf_counter() - cli._IMPORTED, abs=1.0)
    assert fallback >= since_import


def test_no_cache_writes_no_checkpoint(tmp_path):
    args = ["reproduce", *TINY, "--out", str(tmp_path / "o"), "--quiet", "--no-cache"]
    assert cli.main(args) == 0
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["reproduce", "--runs", "0"], "positive integer"),
        (["reproduce", "--epochs-teacher", "-3"], "positive integer"),
        (["reproduce", "--epochs-student", "many"], "positive integer"),
        (["reproduce", "--profile", "huge"], "invalid choice"),
        (["reproduce", "--device", "tpu"], "invalid choice"),
        (["reproduce", "--bogus"], "unrecognized"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_2_with_usage(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and message in err


def test_one_run_is_refused(tmp_path, capsys):
    assert cli.main(["reproduce", "--runs", "1", "--out", str(tmp_path / "o")]) == 2
    assert "at least 2" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_cuda_without_cuda_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["reproduce", "--device", "cuda", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cuda" in err


def test_unwritable_out_is_refused_before_training(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setattr(Experiment, "reproduce", lambda self, **kw: pytest.fail("trained anyway"))
    assert cli.main(["reproduce", *TINY, "--out", str(blocker / "sub")]) == 2
    assert "cannot write to --out" in capsys.readouterr().err


def test_interrupt_leaves_no_result_files(tmp_path, capsys, monkeypatch):
    def interrupted(self, **kw):
        self.teachers("teacher")  # a complete checkpoint is made first
        raise KeyboardInterrupt

    monkeypatch.setattr(Experiment, "reproduce", interrupted)
    out = tmp_path / "out"
    assert cli.main(["reproduce", *TINY, "--out", str(out), "--quiet"]) == 130
    assert list(out.iterdir()) == []
    assert "interrupted" in capsys.readouterr().err
    checkpoints = list((tmp_path / "cache").glob("*.pt"))
    assert len(checkpoints) == 2 and not list((tmp_path / "cache").glob("*.tmp"))


def test_training_blow_up_is_reported(tmp_path, capsys, monkeypatch):
    def blow_up(self, **kw):
        raise FloatingPointError("run 1: Teacher: the loss became nan in epoch 3")

    monkeypatch.setattr(Experiment, "reproduce", blow_up)
    assert cli.main(["reproduce", *TINY, "--out", str(tmp_path / "o"), "--quiet"]) == 1
    assert "epoch 3" in capsys.readouterr().err


def test_module_entry_point_exit_code():
    proc = subprocess.run(
        [sys.executable, "-m", "kdteach", "reproduce", "--runs", "zero"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "usage: python -m kdteach" in proc.stderr


# ---------------------------------------------------------------- when the machine runs out

CPU_FAILURE = (
    "[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: "
    "you tried to allocate 3355443200 bytes. Error code 12 (Cannot allocate memory)"
)


def test_full_disk_while_writing_results_keeps_the_earlier_results(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert cli.main(["reproduce", *TINY, "--out", str(out), "--quiet"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "results.json" in before and "results.csv" in before
    capsys.readouterr()

    def full_disk(self, path, *args, **kwargs):  # the second file fills the disk
        with open(path, "w") as f:
            f.write("stage,model,run\nstandard_teacher,Tea")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    args = ["reproduce", *TINY, "--epochs-student", "3", "--out", str(out), "--quiet"]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err == (
        f"python -m kdteach: error: cannot write the results to {out}/ (No space left on "
        "device); free some space or choose another --out (the files already there are "
        "unchanged)\n"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temporary files


def test_out_of_memory_in_training_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    def forward(self, x):
        raise RuntimeError(CPU_FAILURE)

    monkeypatch.setattr(StackedMLP, "forward", forward)
    out = tmp_path / "out"
    assert cli.main(["reproduce", *TINY, "--out", str(out), "--quiet"]) == 1
    assert capsys.readouterr().err == (
        "python -m kdteach: error: ran out of CPU memory while training Teacher x2 runs "
        "(2 networks stacked): use fewer runs (--runs, or n_runs in the settings) or the "
        "quick profile (--profile quick)\n"
    )
    assert list(out.iterdir()) == []


def test_out_of_memory_outside_training_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    def building(self, **kw):
        raise RuntimeError(CPU_FAILURE)

    monkeypatch.setattr(Experiment, "reproduce", building)
    assert cli.main(["reproduce", *TINY, "--out", str(tmp_path / "o"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("python -m kdteach: error: ran out of CPU memory while running the "
                          "experiment with 2 runs: use fewer runs")


def test_an_error_that_is_not_about_memory_is_not_hidden(tmp_path, monkeypatch):
    def bug(self, **kw):
        raise RuntimeError("expected scalar type Float but found Double")

    monkeypatch.setattr(Experiment, "reproduce", bug)
    with pytest.raises(RuntimeError, match="scalar type"):
        cli.main(["reproduce", *TINY, "--out", str(tmp_path / "o"), "--quiet"])


def test_warnings_are_one_line_on_the_command_line_only(tmp_path, monkeypatch):
    formatted = []

    def warn_during_the_run(self, **kw):
        formatted.append(warnings.formatwarning(
            "cache: cannot write to x (No space\nleft on device)", CacheWarning, "cache.py", 7,
            "warnings.warn(...)"))
        raise KeyboardInterrupt

    monkeypatch.setattr(Experiment, "reproduce", warn_during_the_run)
    assert cli.main(["reproduce", *TINY, "--out", str(tmp_path / "o"), "--quiet"]) == 130
    assert formatted == ["kdteach: cache: cannot write to x (No space left on device)\n"]
    # outside the command line (a notebook), Python's own format is back
    notebook = warnings.formatwarning("m", CacheWarning, "cache.py", 7, "warnings.warn(...)")
    assert notebook == "cache.py:7: CacheWarning: m\n  warnings.warn(...)\n"


def run_module(args, env_extra=None, timeout=120, prefix=()):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, *prefix, *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_command_line_warning_is_one_line_without_source(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    out = tmp_path / "out"
    proc = run_module(["-m", "kdteach", "reproduce", *TINY, "--out", str(out), "--quiet"],
                      {"KDTEACH_CACHE": str(blocker / "cache")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        f"kdteach: cache: cannot write to {blocker / 'cache'} (Not a directory); continuing "
        "without caching (free some space or set KDTEACH_CACHE to a writable folder)"
    ]
    assert (out / "results.json").exists()


UNDER_MEMORY_LIMIT = """
import os, resource, runpy, sys
import kdteach.protocol.experiment  # importing takes what it takes; the limit is on what follows
# one core: the teachers train one kind at a time, so the refusal below is deterministic
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
with open("/proc/self/status") as f:
    used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
limit = used + int(sys.argv.pop(1)) * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
runpy.run_module("kdteach", run_name="__main__", alter_sys=True)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, sets RLIMIT_AS")
@pytest.mark.parametrize(
    "runs, message",
    [
        # 500 teachers are built (0.2 GiB) but training them needs 5x that: refused first
        ("500", "error: training Teacher x500 runs (500 networks stacked) needs at least"),
        # 4000 teachers (1.8 GiB) do not fit: the allocator fails while they are built
        ("4000", "error: ran out of CPU memory while running the experiment with 4000 runs"),
    ],
    ids=["foreseen", "allocator-fails"],
)
def test_command_line_under_a_memory_limit(tmp_path, runs, message):
    """A real process with 512 MiB of address space beyond its imports."""
    args = ["reproduce", "--profile", "quick", "--runs", runs, "--epochs-teacher", "1",
            "--epochs-student", "1", "--out", str(tmp_path / "out"), "--quiet", "--no-cache"]
    proc = run_module(["-c", UNDER_MEMORY_LIMIT, "512", *args], {"KDTEACH_DEVICE": "cpu"})
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"python -m kdteach: {message}")
    assert "use fewer runs (--runs" in lines[0]
    assert list((tmp_path / "out").iterdir()) == []


def test_quick_profile_says_first_that_its_numbers_are_not_the_originals(tmp_path, capsys):
    assert cli.main(["reproduce", *TINY, "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == cli.QUICK_NOTICE
    assert "not the original notebook's" in cli.QUICK_NOTICE


def test_the_default_profile_is_the_originals(monkeypatch, tmp_path):
    monkeypatch.delenv("KDTEACH_PROFILE", raising=False)
    args = cli.build_parser().parse_args(["reproduce", "--out", str(tmp_path / "o")])
    settings, _ = cli.prepare(args)
    assert settings.profile == "full" and settings.epochs_teacher == 700


def test_reproduce_overlaps_teachers_only_on_a_cpu_with_two_cores(monkeypatch):
    from types import SimpleNamespace

    cpu = SimpleNamespace(torch_device=torch.device("cpu"))
    cuda = SimpleNamespace(torch_device=torch.device("cuda"))
    from kdteach.core import resources

    monkeypatch.setattr(resources, "usable_cpus", lambda: 2)
    assert cli.overlap_teachers(cpu) and not cli.overlap_teachers(cuda)
    monkeypatch.setattr(resources, "usable_cpus", lambda: 1)
    assert not cli.overlap_teachers(cpu)


def test_stages_lists_the_stage_table(capsys):
    from kdteach.protocol.stages import STAGES

    assert cli.main(["stages", "--profile", "quick"]) == 0
    out = capsys.readouterr().out
    blocks = out.strip().split("\n\n")
    assert [b.split()[0] for b in blocks] == list(STAGES)  # every stage, in table order
    part4 = blocks[list(STAGES).index("gradient_regularisation")]
    assert "Part 4: gradient regularisation (L_GR)" in part4
    assert "needs first: expert_teacher, grid_search" in part4
    assert "Student (Distilled with L_GR)" in part4
    assert "none fixed in advance" in blocks[list(STAGES).index("model_selection")]


def test_the_results_are_files_a_lecturer_can_share(tmp_path):
    out = tmp_path / "out"
    mask = os.umask(0o022)  # the usual umask: files for everyone to read, the owner to write
    try:
        assert cli.main(["reproduce", *TINY, "--quiet", "--out", str(out)]) == 0
    finally:
        os.umask(mask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert set(modes) == {"results.json", "results.csv", "grid_search.png",
                          "final_comparison.png"}
    assert set(modes.values()) == {0o644}  # not the 0600 of a temporary file


def test_prepare_fills_the_cache_with_what_the_lessons_need(tmp_path, capsys, monkeypatch):
    from kdteach.protocol import training

    def no_training(*args, **kwargs):
        raise AssertionError("cache --check must train nothing")

    with monkeypatch.context() as patched:
        patched.setattr(training, "train_many", no_training)
        assert cli.main(["cache", "--check", *TINY]) == cli.EXIT_FAILED
    empty = capsys.readouterr().out
    lines = empty.splitlines()
    assert sum(line.startswith("missing ") for line in lines) == 14 + 2  # stages, grids
    assert "optional stage three_way_search_jac (lesson 05, optional)" in lines
    assert f"cache ({tmp_path / 'cache'}): empty for the quick profile" in empty
    assert "python -m kdteach prepare --profile quick" in lines[-2]
    assert "trained only when asked or by `prepare`" in lines[-1]

    assert cli.main(["prepare", *TINY, "--quiet"]) == 0
    prepared = capsys.readouterr().out
    assert prepared.startswith(f"cache: {tmp_path / 'cache'}\n")
    assert "now holds everything the lessons need (quick profile)" in prepared
    monkeypatch.setattr(training, "train_many", no_training)
    assert cli.main(["cache", "--check", *TINY]) == 0
    full = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("cached ") for line in full) == 17
    assert "complete for the quick profile, 16 of 16" in full[-1]
    assert "cached   stage three_way_search_jac (lesson 05, optional)" in full


def test_every_command_that_trains_says_where_the_cache_is(tmp_path, capsys, monkeypatch):
    shared = tmp_path / "shared"
    monkeypatch.setenv("KDTEACH_CACHE", f"{tmp_path / 'own'}{os.pathsep}{shared}")
    assert cli.main(["reproduce", *TINY, "--out", str(tmp_path / "o")]) == 0
    first = capsys.readouterr().out.splitlines()
    assert f"cache: {tmp_path / 'own'} then {shared} (new entries go to the first" in "\n".join(
        first[:3])


def test_lessons_writes_the_course_and_keeps_edited_notebooks(tmp_path, capsys):
    folder = tmp_path / "my course"
    assert cli.main(["lessons", str(folder)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (folder / "03_grid_search.ipynb").is_file()
    assert (folder / "exercises" / "03_choosing_weights.ipynb").is_file()
    assert not (folder / "solutions").exists()
    (folder / "03_grid_search.ipynb").write_text("my notes")
    assert cli.main(["lessons", str(folder), "--solutions"]) == cli.EXIT_FAILED
    out = capsys.readouterr().out
    assert "kept 1 you have changed (--force replaces them): 03_grid_search.ipynb" in out
    assert (folder / "03_grid_search.ipynb").read_text() == "my notes"
    assert (folder / "solutions" / "03_choosing_weights.ipynb").is_file()
    assert cli.main(["lessons", str(folder), "--force"]) == 0


def test_lessons_into_a_file_is_a_usage_error(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert cli.main(["lessons", str(target)]) == cli.EXIT_USAGE
    assert "is a file: give a folder" in capsys.readouterr().err
