"""The checker of one distillation step: a frozen teacher in eval mode, a student that learns."""

from __future__ import annotations

import copy

import numpy as np
import torch

from kdteach.core.losses import mse
from kdteach.core.models import ExpertTeacherNet, StudentNet
from kdteach.exercises.cases import SEED, batch, distinct_weights, sum_mse
from kdteach.exercises.running import call
from kdteach.exercises.verdicts import Incorrect, Tally, tensors_close, values_close

# --------------------------------------------------------------------------- distill_step


def check_distill_step(answer) -> str:
    gen = torch.Generator().manual_seed(SEED + 3)
    rng = np.random.default_rng(SEED + 3)
    n_cases = 6
    updates = Tally(
        "`distill_step` updates the student differently from one optimiser step on "
        "hard·MSE(y_s, y) + hp·L_HP.",
        close=tensors_close,
    )
    losses = Tally(
        "`distill_step` updates the student correctly but returns a different number: "
        "return the loss of this batch, computed before the step.",
        close=lambda a, b: values_close(a, b, rtol=1e-4, atol=1e-7),
    )
    for case in range(n_cases):
        d, n = 4, 8 + 2 * case
        torch.manual_seed(SEED + 3 + case)
        student, teacher = StudentNet(n_features=d), ExpertTeacherNet(n_features=d)
        X, y = batch(gen, n, d), batch(gen, n)
        hard, hp = distinct_weights(rng, sum_to_one=case % 2 == 0)
        lr = 0.05
        for param in student.parameters():  # left over from an earlier step
            param.grad = 0.1 * torch.randn(param.shape, generator=gen)
        student.eval()  # as after an evaluation; the step must switch it back
        teacher.train()  # as after the teacher's own training; the step must switch to eval
        expected = _distill_variants(student, teacher, X, y, hard, hp, lr, case)
        before = [p.detach().clone() for p in student.parameters()]
        optimizer = torch.optim.SGD(student.parameters(), lr=lr)
        torch.manual_seed(case)  # the same dropout masks as the train-mode variant
        out = call("distill_step", answer, student=student, teacher=teacher,
                   optimizer=optimizer, X=X.clone(), y=y.clone(), hard=hard, hp=hp,
                   may_change=("student", "optimizer"))
        after = student.parameters()
        update = torch.cat([(p.detach() - b).flatten() for p, b in zip(after, before)])
        _judge_distill_step(out, update, student, teacher)
        (right_update, right_loss), mistakes = expected
        updates.add(update, right_update, mistakes)
        losses.add(float(out), right_loss, [])
    updates.verdict()
    losses.verdict()
    return (
        f"`distill_step` makes the same update and returns the same loss as one distillation "
        f"step on {n_cases} random batches, with the teacher frozen and in eval mode."
    )


def _distill_variants(student, teacher, X, y, hard, hp, lr, case) -> tuple:
    """On copies: the right step's (update, loss), and ``(message, update)`` per typical mistake."""
    teacher = copy.deepcopy(teacher)
    teacher.eval()
    with torch.no_grad():
        t_eval = teacher(X)
        teacher.train()
        torch.manual_seed(case)
        t_train = teacher(X)

    old = [p.grad.clone() for p in student.parameters()]

    def step(loss_fn, keep_old_grads=False):
        s = copy.deepcopy(student)  # a copy starts without gradients
        loss = loss_fn(s(X))
        loss.backward()
        grads = [p.grad + g if keep_old_grads else p.grad for p, g in zip(s.parameters(), old)]
        return torch.cat([-lr * g.flatten() for g in grads]), loss.item()

    def weighted(target_t, w_y=hard, w_t=hp, loss=mse):
        return lambda pred: w_y * loss(pred, y) + w_t * loss(pred, target_t)

    right = step(weighted(t_eval))
    mistakes = [
        ("`distill_step` adds this step's gradient to gradients left over from before: call "
         "`optimizer.zero_grad()` before `loss.backward()`.",
         step(weighted(t_eval), keep_old_grads=True)[0]),
        ("`distill_step` sums the squared differences instead of averaging them: both terms "
         "are batch means.", step(weighted(t_eval, loss=sum_mse))[0]),
        ("`distill_step` swaps the weights: `hard` multiplies the loss against the labels, "
         "`hp` the loss against the teacher.", step(weighted(t_eval, w_y=hp, w_t=hard))[0]),
        ("The teacher of `distill_step` predicted in train mode, with dropout on: call "
         "`teacher.eval()` before it predicts.", step(weighted(t_train))[0]),
    ]
    return right, mistakes


def _judge_distill_step(out, update, student, teacher) -> None:
    """The mistakes one case shows directly: what was returned, modes, gradients, weights
    (:func:`call` has made sure that the teacher's weights and the data stayed as they were)."""
    if isinstance(out, torch.Tensor):
        raise Incorrect(
            "`distill_step` returned a tensor; return the loss as a plain float "
            "(`loss.item()`), which also lets the step's graph be freed."
        )
    if not isinstance(out, (int, float)):
        raise Incorrect(
            f"`distill_step` returned a {type(out).__name__}; return the step's loss as a float."
        )
    if teacher.training:
        raise Incorrect(
            "`distill_step` left the teacher in train mode, so its dropout was on while it "
            "taught: call `teacher.eval()` before it predicts."
        )
    if any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in teacher.parameters()):
        raise Incorrect(
            "The teacher received gradients in `distill_step`: compute its predictions under "
            "`torch.no_grad()` (or detach them), so that only the student learns."
        )
    if not bool(update.abs().sum() > 0):
        raise Incorrect(
            "`distill_step` did not change the student's weights: call `loss.backward()`, "
            "then `optimizer.step()`."
        )
    if not student.training:
        raise Incorrect(
            "`distill_step` left the student in eval mode: call `student.train()` before "
            "the step, so layers such as dropout train as they should."
        )
