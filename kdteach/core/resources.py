"""Memory: what a stack of networks needs, what the machine has, and a clear error when it runs out;
and the CPU cores this process may use (:func:`usable_cpus`, :func:`intra_op_threads`).

The stacked engine trains M networks at once, so its memory grows with M (the number of
runs times the models per run). :func:`guard_memory` wraps a training function such as
:func:`kdteach.core.stacked.train_many` and

* before training, compares a cheap estimate of what the stack will allocate (its
  weights, their gradients, Adam's two moments, one batch's activations and the trained
  copies: :func:`estimate_training_bytes`) with the memory free on the device
  (:func:`free_memory`), and refuses a stack that clearly cannot fit;
* during training, turns an allocator failure (CPU: ``MemoryError`` or PyTorch's
  "DefaultCPUAllocator: can't allocate memory"; GPU: ``torch.cuda.OutOfMemoryError``)
  into a :class:`NotEnoughMemory` whose one-line message says what ran out, for what,
  how many networks were stacked and what to change.

The estimate is a lower bound: refusing only when even it does not fit never stops a run
that would have fitted.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import os
import re

import torch

try:  # not on Windows
    import resource
except ImportError:  # pragma: no cover - POSIX test machines
    resource = None

GiB = 1024**3

_CPU_ALLOCATOR_FAILURE = re.compile(
    r"DefaultCPUAllocator|can't allocate memory|not enough memory", re.IGNORECASE
)
_GPU_ALLOCATOR_FAILURE = re.compile(
    r"CUDA out of memory|CUDA error: out of memory|CUBLAS_STATUS_ALLOC_FAILED", re.IGNORECASE
)


class NotEnoughMemory(MemoryError):
    """Training needs more memory than the machine has; the message says what to change."""


# ---------------------------------------------------------------- what the machine has


def usable_cpus() -> int:
    """The CPU cores this process may run on (taskset and containers included)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def has_free_core() -> bool:
    """Whether a second thread would find a core that torch's intra-op threads leave idle."""
    return torch.get_num_threads() < usable_cpus()


@contextlib.contextmanager
def intra_op_threads(n: int | None):
    """``torch.set_num_threads(n)`` inside the block, the previous count restored after it
    (``None``: unchanged)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    """Room left under a container's memory limit (cgroup v2), if there is one."""
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        return max(int(limit) - used, 0)
    except (OSError, ValueError):
        return None


def _address_space_available() -> int | None:
    """Room left under this process's address-space limit (``ulimit -v``), if there is one."""
    if resource is None:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return max(soft - int(line.split()[1]) * 1024, 0)
    except (OSError, ValueError, IndexError):
        pass
    return None


def free_memory(device) -> int | None:
    """Bytes that new tensors on ``device`` can still take, or ``None`` when unknown.

    CPU: the least of the system's available memory, a container's memory limit and
    the process's address-space limit. GPU: the device's free memory plus what
    PyTorch's allocator holds but does not use.
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        held = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return free + held
    if device.type != "cpu":
        return None
    known = [
        n
        for n in (_meminfo_available(), _cgroup_available(), _address_space_available())
        if n is not None
    ]
    return min(known) if known else None


# ---------------------------------------------------------------- what a stack needs


def estimate_training_bytes(nets, batch_size: int) -> int:
    """A lower bound of the memory that training ``nets`` as one stack allocates.

    With P the bytes of all their parameters: while a step runs, the stack's weights and
    Adam's two moments (3 P) are held together with the batch's input and one activation
    per layer of every network; when training ends, the weights, their gradients, the two
    moments and the returned networks (5 P) are held at once. The estimate is the larger.
    Networks without an ``MLPSpec`` count their parameters only.
    """
    params = activations = 0
    for net in nets:
        tensors = list(net.parameters())
        itemsize = tensors[0].element_size() if tensors else 4
        params += sum(p.numel() for p in tensors) * itemsize
        sizes = getattr(getattr(net, "spec", None), "sizes", None)
        if sizes:
            activations += batch_size * sum(sizes) * itemsize
    return max(5 * params, 3 * params + activations)


def _device_of(nets, X) -> torch.device:
    if isinstance(X, torch.Tensor):
        return X.device
    for net in nets:
        for p in net.parameters():
            return p.device
    return torch.device("cpu")


def _device_name(device: torch.device) -> str:
    return "GPU" if device.type == "cuda" else "CPU"


def _advice(kind: str) -> str:
    fixes = ["fewer runs (--runs, or n_runs in the settings)"]
    if kind == "GPU":
        fixes.append("the CPU (--device cpu)")
    fixes.append("the quick profile (--profile quick)")
    return "use " + ", ".join(fixes[:-1]) + " or " + fixes[-1]


def _stacked(n: int) -> str:
    return f"{n} network{'' if n == 1 else 's'} stacked"


def _size(n: int) -> str:
    if n < 2**20:
        return f"{n / 1024:.0f} KiB"
    if n < GiB:
        return f"{n / 2**20:.0f} MiB"
    return f"{n / GiB:.1f} GiB" if n < 10 * GiB else f"{n / GiB:.0f} GiB"


def check_fits(nets, batch_size: int, desc: str, device) -> None:
    """Raise :class:`NotEnoughMemory` before training when the stack clearly cannot fit."""
    device = torch.device(device)
    free = free_memory(device)
    if free is None:
        return
    need = estimate_training_bytes(nets, batch_size)
    if need > free:
        kind = _device_name(device)
        raise NotEnoughMemory(
            f"training {desc} ({_stacked(len(nets))}) needs at least {_size(need)} "
            f"of {kind} memory but only {_size(free)} is free, so it was not started: "
            f"{_advice(kind)}"
        )


# ---------------------------------------------------------------- when it runs out


def ran_out_of(exc: BaseException) -> str | None:
    """``"CPU"`` or ``"GPU"`` when ``exc`` is an allocator failure, else ``None``."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return "GPU"
    if isinstance(exc, MemoryError):
        return "CPU"
    if isinstance(exc, RuntimeError):
        text = str(exc)
        if _GPU_ALLOCATOR_FAILURE.search(text):
            return "GPU"
        if _CPU_ALLOCATOR_FAILURE.search(text):
            return "CPU"
    return None


def out_of_memory_message(kind: str, what: str) -> str:
    """The one-line message for running out of ``kind`` (CPU or GPU) memory while ``what``."""
    return f"ran out of {kind} memory while {what}: {_advice(kind)}"


def release_memory(device) -> None:
    """Hand freed tensors back (a notebook goes on after the error)."""
    gc.collect()
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()


def guard_memory(train):
    """Decorate a function ``train(nets, ..., batch_size=..., desc=...)`` that trains the
    networks ``nets`` as one stack: check the estimate first, and report running out of
    memory as :class:`NotEnoughMemory` (see the module's docstring)."""
    signature = inspect.signature(train)

    @functools.wraps(train)
    def guarded(*args, **kwargs):
        call = signature.bind(*args, **kwargs)
        call.apply_defaults()
        nets = list(call.args[0])
        X = call.arguments.get("X")
        desc = call.arguments.get("desc")
        if not desc or desc == "training":  # train_many's default names nothing
            desc = "the networks"
        device = _device_of(nets, X)
        check_fits(nets, call.arguments.get("batch_size", 128), desc, device)
        kind = None
        try:
            return train(*args, **kwargs)
        except (MemoryError, RuntimeError) as exc:
            kind = ran_out_of(exc)
            if kind is None or isinstance(exc, NotEnoughMemory):
                raise
        # raised outside the except block, so the failed step's tensors (held by the
        # original exception's traceback) are freed before the error reaches the user
        release_memory(device)
        what = f"training {desc} ({_stacked(len(nets))})"
        raise NotEnoughMemory(out_of_memory_message(kind, what))

    return guarded
