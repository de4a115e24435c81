import json
import subprocess
import sys

import pandas as pd
import pytest
import torch

from kdteach import __main__ as cli
from kdteach.experiments import Experiment

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
    assert captured.err == ""


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
    monkeypatch.setattr(Experiment, "reproduce", lambda self: pytest.fail("trained anyway"))
    assert cli.main(["reproduce", *TINY, "--out", str(blocker / "sub")]) == 2
    assert "cannot write to --out" in capsys.readouterr().err


def test_interrupt_leaves_no_result_files(tmp_path, capsys, monkeypatch):
    def interrupted(self):
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
    def blow_up(self):
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
