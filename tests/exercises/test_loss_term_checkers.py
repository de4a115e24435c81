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


def _hp_rebuilt(s, t):
    return torch.tensor(((s - t) ** 2).mean().item(), requires_grad=True)  # the right number


def _hp_numpy_round_trip(s, t):
    d = s.detach().numpy() - t.numpy()
    return torch.tensor(float((d**2).mean()), requires_grad=True)


def _hp_zero_gradient(s, t):
    return ((s.detach() - t) ** 2).mean() + 0 * s.sum()


def _hp_half_detached(s, t):
    return 0.5 * ((s - t) ** 2).mean() + 0.5 * ((s.detach() - t) ** 2).mean()


def _hp_straight_through(s, t):
    return ((s - t) ** 2).mean().detach() + (s.sum() - s.sum().detach())


def _hp_backward_inside(s, t):
    loss = ((s - t) ** 2).mean()
    loss.backward()
    return loss


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
        # the loss must train the student, with the right gradient
        (_hp_rebuilt, "cut off from the computation graph"),
        (_hp_numpy_round_trip, "cut off from the computation graph"),
        (_hp_zero_gradient, "cut off from the computation graph"),
        (_hp_half_detached, "not the right gradient with respect to `student_pred`"),
        (_hp_straight_through, "not the right gradient with respect to `student_pred`"),
        (_hp_backward_inside, "called `.backward()` itself"),
    ],
)
def test_hp_loss_mistakes(incorrect, answer, fragment):
    incorrect("hp_loss", answer, fragment)




BROADCAST = "compared tensors of shapes (8,) and (8, 1): broadcasting made an (8, 8) table"


@pytest.mark.parametrize(
    "answer",
    [
        lambda s, t: ((s.squeeze() - t) ** 2).mean(),
        lambda s, t: ((s - t.squeeze()) ** 2).mean(),
        lambda s, t: ((s.view(-1) - t) ** 2).mean(),
        lambda s, t: ((s.T - t) ** 2).mean(),
        lambda s, t: torch.mean((s.flatten() - t) ** 2),
        lambda s, t: ((s.squeeze(1) - t) ** 2).mean(),
    ],
)
@pytest.mark.filterwarnings("ignore:Using a target size")
def test_hp_loss_broadcasting_names_both_shapes(incorrect, answer):
    incorrect("hp_loss", answer, BROADCAST)


@pytest.mark.filterwarnings("ignore:Using a target size")
def test_hp_loss_mse_loss_of_a_squeezed_side_names_both_shapes(incorrect):
    incorrect("hp_loss", lambda s, t: F.mse_loss(s.squeeze(), t), BROADCAST)


def test_hp_loss_returning_the_broadcast_table_names_both_shapes(incorrect):
    result = incorrect("hp_loss", lambda s, t: (s.squeeze() - t) ** 2,
                       "returned a tensor of shape (8, 8)")
    assert "(8,) and (8, 1)" in result.message


def _hp_own_inplace(s, t):
    d = s - t
    d.pow_(2)  # in place, on the answer's own tensor
    return d.mean()


def _hp_own_buffer(s, t):
    d = s.clone()
    d -= t
    return (d * d).mean()


@pytest.mark.parametrize(
    "answer",
    [
        lambda s, t: ((s.double() - t.double()) ** 2).mean(),  # float64 arithmetic
        lambda s, t: ((s.view(-1) - t.view(-1)) ** 2).mean(),  # views of both sides
        lambda s, t: ((s.squeeze() - t.squeeze()) ** 2).mean(),
        lambda s, t: ((s.T - t.T) ** 2).mean(),
        lambda s, t: ((s.reshape(1, -1) - t.reshape(1, -1)) ** 2).mean(),
        lambda s, t: torch.mean((s - t) ** 2),
        lambda s, t: ((s - t) ** 2).mean(),
        lambda s, t: torch.pow(torch.sub(s, t), 2).mean(),
        lambda s, t: F.mse_loss(s, t.detach(), reduction="sum") / s.numel(),
        _hp_own_inplace,
        _hp_own_buffer,
    ],
)
def test_hp_loss_accepts_correct_answers_written_differently(answer):
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


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (lambda s, y, t, hard, hp: hard * _mse(s, y) + hp * _mse(s.detach(), t),
         "not the right gradient with respect to `student_pred`"),
        (lambda s, y, t, hard, hp: torch.tensor((hard * _mse(s, y) + hp * _mse(s, t)).item(),
                                                requires_grad=True),
         "cut off from the computation graph"),
        (lambda s, y, t, hard, hp: hard * _mse(s, y) + hp * _mse(s.squeeze(), t),
         "compared tensors of shapes (8,) and (8, 1) in its teacher term"),
        (lambda s, y, t, hard, hp: hard * _mse(s, y.squeeze()) + hp * _mse(s, t),
         "compared tensors of shapes (8,) and (8, 1) in its hard term"),
        (lambda s, y, t, hard, hp: hard * _mse(s.squeeze(), y) + hp * _mse(s.squeeze(), t),
         "compared tensors of shapes (8,) and (8, 1) in both terms"),
    ],
)
def test_weighted_loss_gradient_and_shape_mistakes(incorrect, answer, fragment):
    incorrect("weighted_loss", answer, fragment)


def _weighted_own_inplace(s, y, t, hard, hp):
    loss = hard * F.mse_loss(s, y)
    loss += hp * F.mse_loss(s, t)  # in place, on the answer's own tensor
    return loss


@pytest.mark.parametrize(
    "answer",
    [
        lambda s, y, t, hard, hp: (hard * _mse(s.double(), y.double())
                                   + hp * _mse(s.double(), t.double())),
        lambda s, y, t, hard, hp: hard * torch.nn.MSELoss()(s, y) + hp * torch.nn.MSELoss()(s, t),
        lambda s, y, t, hard, hp: (hard * ((s.view(-1) - y.view(-1)) ** 2).mean()
                                   + hp * torch.mean((s - t) ** 2)),
        _weighted_own_inplace,
    ],
)
def test_weighted_loss_accepts_correct_answers_written_differently(answer):
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


def _paired_own_copy(a, b):
    d = np.array(a, dtype=float)
    d -= np.asarray(b, dtype=float)  # in place, on the answer's own array
    return tuple(stats.ttest_1samp(d, 0.0, alternative="less"))


def test_paired_t_test_may_work_in_place_on_its_own_copy():
    assert exercises.check("paired_t_test", _paired_own_copy).status == exercises.CORRECT
