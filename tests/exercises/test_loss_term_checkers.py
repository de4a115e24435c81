"""The checkers of the loss terms (hp_loss, weighted_loss) and of the paired t-test: each
typical mistake is "incorrect" with the message meant for it, other correct forms pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from kdteach import exercises

# --------------------------------------------------------------------------- hp_loss


def _hp_sum(s, t):
    return ((s - t) ** 2).sum()


def _hp_rmse(s, t):
    return ((s - t) ** 2).mean().sqrt()


def _hp_abs(s, t):
    return (s - t).abs().mean()


def _hp_square_of_mean(s, t):
    return (s - t).mean() ** 2


def _hp_no_square(s, t):
    return (s - t).mean()


def _hp_item(s, t):
    return ((s - t) ** 2).mean().item()


def _hp_detached(s, t):
    return ((s - t) ** 2).mean().detach()


def _hp_per_sample(s, t):
    return (s - t) ** 2


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (_hp_sum, "adds the squared differences up instead of averaging"),
        (_hp_rmse, "takes a square root"),
        (_hp_abs, "averages absolute differences"),
        (_hp_square_of_mean, "squares the mean difference"),
        (_hp_no_square, "forgets to square"),
        (_hp_item, "returned a float, not a tensor"),
        (_hp_detached, "cut off from the computation graph"),
        (_hp_per_sample, "not a single number"),
    ],
)
def test_hp_loss_mistakes(incorrect, answer, fragment):
    incorrect("hp_loss", answer, fragment)


@pytest.mark.parametrize(
    "answer",
    [
        F.mse_loss,
        lambda s, t: torch.nn.MSELoss()(s, t),
        lambda s, t: torch.mean(torch.square(t - s)),
        lambda s, t: ((s - t) ** 2).sum() / s.shape[0],
    ],
)
def test_hp_loss_accepts_other_correct_forms(answer):
    assert exercises.check("hp_loss", answer).status == exercises.CORRECT


# --------------------------------------------------------------------------- weighted_loss


def _mse(a, b):
    return ((a - b) ** 2).mean()


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (lambda s, y, t, hard, hp: hp * _mse(s, y) + hard * _mse(s, t), "swaps the weights"),
        (lambda s, y, t, hard, hp: hard * _hp_sum(s, y) + hp * _hp_sum(s, t), "adds the squared"),
        (lambda s, y, t, hard, hp: hard * _mse(s, y) + hp * _hp_sum(s, t), "adds the squared"),
        (lambda s, y, t, hard, hp: _mse(s, y) + _mse(s, t), "ignores the weights"),
        (
            lambda s, y, t, hard, hp: (hard * _mse(s, y) + hp * _mse(s, t)) / (hard + hp),
            "divides by the sum of the weights",
        ),
        (lambda s, y, t, hard, hp: hard * _mse(s, y) + hp * _mse(y, t), "teacher term"),
        (lambda s, y, t, hard, hp: hard * _mse(s, y) + hp * _mse(s, y), "teacher term"),
        (lambda s, y, t, hard, hp: hard * _mse(s, y), "leaves out the teacher term"),
        (lambda s, y, t, hard, hp: hard * _mse(s, t) + hp * _mse(s, t), "hard term"),
    ],
)
def test_weighted_loss_mistakes(incorrect, answer, fragment):
    incorrect("weighted_loss", answer, fragment)


@pytest.mark.parametrize(
    "answer",
    [
        lambda s, y, t, hard, hp: hard * F.mse_loss(s, y) + hp * F.mse_loss(s, t),
        lambda s, y, t, hard, hp: torch.stack([hard * _mse(y, s), hp * _mse(t, s)]).sum(),
    ],
)
def test_weighted_loss_accepts_other_correct_forms(answer):
    assert exercises.check("weighted_loss", answer).status == exercises.CORRECT


# --------------------------------------------------------------------------- paired_t_test


def _t_manual(d, n):
    return float(np.mean(d) / (np.std(d, ddof=1) / np.sqrt(n)))


def _paired_ddof0(a, b):
    d = np.subtract(a, b)
    t = float(d.mean() / (d.std() / np.sqrt(d.size)))
    return t, float(stats.t.cdf(t, d.size - 1))


def _paired_normal(a, b):
    d = np.subtract(a, b)
    t = _t_manual(d, d.size)
    return t, float(stats.norm.cdf(t))


def _paired_df_n(a, b):
    d = np.subtract(a, b)
    t = _t_manual(d, d.size)
    return t, float(stats.t.cdf(t, d.size))


def _paired_b_minus_a(a, b):
    d = np.subtract(b, a)
    t = _t_manual(d, d.size)
    return t, float(stats.t.sf(t, d.size - 1))


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (lambda a, b: tuple(stats.ttest_rel(a, b)), "two-sided p-value"),
        (lambda a, b: tuple(stats.ttest_rel(a, b, alternative="greater")), "opposite direction"),
        (lambda a, b: tuple(stats.ttest_ind(a, b, alternative="less")), "independent-samples"),
        (
            lambda a, b: tuple(stats.ttest_ind(a, b, alternative="less", equal_var=False)),
            "independent-samples",
        ),
        (_paired_ddof0, "population standard deviation"),
        (_paired_normal, "normal distribution"),
        (_paired_df_n, "uses n degrees of freedom"),
        (_paired_b_minus_a, "wrong sign"),
        (lambda a, b: stats.ttest_rel(a, b, alternative="less").pvalue, "return two numbers"),
    ],
)
def test_paired_t_test_mistakes(incorrect, answer, fragment):
    incorrect("paired_t_test", answer, fragment)


def _paired_torch(a, b):
    d = torch.tensor(a) - torch.tensor(b)
    t = d.mean() / (d.std() / len(a) ** 0.5)  # torch.std is the sample standard deviation
    return t, stats.t.cdf(t.item(), len(a) - 1)


@pytest.mark.parametrize(
    "answer",
    [
        lambda a, b: stats.ttest_rel(a, b, alternative="less"),  # the result object unpacks
        lambda a, b: stats.ttest_1samp(np.subtract(a, b), 0.0, alternative="less"),
        _paired_torch,
    ],
)
def test_paired_t_test_accepts_other_correct_forms(answer):
    assert exercises.check("paired_t_test", answer).status == exercises.CORRECT
