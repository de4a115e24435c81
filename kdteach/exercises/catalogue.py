"""The catalogue: one :class:`Exercise` per function a learner writes, with its checker and
hints, in the order of the lessons."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kdteach.exercises.choosing_weights import check_pick_weights
from kdteach.exercises.distillation_step import check_distill_step
from kdteach.exercises.gradients import (
    check_input_gradient,
    check_jacobian_matching,
    check_lgr_loss,
)
from kdteach.exercises.loss_terms import check_hp_loss, check_paired_t_test, check_weighted_loss


@dataclass(frozen=True)
class Exercise:
    """One function to write: its checker (returns the praise, or raises a signal of
    :mod:`kdteach.exercises.verdicts`) and its two hints."""

    name: str
    checker: Callable
    hints: tuple  # (level 1, level 2)


EXERCISES = {
    ex.name: ex
    for ex in (
        Exercise(
            "hp_loss",
            check_hp_loss,
            (
                "L_HP is an ordinary mean squared error whose target is the teacher's "
                "prediction instead of the label.",
                "Subtract, square, then take the mean over every element: "
                "`((student_pred - teacher_pred) ** 2).mean()`, or "
                "`torch.nn.functional.mse_loss`.",
            ),
        ),
        Exercise(
            "weighted_loss",
            check_weighted_loss,
            (
                "Two mean squared errors with one weight each: the student against the labels, "
                "and the student against the teacher.",
                "`hard * MSE(student_pred, y) + hp * MSE(student_pred, teacher_pred)`, each "
                "MSE a batch mean (your `hp_loss` is the second one).",
            ),
        ),
        Exercise(
            "paired_t_test",
            check_paired_t_test,
            (
                "Run i of both models shares its random seed, so the test works on the "
                "per-run differences, and H1 says which way they point.",
                "`scipy.stats.ttest_rel(a, b, alternative='less')` returns t and p; or by "
                "hand: d = a − b, t = mean(d) / (std(d, ddof=1) / √n), "
                "p = `stats.t.cdf(t, n - 1)`.",
            ),
        ),
        Exercise(
            "distill_step",
            check_distill_step,
            (
                "The teacher only gives targets: it must predict in eval mode and never "
                "receive gradients. The student does an ordinary training step.",
                "`teacher.eval()`; under `torch.no_grad()` get the teacher's predictions; "
                "`student.train()`; `optimizer.zero_grad()`; the weighted loss; "
                "`loss.backward()`; `optimizer.step()`; return `loss.item()`.",
            ),
        ),
        Exercise(
            "pick_weights",
            check_pick_weights,
            (
                "The choice may use only the numbers it is given: the validation MSEs. Which "
                "grid point has the lowest average over the runs?",
                "`min(val_mse, key=lambda label: np.mean(val_mse[label]))`.",
            ),
        ),
        Exercise(
            "input_gradient",
            check_input_gradient,
            (
                "Make X a leaf that requires a gradient, compute the model's batch-mean MSE "
                "on it, and ask autograd for the gradient with respect to X only.",
                "`X = X.detach().requires_grad_(True)`; `loss = F.mse_loss(model(X), y)`; "
                "`torch.autograd.grad(loss, X, create_graph=create_graph)[0]`.",
            ),
        ),
        Exercise(
            "lgr_loss",
            check_lgr_loss,
            (
                "Two input gradients, one per model, then the MSE between them. Only the "
                "student's gradient may carry a graph back to the weights.",
                "`teacher.eval()`; `g_t = input_gradient(teacher, X, y, create_graph=False)`; "
                "`g_s = input_gradient(student, X, y, create_graph=True)`; "
                "`((g_s - g_t.detach()) ** 2).mean()`.",
            ),
        ),
        Exercise(
            "jacobian_matching",
            check_jacobian_matching,
            (
                "Each sample's output depends only on its own input row, so the derivative "
                "of the *sum* of the outputs with respect to X gives every sample's "
                "derivatives at once. Only the student's may carry a graph.",
                "`teacher.eval()`; `X = X.detach().requires_grad_(True)`; "
                "`j_t = torch.autograd.grad(teacher(X).sum(), X)[0]`; "
                "`j_s = torch.autograd.grad(student(X).sum(), X, create_graph=True)[0]`; "
                "`((j_s - j_t) ** 2).mean()`.",
            ),
        ),
    )
}


def exercise(name: str) -> Exercise:
    """The exercise called ``name``; an unknown name raises ValueError listing them all."""
    if name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}; the exercises are: {', '.join(EXERCISES)}")
    return EXERCISES[name]
