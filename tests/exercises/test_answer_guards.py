"""What every checker does whatever the exercise: nothing the answer raises escapes `check`
(SystemExit included; only KeyboardInterrupt, the learner stopping it, passes through), and
an answer that changes its arguments in place is told so, naming the argument."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from kdteach import exercises

# --------------------------------------------------------------------------- exceptions


def _exits(*args):
    sys.exit()


def _exits_with_a_message(*args):
    sys.exit("no time left\nsecond line")


@pytest.mark.parametrize("name", ["hp_loss", "weighted_loss", "paired_t_test", "pick_weights",
                                  "distill_step", "input_gradient", "lgr_loss",
                                  "jacobian_matching"])
def test_sys_exit_is_incorrect_not_the_end_of_the_program(incorrect, name):
    incorrect(name, _exits, f"`{name}` raised SystemExit")


def test_an_exception_is_named_by_its_type_and_first_line(incorrect):
    result = incorrect("hp_loss", _exits_with_a_message, "raised SystemExit: no time left")
    assert "second line" not in result.message


def test_an_exception_raised_after_the_call_is_caught_too(incorrect):
    def paired_t_test(a, b):  # a generator: its body runs when the checker unpacks (t, p)
        yield sys.exit("from the generator")

    incorrect("paired_t_test", paired_t_test, "raised SystemExit: from the generator")


def test_an_exception_whose_message_fails_is_still_named(incorrect):
    class Odd(Exception):
        def __str__(self):
            raise RuntimeError("no message")

    def hp_loss(s, t):
        raise Odd

    incorrect("hp_loss", hp_loss, "`hp_loss` raised Odd")


def test_keyboard_interrupt_passes_through():
    def hp_loss(s, t):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        exercises.check("hp_loss", hp_loss)


# --------------------------------------------------------------------------- in place


def _hp_overwrites_teacher(student_pred, teacher_pred):
    with torch.no_grad():
        teacher_pred.copy_(student_pred)
    return ((student_pred - teacher_pred) ** 2).mean()  # 0, and 0 on the overwritten tensors


def _hp_overwrites_teacher_returns_zero(student_pred, teacher_pred):
    teacher_pred.data = student_pred.detach().clone()
    return torch.tensor(0.0, requires_grad=True)


def _hp_overwrites_student(student_pred, teacher_pred):
    student_pred.data -= teacher_pred  # the right value and gradient, the caller's tensor lost
    return (student_pred**2).mean()


def _hp_squeezes_in_place(student_pred, teacher_pred):
    return ((student_pred.squeeze() - teacher_pred.squeeze_()) ** 2).mean()


def _weighted_overwrites_y(s, y, t, hard, hp):
    y.copy_(s.detach())
    return hard * F.mse_loss(s, y) + hp * F.mse_loss(s, t)


def _paired_overwrites_a(a, b):
    for i in range(len(a)):
        a[i] -= b[i]  # the differences, written over the caller's list
    return tuple(stats.ttest_1samp(a, 0.0, alternative="less"))


def _pick_sorts_the_runs(val_mse):
    for runs in val_mse.values():
        runs.sort()
    return min(val_mse, key=lambda label: np.mean(val_mse[label]))


def _step(student, teacher, optimizer, X, y, hard, hp):
    teacher.eval()
    with torch.no_grad():
        teacher_pred = teacher(X)
    student.train()
    optimizer.zero_grad()
    pred = student(X)
    loss = hard * F.mse_loss(pred, y) + hp * F.mse_loss(pred, teacher_pred)
    loss.backward()
    optimizer.step()
    return teacher_pred, loss.item()


def _step_overwrites_y(student, teacher, optimizer, X, y, hard, hp):
    teacher_pred, loss = _step(student, teacher, optimizer, X, y, hard, hp)
    y.sub_(teacher_pred)  # the residual, "to save memory"
    return loss


def _step_nudges_the_teacher(student, teacher, optimizer, X, y, hard, hp):
    _, loss = _step(student, teacher, optimizer, X, y, hard, hp)
    with torch.no_grad():
        for p in teacher.parameters():
            p.mul_(0.999)
    return loss


def _grad_squeezes_y_in_place(model, X, y, create_graph):
    X = X.detach().requires_grad_(True)
    loss = F.mse_loss(model(X).squeeze(), y.squeeze_())
    return torch.autograd.grad(loss, X, create_graph=create_graph)[0]


def _lgr_overwrites_y(student, teacher, X, y):
    from kdteach.core.losses import lgr_as_in_original

    loss = lgr_as_in_original(student, teacher, X, y)
    y.zero_()
    return loss


def _lgr_steps_the_student(student, teacher, X, y):
    from kdteach.core.losses import lgr_as_in_original

    loss = lgr_as_in_original(student, teacher, X, y)
    with torch.no_grad():
        for p in student.parameters():
            p.sub_(0.01 * p)
    return loss


def _jac_adds_noise_through_a_detached_alias(student, teacher, X):
    from kdteach.core.losses import jacobian_matching

    loss = jacobian_matching(student, teacher, X)
    X = X.detach()  # shares the caller's storage
    X.mul_(1.5)
    return loss


@pytest.mark.parametrize(
    "name, answer, argument",
    [
        ("hp_loss", _hp_overwrites_teacher, "teacher_pred"),
        ("hp_loss", _hp_overwrites_teacher_returns_zero, "teacher_pred"),
        ("hp_loss", _hp_overwrites_student, "student_pred"),
        ("hp_loss", _hp_squeezes_in_place, "teacher_pred"),
        ("weighted_loss", _weighted_overwrites_y, "y"),
        ("paired_t_test", _paired_overwrites_a, "a"),
        ("pick_weights", _pick_sorts_the_runs, "val_mse"),
        ("distill_step", _step_overwrites_y, "y"),
        ("distill_step", _step_nudges_the_teacher, "teacher"),
        ("input_gradient", _grad_squeezes_y_in_place, "y"),
        ("lgr_loss", _lgr_overwrites_y, "y"),
        ("lgr_loss", _lgr_steps_the_student, "student"),
        ("jacobian_matching", _jac_adds_noise_through_a_detached_alias, "X"),
    ],
)
def test_changing_an_argument_in_place_is_named(incorrect, name, answer, argument):
    result = incorrect(name, answer, f"`{name}` changed its argument `{argument}` in place")
    assert "stay as" in result.message  # and why it matters: the caller's data must stay
