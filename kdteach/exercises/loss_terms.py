"""Checkers of the loss terms (L_HP and the weighted loss) and of the paired t-test."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from kdteach.core.losses import hp_loss as _hp_loss
from kdteach.core.losses import mse
from kdteach.exercises.cases import SEED, batch, distinct_weights, sum_mse
from kdteach.exercises.running import call, student_gradient, wrong_gradient
from kdteach.exercises.verdicts import Incorrect, Tally, broadcast, loss_value, tensors_close

# --------------------------------------------------------------------------- hp_loss

_STUDENT = "`student_pred`"


def _table_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The MSE of a ``(B,)`` against a ``(B, 1)``: the mean of the ``(B, B)`` table."""
    return ((a.reshape(-1) - b) ** 2).mean()


def _student_loss(name, answer, reference, s, **args):
    """The answer's value on a copy of the student's predictions ``s`` (and on ``args``),
    the gradient it sends back to them, and the gradient of ``reference(s)``: the right one,
    computed on another copy before the answer runs."""
    leaf = s.clone().requires_grad_(True)
    (right_grad,) = torch.autograd.grad(reference(leaf), leaf)
    student_pred = s.clone().requires_grad_(True)
    out = call(name, answer, student_pred=student_pred, **args)
    value = loss_value(name, out, batch=s.shape[0])
    grad = student_gradient(name, out, [student_pred], _STUDENT)
    return value, grad, right_grad.double().flatten()


def check_hp_loss(answer) -> str:
    gen = torch.Generator().manual_seed(SEED)
    n_cases = 25
    tally = Tally(
        "`hp_loss` gives a different value from L_HP on some random batches. Compare it "
        "with the formula: the mean, over the batch, of the squared differences."
    )
    grads = Tally(wrong_gradient("hp_loss", _STUDENT, "L_HP"), close=tensors_close)
    for case in range(n_cases):
        n = 2 + (case + 6) % 12  # the last case has 8 samples: the messages name it
        s, t = batch(gen, n), batch(gen, n)
        right, variants = float(_hp_loss(s, t)), _hp_variants(s, t)
        got, grad, right_grad = _student_loss(
            "hp_loss", answer, lambda pred, t=t: _hp_loss(pred, t), s, teacher_pred=t.clone()
        )
        tally.add(got, right, variants)
        grads.add(grad, right_grad, [])
    tally.verdict()
    grads.verdict()
    return f"`hp_loss` equals L_HP on {n_cases} random batches and keeps the gradient."


def _hp_variants(s: torch.Tensor, t: torch.Tensor) -> list:
    """``(message, value)`` per typical mistake of L_HP."""
    return [
        ("`hp_loss` adds the squared differences up instead of averaging them: L_HP "
         "is a mean over the batch (a sum grows with the batch size).", float(sum_mse(s, t))),
        ("`hp_loss` takes a square root: L_HP is the mean squared error, not its root.",
         float(_hp_loss(s, t).sqrt())),
        ("`hp_loss` averages absolute differences: L_HP squares them.",
         float((s - t).abs().mean())),
        ("`hp_loss` squares the mean difference instead of averaging the squared "
         "differences, so errors of opposite sign cancel.", float((s - t).mean() ** 2)),
        ("`hp_loss` forgets to square the differences, so errors of opposite sign "
         "cancel.", float((s - t).mean())),
        (f"`hp_loss` {broadcast(s.shape[0])}", float(_table_mse(s, t))),
    ]


# --------------------------------------------------------------------------- weighted_loss


def check_weighted_loss(answer) -> str:
    gen = torch.Generator().manual_seed(SEED + 1)
    rng = np.random.default_rng(SEED + 1)
    n_cases = 25
    tally = Tally(
        "`weighted_loss` gives a different value from hard·MSE(y_s, y) + hp·L_HP on some "
        "random batches and weights."
    )
    grads = Tally(wrong_gradient("weighted_loss", _STUDENT, "hard·MSE(y_s, y) + hp·L_HP"),
                  close=tensors_close)
    for case in range(n_cases):
        n = 2 + (case + 6) % 12  # the last case has 8 samples: the messages name it
        s = batch(gen, n)
        y, t = batch(gen, n), batch(gen, n)
        hard, hp = distinct_weights(rng, sum_to_one=case % 3 == 0)
        right, variants = _weighted_variants(s, y, t, hard, hp)

        def reference(pred, y=y, t=t, hard=hard, hp=hp):
            return hard * mse(pred, y) + hp * mse(pred, t)

        got, grad, right_grad = _student_loss("weighted_loss", answer, reference, s,
                                              y=y.clone(), teacher_pred=t.clone(),
                                              hard=hard, hp=hp)
        tally.add(got, right, variants)
        grads.add(grad, right_grad, [])
    tally.verdict()
    grads.verdict()
    return (
        f"`weighted_loss` equals hard·MSE(y_s, y) + hp·L_HP on {n_cases} random batches "
        "and weights."
    )


def _weighted_variants(s, y, t, hard, hp) -> tuple[float, list]:
    """The right value, and ``(message, value)`` per typical mistake."""
    m_y, m_t = float(mse(s, y)), float(mse(s, t))
    sum_y, sum_t = float(sum_mse(s, y)), float(sum_mse(s, t))
    table_y, table_t = float(_table_mse(s, y)), float(_table_mse(s, t))
    n = s.shape[0]
    summed = (
        "`weighted_loss` adds the squared differences up instead of averaging them: "
        "both terms are means over the batch."
    )
    teacher_term = (
        "The teacher term of `weighted_loss` does not compare the student with the "
        "teacher: L_HP is the MSE between `student_pred` and `teacher_pred`."
    )
    return hard * m_y + hp * m_t, [
        ("`weighted_loss` swaps the weights: `hard` multiplies the loss against the "
         "labels y, `hp` the loss against the teacher's predictions.",
         hp * m_y + hard * m_t),
        (summed, hard * sum_y + hp * sum_t),
        (summed, hard * sum_y + hp * m_t),
        (summed, hard * m_y + hp * sum_t),
        ("`weighted_loss` ignores the weights `hard` and `hp`.", m_y + m_t),
        ("`weighted_loss` divides by the sum of the weights: the loss is the plain "
         "weighted sum hard·MSE + hp·L_HP.", (hard * m_y + hp * m_t) / (hard + hp)),
        (teacher_term, hard * m_y + hp * float(mse(y, t))),
        (teacher_term, (hard + hp) * m_y),
        ("The hard term of `weighted_loss` does not compare the student with the "
         "labels y.", (hard + hp) * m_t),
        ("`weighted_loss` leaves out the teacher term hp·L_HP.", hard * m_y),
        ("`weighted_loss` leaves out the hard term hard·MSE(y_s, y).", hp * m_t),
        (f"`weighted_loss` {broadcast(n, ' in both terms')}", hard * table_y + hp * table_t),
        (f"`weighted_loss` {broadcast(n, ' in its hard term')}", hard * table_y + hp * m_t),
        (f"`weighted_loss` {broadcast(n, ' in its teacher term')}", hard * m_y + hp * table_t),
    ]


# --------------------------------------------------------------------------- paired_t_test


def check_paired_t_test(answer) -> str:
    rng = np.random.default_rng(SEED + 2)
    n_cases = 30
    t_tally = Tally(
        "The t of `paired_t_test` differs from the paired t statistic on some random samples: "
        "the mean of the differences over their standard error."
    )
    p_tally = Tally(
        "The p-value of `paired_t_test` differs from the one-sided paired t-test "
        "(H1: mean(a) < mean(b)) on some random samples."
    )
    for case in range(n_cases):
        n = 3 + case % 8
        base = rng.uniform(0.3, 0.5, n)  # shared by a run's two models: the pairing
        b = base + rng.normal(0, 0.01, n)
        shift = rng.normal(-0.01 if case % 3 else 0.01, 0.005)
        a = b + shift + rng.normal(0, 0.01, n)
        out = call("paired_t_test", answer, a=a.tolist(), b=b.tolist())
        t, p = _two_numbers(out)
        t_variants, p_variants = _t_test_variants(a, b)
        t_tally.add(t, t_variants[0], t_variants[1])
        p_tally.add(p, p_variants[0], p_variants[1])
    t_tally.verdict()
    p_tally.verdict()
    return (
        f"`paired_t_test` gives scipy's one-sided paired t-test on {n_cases} random pairs "
        "of samples."
    )


def _two_numbers(out) -> tuple[float, float]:
    try:
        t, p = out
        return float(t), float(p)
    except (TypeError, ValueError):
        raise Incorrect(
            f"`paired_t_test` returned {type(out).__name__}; return two numbers, `(t, p)`."
        ) from None


def _t_test_variants(a: np.ndarray, b: np.ndarray) -> tuple:
    """The right t and p, each with ``(message, value)`` pairs of typical mistakes."""
    n = a.size
    d = a - b
    t_ref, p_ref = (float(v) for v in stats.ttest_rel(a, b, alternative="less"))
    t_ind, p_ind = (float(v) for v in stats.ttest_ind(a, b, alternative="less"))
    t_welch, p_welch = (
        float(v) for v in stats.ttest_ind(a, b, alternative="less", equal_var=False)
    )
    independent = (
        "`paired_t_test` runs an independent-samples test, but the runs are paired: "
        "test the per-run differences a − b (scipy: `ttest_rel`)."
    )
    t_variants = (
        t_ref,
        [
            ("The t of `paired_t_test` has the wrong sign: use the differences a − b, "
             "not b − a.", -t_ref),
            (independent, t_ind),
            (independent, t_welch),
            ("The t of `paired_t_test` divides by the population standard deviation "
             "(ddof=0): a t-test uses the sample standard deviation (ddof=1).",
             float(d.mean() / (d.std() / np.sqrt(n)))),
        ],
    )
    p_variants = (
        p_ref,
        [
            ("`paired_t_test` gives a two-sided p-value, but H1 is one-sided: "
             "mean(a) < mean(b) (scipy: `alternative='less'`).",
             min(1.0, 2 * min(p_ref, 1 - p_ref))),
            ("`paired_t_test` tests the opposite direction, H1: mean(a) > mean(b).", 1 - p_ref),
            (independent, p_ind),
            (independent, p_welch),
            ("The p of `paired_t_test` comes from a normal distribution; a t-test takes it "
             "from Student's t with n − 1 degrees of freedom.", float(stats.norm.cdf(t_ref))),
            ("The p of `paired_t_test` uses n degrees of freedom; a paired t-test has n − 1.",
             float(stats.t.cdf(t_ref, n))),
        ],
    )
    return t_variants, p_variants
