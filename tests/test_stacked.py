"""Tests for kdteach.stacked: many MLPs of one architecture held as one stack."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdteach.models import MLP, ExpertTeacherNet, MLPSpec, StudentNet, TeacherNet
from kdteach.stacked import StackedLinear, StackedMLP


def make(cls, seeds):
    nets = []
    for s in seeds:
        torch.manual_seed(s)
        nets.append(cls())
    return nets


@pytest.mark.parametrize("cls", [StudentNet, TeacherNet, ExpertTeacherNet])
def test_round_trip_keeps_every_weight(cls):
    nets = make(cls, [0, 1, 2])
    back = StackedMLP.from_models(nets).to_models()
    assert len(back) == 3
    for a, b in zip(nets, back):
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb)
        for key in sa:
            assert torch.equal(sa[key], sb[key]), key
        assert b.spec == a.spec
    # the models really were different, so the order matters and is kept
    assert not torch.equal(back[0].layers[0].weight, back[1].layers[0].weight)


def test_round_trip_gives_independent_copies():
    nets = make(StudentNet, [0, 1])
    stack = StackedMLP.from_models(nets)
    with torch.no_grad():
        nets[0].layers[0].weight.zero_()
    assert stack.weights[0][0].abs().sum() > 0  # the stack holds a copy
    back = stack.to_models()
    with torch.no_grad():
        stack.weights[0].zero_()
    assert back[0].layers[0].weight.abs().sum() > 0


def test_parameter_shapes():
    stack = StackedMLP.from_models(make(StudentNet, [0, 1, 2, 3]))
    assert stack.n_models == 4
    assert [tuple(w.shape) for w in stack.weights] == [(4, 10, 64), (4, 64, 64), (4, 64, 32),
                                                       (4, 32, 1)]
    assert [tuple(b.shape) for b in stack.biases] == [(4, 1, 64), (4, 1, 64), (4, 1, 32),
                                                      (4, 1, 1)]
    n_params = sum(p.numel() for p in stack.parameters())
    assert n_params == 4 * 6_977


@pytest.mark.parametrize("cls", [StudentNet, TeacherNet])
def test_stacked_forward_equals_each_model(cls):
    nets = make(cls, [3, 4, 5])
    stack = StackedMLP.from_models(nets)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 20, 10, generator=g)  # a different batch per model
    out = stack(x)
    assert tuple(out.shape) == (3, 20, 1)
    for m, net in enumerate(nets):
        assert torch.allclose(out[m], net(x[m]), rtol=1e-5, atol=1e-6)


def test_stacked_forward_with_dropout_in_eval_mode():
    nets = [n.eval() for n in make(ExpertTeacherNet, [0, 1])]
    stack = StackedMLP.from_models(nets).eval()
    x = torch.randn(2, 16, 10)
    out = stack(x)
    for m, net in enumerate(nets):
        assert torch.allclose(out[m], net(x[m]), rtol=1e-5, atol=1e-6)
    stack.train()
    assert not torch.allclose(stack(x), out)  # dropout is active in train mode


def test_leaky_relu_slope_is_used():
    spec = MLPSpec((2, 3, 1), activation="leaky_relu", negative_slope=0.5)
    torch.manual_seed(0)
    net = MLP(spec)
    stack = StackedMLP.from_models([net])
    x = -10 * torch.rand(1, 50, 2)
    assert torch.allclose(stack(x)[0], net(x[0]), rtol=1e-5, atol=1e-6)


def test_mixed_architectures_are_rejected():
    with pytest.raises(ValueError, match="architecture"):
        StackedMLP.from_models([StudentNet(), TeacherNet()])


def test_gradients_stay_per_model():
    nets = make(StudentNet, [0, 1])
    stack = StackedMLP.from_models(nets)
    x = torch.randn(2, 8, 10)
    stack(x)[0].sum().backward()  # only model 0's output
    for W in stack.weights:
        assert W.grad[0].abs().sum() > 0
        assert W.grad[1].abs().sum() == 0


@pytest.mark.parametrize("cls", [StudentNet, ExpertTeacherNet])
def test_stacked_features_equal_each_models_features(cls):
    nets = [n.eval() for n in make(cls, [3, 4])]
    stack = StackedMLP.from_models(nets).eval()
    x = torch.randn(2, 20, 10, generator=torch.Generator().manual_seed(0))
    out, features = stack.forward_with_features(x)
    assert torch.equal(out, stack(x))
    for m, net in enumerate(nets):
        net_out, net_features = net.forward_with_features(x[m])
        assert torch.allclose(out[m], net_out, rtol=1e-5, atol=1e-6)
        assert len(features) == len(net_features)
        for ours, theirs in zip(features, net_features):
            assert torch.allclose(ours[m], theirs, rtol=1e-5, atol=1e-6)


def test_stacked_features_are_taken_before_dropout():
    stack = StackedMLP.from_models(make(ExpertTeacherNet, [0])).train()
    x = torch.randn(1, 200, 10)
    _, features = stack.forward_with_features(x)
    # dropout zeroes 30 % of a layer's outputs; before it, LeakyReLU leaves none at zero
    assert all((f != 0).all() for f in features)


def test_stacked_linear_round_trip_and_forward():
    torch.manual_seed(0)
    linears = [nn.Linear(32, 64) for _ in range(3)]
    stack = StackedLinear.from_linears(linears)
    assert tuple(stack.weight.shape) == (3, 32, 64) and tuple(stack.bias.shape) == (3, 1, 64)
    x = torch.randn(3, 5, 32)
    out = stack(x)
    back = stack.to_linears()
    for m, (lin, again) in enumerate(zip(linears, back)):
        assert torch.allclose(out[m], lin(x[m]), rtol=1e-5, atol=1e-6)
        assert torch.equal(again.weight, lin.weight) and torch.equal(again.bias, lin.bias)
    with torch.no_grad():
        stack.weight.zero_()
    assert back[0].weight.abs().sum() > 0  # copies, not views
    with pytest.raises(ValueError, match="one shape"):
        StackedLinear.from_linears([nn.Linear(32, 64), nn.Linear(16, 64)])
