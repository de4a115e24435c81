"""The stacked engine's Adam: PyTorch's fused kernel called directly."""

import pytest
import torch

from kdteach.core.stacked import FusedAdam, make_adam


@pytest.mark.parametrize("weight_decay", [0.0, 1e-4])
def test_fused_adam_is_torchs_fused_adam_bit_for_bit(weight_decay):
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(4, 7, generator=gen), torch.randn(7, generator=gen)]
    ours = [p.clone().requires_grad_() for p in start]
    theirs = [p.clone().requires_grad_() for p in start]
    opt_ours = FusedAdam(ours, lr=1e-3, weight_decay=weight_decay)
    opt_theirs = torch.optim.Adam(theirs, lr=1e-3, weight_decay=weight_decay, fused=True)
    x = torch.randn(16, 4, generator=gen)
    for _ in range(25):
        for params, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad()
            ((x @ params[0] + params[1]) ** 2).mean().backward()
            opt.step()
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    assert not torch.equal(ours[0], start[0])  # it did train


def test_a_parameter_without_a_gradient_is_left_alone_and_keeps_its_step_count():
    a, b = torch.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    opt = FusedAdam([a, b], lr=0.1)
    opt.zero_grad()
    a.sum().backward()
    opt.step()
    assert not torch.equal(a, torch.ones(3)) and torch.equal(b, torch.ones(3))
    assert [float(s) for s in opt.steps] == [1.0, 0.0]
    assert a.grad is not None
    opt.zero_grad()
    assert a.grad is None


def test_the_engine_uses_it_unless_told_not_to():
    p = [torch.zeros(2, requires_grad=True)]
    assert isinstance(make_adam(p, 1e-3, 0.0, fused=True), FusedAdam)
    assert isinstance(make_adam(p, 1e-3, 0.0, fused=False), torch.optim.Adam)
