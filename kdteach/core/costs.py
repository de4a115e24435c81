"""What a model costs to keep and to run: parameters, bytes, and CPU inference latency.

The student's case for itself is not its test MSE alone but that MSE at a fraction of the
teacher's cost. :func:`model_costs` puts the costs of several trained models in one table:

* ``parameters``: the number of trainable numbers (as
  :func:`~kdteach.core.models.count_parameters`);
* ``size (bytes)``: parameters and buffers as held in memory (4 bytes each in float32);
* ``saved size (bytes)``: the size of the model's ``state_dict`` written by ``torch.save``
  (the numbers plus the file's names and structure);
* ``latency batch B (µs)``: the median time of one forward pass on B inputs, on the CPU,
  in eval mode and without autograd, measured with ``torch.utils.benchmark``.

Latency depends on the machine and on what else runs on it: measure on an idle machine,
with the thread count you will deploy with (``threads``, 1 by default), and compare
models measured in one call rather than numbers from different days.
"""

from __future__ import annotations

import copy
import io
import math

import pandas as pd
import torch
from torch import nn
from torch.utils import benchmark

from kdteach.core.models import count_parameters

LABEL = "Model"


def latency_column(batch_size: int) -> str:
    """The table's column for the latency at ``batch_size``, e.g. ``latency batch 1 (µs)``."""
    return f"latency batch {batch_size} (µs)"


def size_in_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and buffers as held in memory."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def saved_size(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``, written to memory, not to disk."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def _input_width(model: nn.Module, name: str, n_features: int | None) -> int:
    if n_features is not None:
        return n_features
    width = getattr(model, "n_features", None)
    if width is None:
        raise ValueError(f"{name}: cannot tell the model's input width; pass n_features=...")
    return int(width)


def cpu_latency(model: nn.Module, batch_size: int, n_features: int, *,
                min_run_time: float = 1.0, threads: int = 1) -> float:
    """Median seconds of one forward pass of a CPU copy of ``model`` on ``batch_size``
    random inputs, in eval mode under ``torch.no_grad()``, with ``threads`` threads.
    The caller's model and torch's thread count are left as they were."""
    net = copy.deepcopy(model).cpu().eval()
    x = torch.randn(batch_size, n_features, generator=torch.Generator().manual_seed(0))
    # the Timer sets torch's thread count to num_threads while it runs, then restores it
    timer = benchmark.Timer(stmt="net(x)", globals={"net": net, "x": x}, num_threads=threads)
    with torch.no_grad():
        measurement = timer.blocked_autorange(min_run_time=min_run_time)
    return float(measurement.median)


def _check(models, batch_sizes, min_run_time, threads) -> None:
    if not isinstance(models, dict) or not models:
        raise ValueError("models must be a non-empty dict {name: nn.Module}")
    for name, model in models.items():
        if not isinstance(model, nn.Module):
            raise ValueError(f"{name}: expected an nn.Module, got {type(model).__name__}")
    sizes = list(batch_sizes)
    if not sizes or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in sizes):
        raise ValueError(f"batch_sizes must be integers >= 1, got {batch_sizes!r}")
    if not isinstance(min_run_time, (int, float)) or not math.isfinite(min_run_time) \
            or min_run_time <= 0:
        raise ValueError(f"min_run_time must be a number of seconds > 0, got {min_run_time!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")


def model_costs(models: dict, batch_sizes=(1, 1024), *, min_run_time: float = 1.0,
                threads: int = 1, n_features: int | None = None) -> pd.DataFrame:
    """One row per model (column ``Model``): parameters, size in bytes, saved size in
    bytes, and the median CPU latency in microseconds at each batch size.

    ``models`` is ``{name: nn.Module}``; each is timed on a CPU copy, in eval mode, without
    autograd, with ``threads`` threads (restored afterwards) for at least ``min_run_time``
    seconds per batch size. ``n_features`` is needed only for a model without an
    ``n_features`` attribute.

    Taught in Lesson 05, section 5 (what the student buys).
    """
    _check(models, batch_sizes, min_run_time, threads)
    rows = []
    for name, model in models.items():
        width = _input_width(model, name, n_features)
        row = {LABEL: name, "parameters": count_parameters(model),
               "size (bytes)": size_in_bytes(model), "saved size (bytes)": saved_size(model)}
        for b in batch_sizes:
            seconds = cpu_latency(model, b, width, min_run_time=min_run_time, threads=threads)
            row[latency_column(b)] = seconds * 1e6
        rows.append(row)
    return pd.DataFrame(rows)
