"""The checker of distill_step: each typical mistake of one distillation step is "incorrect"
with the message meant for it, other correct forms pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kdteach import exercises

# --------------------------------------------------------------------------- distill_step


def make_step(
    eval_teacher=True,
    no_grad=True,
    zero_grad=True,
    reduce="mean",
    swap=False,
    step=True,
    item=True,
    eval_after_predicting=False,
    train_student=True,
):
    """A distill_step with one or more deliberate mistakes."""

    def distill_step(student, teacher, optimizer, X, y, hard, hp):
        if swap:
            hard, hp = hp, hard
        if eval_teacher and not eval_after_predicting:
            teacher.eval()
        with torch.set_grad_enabled(not no_grad):
            teacher_pred = teacher(X)
        if eval_after_predicting:
            teacher.eval()
        if train_student:
            student.train()
        if zero_grad:
            optimizer.zero_grad()
        pred = student(X)
        loss = hard * F.mse_loss(pred, y, reduction=reduce) + hp * F.mse_loss(
            pred, teacher_pred, reduction=reduce
        )
        loss.backward()
        if step:
            optimizer.step()
        return loss.item() if item else loss

    return distill_step


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (make_step(eval_teacher=False), "left the teacher in train mode"),
        (make_step(eval_after_predicting=True), "predicted in train mode"),
        (make_step(no_grad=False), "The teacher received gradients"),
        (make_step(zero_grad=False), "optimizer.zero_grad()"),
        (make_step(reduce="sum"), "sums the squared differences"),
        (make_step(swap=True), "swaps the weights"),
        (make_step(step=False), "did not change the student's weights"),
        (make_step(item=False), "returned a tensor"),
        (make_step(train_student=False), "left the student in eval mode"),
    ],
)
def test_distill_step_mistakes(incorrect, answer, fragment):
    incorrect("distill_step", answer, fragment)


def test_distill_step_must_return_the_loss_before_the_step(incorrect):
    def distill_step(student, teacher, optimizer, X, y, hard, hp):
        make_step()(student, teacher, optimizer, X, y, hard, hp)
        with torch.no_grad():
            return (hard * F.mse_loss(student(X), y)).item()

    incorrect("distill_step", distill_step, "returns a different number")


def _step_frozen_teacher(student, teacher, optimizer, X, y, hard, hp):
    teacher.eval()
    teacher.requires_grad_(False)
    student.train()
    student.zero_grad(set_to_none=False)
    pred = student(X)
    loss = hard * ((pred - y) ** 2).mean() + hp * ((pred - teacher(X).detach()) ** 2).mean()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def test_distill_step_accepts_other_correct_forms():
    assert exercises.check("distill_step", _step_frozen_teacher).status == exercises.CORRECT


def _step_own_inplace(student, teacher, optimizer, X, y, hard, hp):
    teacher.eval()
    with torch.no_grad():
        teacher_pred = teacher(X.clone())
    student.train()
    optimizer.zero_grad()
    pred = student(X).view(-1, 1)
    loss = hard * F.mse_loss(pred.double(), y.double())  # float64 arithmetic
    loss += hp * torch.nn.MSELoss()(pred, teacher_pred)  # in place, on its own tensor
    loss.backward()
    optimizer.step()
    return loss.item()


def test_distill_step_accepts_float64_and_in_place_ops_on_its_own_tensors():
    assert exercises.check("distill_step", _step_own_inplace).status == exercises.CORRECT
