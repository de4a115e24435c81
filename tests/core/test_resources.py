"""Memory: the estimate, what the machine has, and the guard around the stacked engine."""

from __future__ import annotations

import json
import subprocess
import sys
import weakref

import pytest
import torch

from kdteach.core import resources
from kdteach.core.data import make_dataset
from kdteach.core.models import StudentNet, TeacherNet, count_parameters
from kdteach.core.resources import NotEnoughMemory, estimate_training_bytes, free_memory
from kdteach.core.stacked import StackedMLP, train_many

CPU_FAILURE = (
    "[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: "
    "you tried to allocate 3355443200 bytes. Error code 12 (Cannot allocate memory)"
)
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture(scope="module")
def ds():
    return make_dataset()


def students(n):
    torch.manual_seed(0)
    return [StudentNet() for _ in range(n)]


def train_three(ds, **kwargs):
    return train_many(students(3), ds.X_train, ds.y_train, num_epochs=2, lr=1e-3,
                      progress=False, desc="Student x3 runs", **kwargs)


# ---------------------------------------------------------------- the estimate


def test_estimate_counts_parameters_and_activations():
    one = estimate_training_bytes(students(1), 128)
    three = estimate_training_bytes(students(3), 128)
    assert three == 3 * one
    params = 4 * count_parameters(StudentNet())
    assert one == 3 * params + 128 * (10 + 64 + 64 + 32 + 1) * 4  # activations dominate
    assert estimate_training_bytes(students(1), 1) == 5 * params  # parameters dominate
    assert estimate_training_bytes([TeacherNet()], 128) == 5 * 4 * count_parameters(TeacherNet())


RSS_SCRIPT = """
import json, resource, sys, torch
from kdteach.core.models import StudentNet, TeacherNet
from kdteach.core.resources import estimate_training_bytes
from kdteach.core.stacked import train_many
torch.set_num_threads(1)
kind, m, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
nets = [(TeacherNet if kind == "teacher" else StudentNet)() for _ in range(m)]
X, y = torch.randn(2 * batch, 10), torch.randn(2 * batch, 1)
page = resource.getpagesize()
before = int(open("/proc/self/statm").read().split()[1]) * page
train_many(nets, X, y, num_epochs=1, lr=1e-3, batch_size=batch, progress=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"grown": peak - before, "estimate": estimate_training_bytes(nets, batch)}))
"""


@linux_only
@pytest.mark.parametrize("kind, m, batch", [("teacher", 300, 16), ("student", 150, 1024)],
                         ids=["parameters-dominate", "activations-dominate"])
def test_estimate_is_a_lower_bound_of_what_training_takes(kind, m, batch):
    """The process's peak resident memory grows by at least the estimate while training."""
    proc = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, kind, str(m), str(batch)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    measured = json.loads(proc.stdout)
    assert measured["estimate"] > 100 * 2**20  # large enough to stand out from noise
    assert measured["grown"] >= measured["estimate"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_estimate_is_a_lower_bound_on_the_gpu():
    nets = [StudentNet().cuda() for _ in range(64)]
    X, y = torch.randn(2048, 10, device="cuda"), torch.randn(2048, 1, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    train_many(nets, X, y, num_epochs=1, lr=1e-3, batch_size=1024, progress=False)
    grown = torch.cuda.max_memory_allocated() - before
    assert grown >= estimate_training_bytes(nets, 1024)
    assert free_memory("cuda") > 0


# ---------------------------------------------------------------- what the machine has


@linux_only
def _mem_available() -> int:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if "MemAvailable" in line)


def test_free_cpu_memory_is_at_most_what_the_system_has():
    # other processes free memory all the time: compare with the system's figure read just
    # before and just after (once this failed by 1.7 MB freed between the two reads)
    before = _mem_available()
    free = free_memory("cpu")
    after = _mem_available()
    assert 0 < free <= max(before, after)


@linux_only
def test_free_cpu_memory_respects_an_address_space_limit(monkeypatch):
    with open("/proc/self/status") as f:
        used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    limit = used + 50 * 2**20
    monkeypatch.setattr(resources.resource, "getrlimit",
                        lambda which: (limit, resources.resource.RLIM_INFINITY))
    assert free_memory("cpu") <= 50 * 2**20


# ---------------------------------------------------------------- the guard


def test_a_stack_that_cannot_fit_is_refused_before_training(ds, monkeypatch):
    monkeypatch.setattr(resources, "free_memory", lambda device: 10 * 1024)
    monkeypatch.setattr(StackedMLP, "forward", lambda *a: pytest.fail("training started"))
    with pytest.raises(NotEnoughMemory) as info:
        train_three(ds)
    message = str(info.value)
    assert "\n" not in message
    for part in ("Student x3 runs", "3 networks stacked", "of CPU memory", "only 10 KiB is free",
                 "not started", "fewer runs (--runs", "--profile quick"):
        assert part in message
    assert "--device cpu" not in message  # already on the CPU


def test_a_stack_that_fits_trains_normally(ds, monkeypatch):
    calls = []
    real = resources.free_memory
    monkeypatch.setattr(resources, "free_memory", lambda d: calls.append(d) or real(d))
    trained, history = train_three(ds)
    assert len(trained) == 3 and len(history) == 2 and calls == [torch.device("cpu")]


def failing_forward(monkeypatch, make_error, on_call=2):
    """Make the stacked engine's forward raise ``make_error()`` on its ``on_call``-th call
    (a fresh error, as an allocator raises); returns weak references to the stacks it saw."""
    real, seen = StackedMLP.forward, []

    def forward(self, x):
        seen.append(weakref.ref(self))
        if len(seen) == on_call:
            raise make_error()
        return real(self, x)

    monkeypatch.setattr(StackedMLP, "forward", forward)
    return seen


def test_cpu_allocator_failure_in_training_becomes_a_clear_error(ds, monkeypatch):
    seen = failing_forward(monkeypatch, lambda: RuntimeError(CPU_FAILURE))
    with pytest.raises(NotEnoughMemory) as info:
        train_three(ds)
    message = str(info.value)
    assert message.startswith("ran out of CPU memory while training Student x3 runs "
                              "(3 networks stacked): use fewer runs (--runs")
    assert "\n" not in message and "--profile quick" in message
    assert "alloc_cpu" not in message  # the allocator's own words stay out of it
    # the original error is not chained, so the failed stack is freed, not kept alive
    assert info.value.__context__ is None and info.value.__cause__ is None
    assert seen and all(ref() is None for ref in seen)


def test_memory_error_in_training_becomes_a_clear_error(ds, monkeypatch):
    failing_forward(monkeypatch, MemoryError)
    with pytest.raises(NotEnoughMemory, match=r"^ran out of CPU memory while training Student"):
        train_three(ds)


def test_gpu_out_of_memory_suggests_the_cpu(ds, monkeypatch):
    failing_forward(monkeypatch, lambda: torch.cuda.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 8 GiB"
    ))
    with pytest.raises(NotEnoughMemory) as info:
        train_three(ds)
    message = str(info.value)
    assert message.startswith("ran out of GPU memory while training Student x3 runs")
    assert "the CPU (--device cpu)" in message and "fewer runs" in message


def test_other_runtime_errors_pass_through_unchanged(ds, monkeypatch):
    text = "mat1 and mat2 shapes cannot be multiplied (128x9 and 10x64)"
    failing_forward(monkeypatch, lambda: RuntimeError(text))
    with pytest.raises(RuntimeError) as info:
        train_three(ds)
    assert type(info.value) is RuntimeError and str(info.value) == text


@pytest.mark.parametrize(
    "error, kind",
    [
        (RuntimeError(CPU_FAILURE), "CPU"),
        (RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 8 GB"), "CPU"),
        (MemoryError(), "CPU"),
        (torch.cuda.OutOfMemoryError("CUDA out of memory."), "GPU"),
        (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"), "GPU"),
        (RuntimeError("expected scalar type Float but found Double"), None),
        (ValueError("can't allocate memory"), None),
    ],
)
def test_ran_out_of_names_the_memory(error, kind):
    assert resources.ran_out_of(error) == kind


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_real_gpu_out_of_memory_is_reported(ds):
    """A real allocation failure on the GPU, under a memory cap the estimate does not see."""
    nets = [TeacherNet().cuda() for _ in range(40)]  # 40 x 0.44 MB; training needs 5x that
    X, y = ds.X_train.cuda(), ds.y_train.cuda()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction((torch.cuda.memory_allocated() + 32 * 2**20) / total)
    try:
        with pytest.raises(NotEnoughMemory, match="ran out of GPU memory while training"):
            train_many(nets, X, y, num_epochs=1, lr=1e-3, progress=False, desc="Teacher x40")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()


def test_usable_cpus_and_a_free_core(monkeypatch):
    from kdteach.core import resources

    assert 1 <= resources.usable_cpus() <= (__import__("os").cpu_count() or 1)
    monkeypatch.setattr(resources, "usable_cpus", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert resources.has_free_core()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert not resources.has_free_core()


def test_intra_op_threads_sets_the_count_inside_and_restores_it_even_after_an_error():
    from kdteach.core.resources import intra_op_threads

    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="inside"):
        with intra_op_threads(before + 1):
            assert torch.get_num_threads() == before + 1
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before
    with intra_op_threads(None):
        assert torch.get_num_threads() == before
