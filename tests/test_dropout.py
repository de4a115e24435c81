"""The stacked engine's dropout: one division by a tensor of 1 − p (kept) or ∞ (dropped)."""

import pytest
import torch

from kdteach.stacked import dropout_divisors


def _generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.mark.parametrize("p", [0.3, 0.5, 0.1])
def test_division_equals_mask_times_input_over_keep_rate_bit_for_bit(p):
    shape = (3, 64, 40)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(7), requires_grad=True)
    grad = torch.randn(shape, generator=torch.Generator().manual_seed(8))
    # the usual formulation, with the same uniforms drawn model by model
    gens = _generators([11, 12, 13])
    keep = torch.stack([torch.rand(shape[1:], generator=g) for g in gens]) >= p
    expected = x * keep / (1.0 - p)
    (expected_grad,) = torch.autograd.grad(expected, x, grad)

    out = x / dropout_divisors(_generators([11, 12, 13]), shape, p)
    (out_grad,) = torch.autograd.grad(out, x, grad)
    assert torch.equal(out, expected)
    assert torch.equal(out_grad, expected_grad)


def test_each_model_draws_from_its_own_generator_only():
    alone = dropout_divisors(_generators([5]), (1, 32, 16), 0.3)
    stacked = dropout_divisors(_generators([9, 5, 2]), (3, 32, 16), 0.3)
    assert torch.equal(stacked[1], alone[0])
    assert not torch.equal(stacked[0], stacked[1])


def test_divisors_are_keep_rate_or_infinity_in_the_right_proportion():
    d = dropout_divisors(_generators([0, 1]), (2, 500, 100), 0.3)
    assert d.unique().tolist() == [pytest.approx(0.7), float("inf")]
    dropped = (d == float("inf")).float().mean().item()
    assert dropped == pytest.approx(0.3, abs=0.01)
