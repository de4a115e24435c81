"""The three loss terms of the original and the weighted composite that combines them.

* hard:  ``MSE(y_s, y)``, the student against the labels;
* L_HP:  ``MSE(y_s, y_t)``, the student against the (frozen) teacher's predictions;
* L_GR:  ``MSE(∇x L_s, ∇x L_t)``, where ``L = MSE(model(x), y)`` is each model's
  *batch-mean* loss and ∇x its gradient with respect to the input batch.

Every function here works on one model's batch, shapes ``(B, d)``, and equally on a
stack of models, shapes ``(M, B, d)``: reductions run over the last two axes, so a
stack returns one value per model. That is how the one-model loop and the stacked
engine in :mod:`kdteach.train` share this code.
"""

from __future__ import annotations

import torch

from .config import LOSS_TERMS, check_weights


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the last two axes (a scalar, or one value per model)."""
    return ((a - b) ** 2).mean(dim=(-2, -1))


def hard_loss(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return mse(pred, y)


def hp_loss(pred: torch.Tensor, teacher_pred: torch.Tensor) -> torch.Tensor:
    return mse(pred, teacher_pred)


def gr_loss(student_grad: torch.Tensor, teacher_grad: torch.Tensor) -> torch.Tensor:
    return mse(student_grad, teacher_grad)


def input_gradient(model, X: torch.Tensor, y: torch.Tensor, create_graph: bool = False):
    """∇x of the batch-mean MSE of ``model`` on ``(X, y)``, as the original computes it.

    With ``create_graph=True`` the result stays differentiable with respect to the
    model's parameters (needed for the student: without it L_GR trains nothing).
    """
    X = X.detach().requires_grad_(True)
    loss = mse(model(X), y).sum()
    (grad,) = torch.autograd.grad(loss, X, create_graph=create_graph)
    return grad


def teacher_gradient_per_sample(teacher, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``2·(t(x_i) − y_i)·∇x t(x_i)`` for every sample, with the teacher in eval mode.

    A batch's ∇x of the teacher's batch-mean MSE is this, indexed by the batch's
    samples and divided by its size B: computing it once per teacher replaces one
    teacher backward pass per batch.
    """
    teacher.eval()
    X = X.detach().requires_grad_(True)
    loss = ((teacher(X) - y) ** 2).sum()
    (grad,) = torch.autograd.grad(loss, X)
    return grad.detach()


def lgr_as_in_original(student, teacher, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L_GR computed directly, batch by batch, the way the original's training loop does."""
    teacher.eval()
    grad_t = input_gradient(teacher, X, y).detach()
    grad_s = input_gradient(student, X, y, create_graph=True)
    return gr_loss(grad_s, grad_t)


class DistillationLoss:
    """``total = hard·MSE(y_s, y) + hp·MSE(y_s, y_t) + gr·MSE(∇x L_s, ∇x L_t)``.

    >>> loss = DistillationLoss(hard=0.3, hp=0.7)
    >>> loss.weights
    {'hard': 0.3, 'hp': 0.7}

    Only terms with a positive weight are computed. Call it with the student's
    predictions and whatever the active terms need; it returns the total and a dict
    of every term (each detached from nothing: the caller may log or plot them).
    """

    def __init__(self, hard: float = 0.0, hp: float = 0.0, gr: float = 0.0, **unknown):
        if unknown:
            raise ValueError(
                f"unknown loss term(s) {', '.join(sorted(unknown))}; "
                f"valid terms are {', '.join(LOSS_TERMS)}"
            )
        given = {"hard": hard, "hp": hp, "gr": gr}
        check_weights(given, "DistillationLoss")
        self.weights = {t: float(w) for t, w in given.items() if w > 0}

    @classmethod
    def from_weights(cls, weights: dict) -> DistillationLoss:
        return cls(**weights)

    @property
    def terms(self) -> tuple[str, ...]:
        return tuple(self.weights)

    @property
    def needs_teacher(self) -> bool:
        return "hp" in self.weights or "gr" in self.weights

    @property
    def needs_input_grad(self) -> bool:
        return "gr" in self.weights

    def __repr__(self):
        args = ", ".join(f"{t}={w:g}" for t, w in self.weights.items())
        return f"DistillationLoss({args})"

    def __eq__(self, other):
        return isinstance(other, DistillationLoss) and self.weights == other.weights

    def compute_terms(self, pred, y, X=None, teacher_pred=None, teacher_grad=None) -> dict:
        """Each active term (a scalar, or one value per model for a stack)."""
        terms = {}
        hard = hard_loss(pred, y)
        if "hard" in self.weights:
            terms["hard"] = hard
        if "hp" in self.weights:
            if teacher_pred is None:
                raise ValueError("the 'hp' term needs teacher_pred (the teacher's outputs)")
            terms["hp"] = hp_loss(pred, teacher_pred)
        if "gr" in self.weights:
            if X is None or teacher_grad is None or not X.requires_grad:
                raise ValueError(
                    "the 'gr' term needs X (the input batch, with requires_grad=True, that "
                    "produced pred) and teacher_grad (the teacher's input gradient)"
                )
            (student_grad,) = torch.autograd.grad(hard.sum(), X, create_graph=True)
            terms["gr"] = gr_loss(student_grad, teacher_grad)
        return terms

    def __call__(self, pred, y, X=None, teacher_pred=None, teacher_grad=None):
        terms = self.compute_terms(pred, y, X, teacher_pred, teacher_grad)
        total = sum(self.weights[t] * v for t, v in terms.items())
        return total, terms
