"""Tests for kdteach.core.costs (what a model costs) and plots.cost_vs_error.

No test checks a time beyond its being positive and finite: timings depend on the machine.
"""

from __future__ import annotations

import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from torch import nn

from kdteach.core.costs import LABEL, latency_column, model_costs, saved_size, size_in_bytes
from kdteach.core.models import ExpertTeacherNet, StudentNet, TeacherNet, count_parameters
from kdteach.lesson import plots
from kdteach.protocol import names as naming

matplotlib.use("Agg")

TINY = 1e-3  # seconds of timing per model and batch size: enough for a positive median


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {naming.TEACHER: TeacherNet(), naming.EXPERT: ExpertTeacherNet(),
            naming.DISTILLED: StudentNet()}


@pytest.fixture(scope="module")
def costs(models):
    return model_costs(models, min_run_time=TINY)


def test_one_row_per_model_with_every_column(costs, models):
    assert costs[LABEL].tolist() == list(models)
    assert list(costs.columns) == [LABEL, "parameters", "size (bytes)", "saved size (bytes)",
                                   "latency batch 1 (µs)", "latency batch 1024 (µs)"]


def test_parameter_counts_are_the_networks(costs, models):
    table = costs.set_index(LABEL)
    assert table["parameters"].tolist() == [109_825, 126_337, 6_977]
    for name, model in models.items():
        assert table.loc[name, "parameters"] == count_parameters(model)


def test_sizes_in_bytes(costs):
    table = costs.set_index(LABEL)
    # float32 parameters and no buffers: 4 bytes each
    assert (table["size (bytes)"] == 4 * table["parameters"]).all()
    # a saved file holds the numbers and, beyond them, names and structure
    assert (table["saved size (bytes)"] > table["size (bytes)"]).all()


def test_size_counts_buffers_and_the_element_size():
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)).double()
    params = sum(p.numel() for p in net.parameters())  # 8 + 4
    buffers = sum(b.numel() for b in net.buffers())  # mean 2, var 2, count 1 (int64)
    assert size_in_bytes(net) == 8 * (params + buffers)
    assert saved_size(net) > size_in_bytes(net)


def test_latencies_are_positive_and_finite(costs):
    for b in (1, 1024):
        values = costs[latency_column(b)]
        assert all(math.isfinite(v) and v > 0 for v in values), b


CALLS = []  # shared by a Recorder and its copies


class Recorder(nn.Module):
    """A network that notes how every forward pass was run: mode, autograd, threads, shape."""

    n_features = 4

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, x):
        CALLS.append((self.training, torch.is_grad_enabled(), torch.get_num_threads(),
                      tuple(x.shape)))
        return self.linear(x)


def test_timed_in_eval_mode_without_autograd_with_the_threads_given():
    CALLS.clear()
    net = Recorder().train()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        table = model_costs({"recorder": net}, batch_sizes=(3, 5), min_run_time=TINY,
                            threads=1)
        assert torch.get_num_threads() == 2  # restored afterwards
    finally:
        torch.set_num_threads(before)
    assert set(CALLS) == {(False, False, 1, (3, 4)), (False, False, 1, (5, 4))}
    assert net.training  # the caller's model is left in its own mode
    assert list(table.columns)[-2:] == [latency_column(3), latency_column(5)]


def test_a_model_without_an_input_width_needs_n_features():
    net = nn.Sequential(nn.Linear(6, 1))
    with pytest.raises(ValueError, match="n_features="):
        model_costs({"plain": net}, min_run_time=TINY)
    table = model_costs({"plain": net}, batch_sizes=(2,), min_run_time=TINY, n_features=6)
    assert table["parameters"].tolist() == [7]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"models": {}}, "non-empty dict"),
        ({"models": {"x": "not a model"}}, "x: expected an nn.Module"),
        ({"batch_sizes": (0,)}, "batch_sizes"),
        ({"batch_sizes": ()}, "batch_sizes"),
        ({"batch_sizes": (1.5,)}, "batch_sizes"),
        ({"min_run_time": 0}, "min_run_time"),
        ({"min_run_time": float("nan")}, "min_run_time"),
        ({"threads": 0}, "threads"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    args = {"models": {"s": StudentNet()}, "min_run_time": TINY, **kwargs}
    with pytest.raises(ValueError, match=message):
        model_costs(**args)


# ---------------------------------------------------------------- the plot


MSE = {naming.TEACHER: [0.30, 0.32, 0.31], naming.EXPERT: [0.25, 0.27, 0.24],
       naming.DISTILLED: [0.40, 0.38, 0.45]}


def test_cost_vs_error_one_point_group_per_model_in_its_colour(costs):
    fig = plots.cost_vs_error(costs, MSE)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert "latency batch 1 (µs)" in ax.get_xlabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == list(MSE)
    table = costs.set_index(LABEL)
    markers = [c for c in ax.containers]  # one errorbar container per model
    assert len(markers) == len(MSE)
    for (name, runs), container in zip(MSE.items(), markers):
        line = container.lines[0]
        assert to_rgba(line.get_color()) == to_rgba(naming.color(name))
        assert line.get_xdata()[0] == pytest.approx(table.loc[name, "latency batch 1 (µs)"])
        assert line.get_ydata()[0] == pytest.approx(np.mean(runs))
    dots = ax.collections
    run_groups = [c for c in dots if len(c.get_offsets()) == 3]
    assert len(run_groups) == len(MSE)
    for (name, runs), group in zip(MSE.items(), run_groups):
        np.testing.assert_allclose(group.get_offsets()[:, 1], runs)
        assert tuple(group.get_facecolor()[0][:3]) == pytest.approx(
            to_rgba(naming.color(name))[:3])


def test_cost_vs_error_other_cost_column(costs):
    fig = plots.cost_vs_error(costs, MSE, cost="parameters")
    line = fig.axes[0].containers[2].lines[0]
    assert line.get_xdata()[0] == 6_977


def test_cost_vs_error_rejects_an_unknown_cost_or_model(costs):
    with pytest.raises(ValueError, match="cost must be one of"):
        plots.cost_vs_error(costs, MSE, cost="speed")
    with pytest.raises(ValueError, match="no costs for"):
        plots.cost_vs_error(costs, {"Some other model": [0.1]})
    with pytest.raises(ValueError, match="no test MSE"):
        plots.cost_vs_error(costs, {naming.TEACHER: []})
