"""The tests' device: KDTEACH_DEVICE decides, the CPU by default, and CUDA without a GPU is an
error that stops the run, never a silent run on the CPU."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parent


def test_the_device_defaults_to_the_cpu(choose_device):
    assert choose_device({}) == torch.device("cpu")
    assert choose_device({"KDTEACH_DEVICE": ""}) == torch.device("cpu")
    assert choose_device({"KDTEACH_DEVICE": "cpu"}) == torch.device("cpu")


def test_auto_takes_cuda_only_where_there_is_a_gpu(choose_device, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device({"KDTEACH_DEVICE": "auto"}) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device({"KDTEACH_DEVICE": "auto"}) == torch.device("cuda")


def test_cuda_without_a_gpu_is_a_usage_error(choose_device, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(pytest.UsageError, match=r"KDTEACH_DEVICE=cuda cannot run the tests.*"
                                                r"no CUDA GPU.*KDTEACH_DEVICE=cpu"):
        choose_device({"KDTEACH_DEVICE": "cuda"})
    with pytest.raises(pytest.UsageError, match="unknown device 'tpu'"):
        choose_device({"KDTEACH_DEVICE": "tpu"})


def test_the_fixture_is_the_environments_device(choose_device, device, tol):
    assert device == choose_device()
    assert torch.zeros(1, device=device).device.type == device.type
    assert tol(0) == 0
    if device.type == "cpu":
        assert tol(1e-5) == 1e-5  # the CPU tests keep their tolerances
    else:
        assert tol(1e-5) > 1e-5


SESSION_WITHOUT_A_GPU = """
import sys, pytest, torch
torch.cuda.is_available = lambda: False  # this machine's GPU, if any, is hidden
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", sys.argv[1] + "::" + sys.argv[2]]))
"""


def test_a_session_asking_for_cuda_without_a_gpu_stops_before_any_test(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "KDTEACH_DEVICE": "cuda", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SESSION_WITHOUT_A_GPU, str(TESTS / "test_device_fixture.py"),
         "test_the_device_defaults_to_the_cpu"],
        cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "KDTEACH_DEVICE=cuda cannot run the tests" in done.stderr
    assert "passed" not in done.stdout
