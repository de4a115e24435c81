"""Numbers that explain the results: why L_GR is tiny, and how hard each loss term pulls.

Both functions work on one trained (or untrained) student and its teacher, on the
training set cut into the profile's batches, and use the losses of :mod:`kdteach.core.losses`.

Why L_GR is small, in symbols. For a batch of B samples, the input gradient of a model's
batch-mean MSE at sample i is ``(2/B)·(f(x_i) − y_i)·∇x f(x_i)``. L_GR is the mean, over
the batch and the d features, of the squared difference of the student's and the
teacher's such gradients. Each gradient carries two small factors: ``2/B`` (so L_GR
carries ``(2/B)²``) and the model's residual ``f(x_i) − y_i``, which shrinks as the
model fits the training set.
"""

from __future__ import annotations

import pandas as pd
import torch

from kdteach.core.losses import DistillationLoss, output_jacobian
from kdteach.core.train import check_batch_size, teacher_targets


def _batches(n: int, batch_size: int):
    check_batch_size(batch_size, n)
    order = torch.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def lgr_factors(student, teacher, X: torch.Tensor, y: torch.Tensor,
                batch_size: int = 128) -> dict:
    """The pieces L_GR is made of, measured on ``(X, y)``.

    Returns a dict of plain floats:

    * ``batch_factor``: ``(2/B)²``;
    * ``teacher_residual_sq``, ``student_residual_sq``: mean of ``(f(x) − y)²``;
    * ``teacher_jacobian_sq``, ``student_jacobian_sq``: mean over samples and features of
      ``(∂f/∂x)²``;
    * ``lgr``: the mean L_GR over the batches, as the loss computes it;
    * ``lgr_unscaled``: the same without the ``(2/B)²`` factor, i.e. the mean squared
      difference of ``(f(x) − y)·∂f/∂x`` between student and teacher;
    * ``hp``: the mean L_HP over the batches, for scale.

    Taught in Lesson 04, section 3 (why L_GR is so small).
    """
    student.eval()
    targets = teacher_targets(teacher, X, y, need_grad=True)
    loss = DistillationLoss(hp=1.0, gr=1.0)
    lgr = hp = 0.0
    batches = _batches(len(X), batch_size)
    for idx in batches:
        X_b = X[idx].detach().requires_grad_(True)
        _, terms = loss(student(X_b), y[idx], X_b, **targets.batch(idx))
        lgr += float(terms["gr"].detach()) / len(batches)
        hp += float(terms["hp"].detach()) / len(batches)
    with torch.no_grad():
        s_res = student(X) - y
    t_res = targets.pred - y
    s_jac, t_jac = output_jacobian(student, X), output_jacobian(teacher, X)
    unscaled = float(((s_res * s_jac - t_res * t_jac) ** 2).mean())
    return {
        "batch_factor": (2.0 / batch_size) ** 2,
        "teacher_residual_sq": float((t_res ** 2).mean()),
        "student_residual_sq": float((s_res ** 2).mean()),
        "teacher_jacobian_sq": float((t_jac ** 2).mean()),
        "student_jacobian_sq": float((s_jac ** 2).mean()),
        "lgr": lgr,
        "lgr_unscaled": unscaled,
        "hp": hp,
    }


def term_gradient_norms(student, teacher, X: torch.Tensor, y: torch.Tensor, weights: dict,
                        batch_size: int = 128) -> pd.DataFrame:
    """How hard each loss term pulls on the student's parameters.

    For every active term of ``weights`` (e.g. ``{"hard": 0.2, "hp": 0.5, "gr": 0.3}``):
    the norm of ``weight × ∂term/∂θ`` over all the student's parameters, averaged over the
    batches of ``(X, y)``, and its share of the sum of the norms. A term whose loss value
    is small may still pull hard, and the other way round: this is what the optimiser sees.
    L_FEAT is not measured here: it needs the adapter trained with the student.

    Taught in Lesson 04, section 4 (how hard does each term pull?); used again in Lesson 05,
    section 1.
    """
    loss = DistillationLoss.from_weights(weights)
    if loss.needs_features:
        raise ValueError("term_gradient_norms does not measure 'feat' (L_FEAT needs the "
                         "adapter trained with the student); leave it out of weights")
    targets = teacher_targets(teacher, X, y, "gr" in loss.weights,
                              need_jac="jac" in loss.weights) if loss.needs_teacher else None
    params = [p for p in student.parameters() if p.requires_grad]
    student.train()
    sums = {t: 0.0 for t in loss.terms}
    values = {t: 0.0 for t in loss.terms}
    batches = _batches(len(X), batch_size)
    for idx in batches:
        X_b = X[idx].detach().requires_grad_(loss.needs_input_grad)
        terms = loss.compute_terms(student(X_b), y[idx], X_b,
                                   **(targets.batch(idx) if targets else {}))
        for t, value in terms.items():
            grads = torch.autograd.grad(loss.weights[t] * value, params, retain_graph=True,
                                        allow_unused=True)
            norm = torch.sqrt(sum((g ** 2).sum() for g in grads if g is not None))
            sums[t] += float(norm) / len(batches)
            values[t] += float(value.detach()) / len(batches)
    student.eval()
    total = sum(sums.values())
    return pd.DataFrame({
        "term": list(sums),
        "weight": [loss.weights[t] for t in sums],
        "loss value": [values[t] for t in sums],
        "gradient norm": list(sums.values()),
        "share of the pull": [v / total if total > 0 else float("nan") for v in sums.values()],
    })
