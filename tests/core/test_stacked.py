"""Tests for kdteach.core.stacked: many MLPs of one architecture held as one stack.

They run on the ``device`` fixture's device (KDTEACH_DEVICE). The one test that only checks
the architectures' bookkeeping computes nothing and stays on the CPU.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdteach.core.models import MLP, ExpertTeacherNet, MLPSpec, StudentNet, TeacherNet
from kdteach.core.stacked import StackedLinear, StackedMLP


def make(cls, seeds, device):
    """Networks initialised on the CPU from each random seed (the same weights on every
    device), then moved to ``device``."""
    nets = []
    for s in seeds:
        torch.manual_seed(s)
        nets.append(cls().to(device))
    return nets


@pytest.mark.parametrize("cls", [StudentNet, TeacherNet, ExpertTeacherNet])
def test_round_trip_keeps_every_weight(cls, device):
    nets = make(cls, [0, 1, 2], device)
    back = StackedMLP.from_models(nets).to_models()
    assert len(back) == 3
    for a, b in zip(nets, back):
        assert next(b.parameters()).device == next(a.parameters()).device
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb)
        for key in sa:
            assert torch.equal(sa[key], sb[key]), key
        assert b.spec == a.spec
    # the models really were different, so the order matters and is kept
    assert not torch.equal(back[0].layers[0].weight, back[1].layers[0].weight)


def test_round_trip_gives_independent_copies(device):
    nets = make(StudentNet, [0, 1], device)
    stack = StackedMLP.from_models(nets)
    with torch.no_grad():
        nets[0].layers[0].weight.zero_()
    assert stack.weights[0][0].abs().sum() > 0  # the stack holds a copy
    back = stack.to_models()
    with torch.no_grad():
        stack.weights[0].zero_()
    assert back[0].layers[0].weight.abs().sum() > 0


def test_parameter_shapes(device):
    stack = StackedMLP.from_models(make(StudentNet, [0, 1, 2, 3], device))
    assert stack.n_models == 4
    assert all(p.device.type == device.type for p in stack.parameters())
    assert [tuple(w.shape) for w in stack.weights] == [(4, 10, 64), (4, 64, 64), (4, 64, 32),
                                                       (4, 32, 1)]
    assert [tuple(b.shape) for b in stack.biases] == [(4, 1, 64), (4, 1, 64), (4, 1, 32),
                                                      (4, 1, 1)]
    n_params = sum(p.numel() for p in stack.parameters())
    assert n_params == 4 * 6_977


@pytest.mark.parametrize("cls", [StudentNet, TeacherNet])
def test_stacked_forward_equals_each_model(cls, device, tol):
    nets = make(cls, [3, 4, 5], device)
    stack = StackedMLP.from_models(nets)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 20, 10, generator=g).to(device)  # a different batch per model
    out = stack(x)
    assert tuple(out.shape) == (3, 20, 1)
    for m, net in enumerate(nets):
        assert torch.allclose(out[m], net(x[m]), rtol=tol(1e-5), atol=tol(1e-6))


def test_stacked_forward_with_dropout_in_eval_mode(device, tol):
    nets = [n.eval() for n in make(ExpertTeacherNet, [0, 1], device)]
    stack = StackedMLP.from_models(nets).eval()
    x = torch.randn(2, 16, 10, device=device)
    out = stack(x)
    for m, net in enumerate(nets):
        assert torch.allclose(out[m], net(x[m]), rtol=tol(1e-5), atol=tol(1e-6))
    stack.train()
    assert not torch.allclose(stack(x), out)  # dropout is active in train mode


def test_leaky_relu_slope_is_used(device, tol):
    spec = MLPSpec((2, 3, 1), activation="leaky_relu", negative_slope=0.5)
    torch.manual_seed(0)
    net = MLP(spec).to(device)
    stack = StackedMLP.from_models([net])
    x = -10 * torch.rand(1, 50, 2, device=device)
    assert torch.allclose(stack(x)[0], net(x[0]), rtol=tol(1e-5), atol=tol(1e-6))


def test_mixed_architectures_are_rejected():  # bookkeeping only: on the CPU
    with pytest.raises(ValueError, match="architecture"):
        StackedMLP.from_models([StudentNet(), TeacherNet()])


def test_gradients_stay_per_model(device):
    nets = make(StudentNet, [0, 1], device)
    stack = StackedMLP.from_models(nets)
    x = torch.randn(2, 8, 10, device=device)
    stack(x)[0].sum().backward()  # only model 0's output
    for W in stack.weights:
        assert W.grad[0].abs().sum() > 0
        assert W.grad[1].abs().sum() == 0


@pytest.mark.parametrize("cls", [StudentNet, ExpertTeacherNet])
def test_stacked_features_equal_each_models_features(cls, device, tol):
    nets = [n.eval() for n in make(cls, [3, 4], device)]
    stack = StackedMLP.from_models(nets).eval()
    x = torch.randn(2, 20, 10, generator=torch.Generator().manual_seed(0)).to(device)
    out, features = stack.forward_with_features(x)
    assert torch.equal(out, stack(x))
    for m, net in enumerate(nets):
        net_out, net_features = net.forward_with_features(x[m])
        assert torch.allclose(out[m], net_out, rtol=tol(1e-5), atol=tol(1e-6))
        assert len(features) == len(net_features)
        for ours, theirs in zip(features, net_features):
            assert torch.allclose(ours[m], theirs, rtol=tol(1e-5), atol=tol(1e-6))


def test_stacked_features_are_taken_before_dropout(device):
    stack = StackedMLP.from_models(make(ExpertTeacherNet, [0], device)).train()
    x = torch.randn(1, 200, 10, device=device)
    _, features = stack.forward_with_features(x)
    # dropout zeroes 30 % of a layer's outputs; before it, LeakyReLU leaves none at zero
    assert all((f != 0).all() for f in features)


def test_stacked_linear_round_trip_and_forward(device, tol):
    torch.manual_seed(0)
    linears = [nn.Linear(32, 64).to(device) for _ in range(3)]
    stack = StackedLinear.from_linears(linears)
    assert tuple(stack.weight.shape) == (3, 32, 64) and tuple(stack.bias.shape) == (3, 1, 64)
    assert stack.weight.device.type == device.type
    x = torch.randn(3, 5, 32, device=device)
    out = stack(x)
    back = stack.to_linears()
    for m, (lin, again) in enumerate(zip(linears, back)):
        assert torch.allclose(out[m], lin(x[m]), rtol=tol(1e-5), atol=tol(1e-6))
        assert torch.equal(again.weight, lin.weight) and torch.equal(again.bias, lin.bias)
    with torch.no_grad():
        stack.weight.zero_()
    assert back[0].weight.abs().sum() > 0  # copies, not views
    with pytest.raises(ValueError, match="one shape"):
        StackedLinear.from_linears([nn.Linear(32, 64), nn.Linear(16, 64)])
