"""Self-study exercises: checkers that name the mistake, hints, and the reference solutions.

A learner writes a function in a notebook of ``notebooks/exercises/`` and asks for feedback:

>>> from kdteach import exercises
>>> exercises.names()[:2]
['hp_loss', 'weighted_loss']
>>> exercises.check("hp_loss", lambda s, t: ((s - t) ** 2).mean()).status
'correct'

``check`` runs the answer on many random cases (fixed random seeds, so the verdict is the
same every time) and compares it with the package's own code and with typical wrong
answers, so an incorrect answer hears *which* mistake it made, never the expected numbers.
``hint(name, level)`` gives a hint (level 2 is more concrete) and ``solution(name)`` the
reference solution, read from the instructor notebooks (see
:mod:`kdteach.publish.learner_notebooks`).
"""

from __future__ import annotations

import copy
import html
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from kdteach.core.losses import hp_loss as _hp_loss
from kdteach.core.losses import input_gradient as _input_gradient
from kdteach.core.losses import jacobian_matching as _jacobian_matching
from kdteach.core.losses import lgr_as_in_original, mse
from kdteach.core.models import ExpertTeacherNet, StudentNet, TeacherNet
from kdteach.protocol.experiment import grid_name

CORRECT, INCORRECT, NOT_ATTEMPTED = "correct", "incorrect", "not attempted"
STATUSES = (CORRECT, INCORRECT, NOT_ATTEMPTED)
SEED = 2024  # every checker draws its cases from this random seed


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, repr=False)
class Result:
    """The verdict on one answer: ``status`` is one of :data:`STATUSES`, ``message`` says why."""

    name: str
    status: str
    message: str

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")

    def __repr__(self) -> str:
        return f"{_ICONS[self.status]} {self.name}: {self.status}. {self.message}"

    def _repr_markdown_(self) -> str:
        return f"**{_ICONS[self.status]} `{self.name}`: {self.status}.** {self.message}"

    def _repr_html_(self) -> str:
        message = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(self.message))
        return (
            f'<div style="border-left: 6px solid {_COLOURS[self.status]}; '
            f'padding: 0.4em 0.8em; margin: 0.3em 0">'
            f"<strong>{_ICONS[self.status]} <code>{html.escape(self.name)}</code>: "
            f"{self.status}.</strong> {message}</div>"
        )


_ICONS = {CORRECT: "✔", INCORRECT: "✘", NOT_ATTEMPTED: "○"}
_COLOURS = {CORRECT: "#2e7d32", INCORRECT: "#c62828", NOT_ATTEMPTED: "#9e9e9e"}


class Text(str):
    """A string that a notebook shows as Markdown (hints and solutions)."""

    markdown: str = ""

    def __new__(cls, text: str, markdown: str):
        obj = super().__new__(cls, text)
        obj.markdown = markdown
        return obj

    def _repr_markdown_(self) -> str:
        return self.markdown


class _Incorrect(Exception):
    """Raised inside a checker: the answer is wrong, and the message says how."""


class _NotAttempted(Exception):
    """Raised inside a checker: the answer still raises NotImplementedError."""


def _call(name: str, answer: Callable, *args):
    try:
        return answer(*args)
    except NotImplementedError:
        raise _NotAttempted from None
    except Exception as err:  # the learner's code may raise anything: name it
        raise _Incorrect(f"`{name}` raised {type(err).__name__}: {err}") from None


# --------------------------------------------------------------------------- helpers


def _loss_value(name: str, out, needs_graph: bool = True) -> float:
    """A loss the answer returned, as a float; it must be a one-element tensor in the graph."""
    if not isinstance(out, torch.Tensor):
        raise _Incorrect(
            f"`{name}` returned a {type(out).__name__}, not a tensor. Return the tensor itself: "
            "a plain number cannot be backpropagated."
        )
    if out.numel() != 1:
        raise _Incorrect(
            f"`{name}` returned a tensor of shape {tuple(out.shape)}, not a single number: "
            "average over the whole batch."
        )
    if needs_graph and not out.requires_grad:
        raise _Incorrect(
            f"`{name}` returned a value cut off from the computation graph (by `.item()`, "
            "`.detach()`, NumPy or `torch.no_grad()`), so it could not train the student."
        )
    return float(out.detach())


def _close(a: float, b: float, rtol: float = 1e-4, atol: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rtol, abs_tol=atol)


class _Tally:
    """An answer's values over all cases, against the right ones and typical mistakes.

    ``add`` takes one case: the answer's value, the right value, and ``(message, value)``
    pairs, one per typical mistake (a message may come with several values). ``verdict``
    passes if every case was right; otherwise it names the first mistake that agrees with
    the answer in *every* case (one case alone can agree with a mistake by chance), or
    falls back to ``generic``.
    """

    def __init__(self, generic: str, close: Callable = None):
        self.generic = generic
        self.close = close or _close
        self.all_right = True
        self.mistakes: list | None = None

    def add(self, value, right, variants: list) -> None:
        self.all_right = self.all_right and self.close(value, right)
        agree = list(dict.fromkeys(m for m, v in variants if self.close(value, v)))
        self.mistakes = agree if self.mistakes is None else [
            m for m in self.mistakes if m in agree
        ]

    def verdict(self) -> None:
        if not self.all_right:
            raise _Incorrect(self.mistakes[0] if self.mistakes else self.generic)


def _tensors_close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-3) -> bool:
    a, b = a.detach().double(), b.detach().double()
    return a.shape == b.shape and bool((a - b).norm() <= rtol * b.norm() + 1e-12)


def _batch(gen: torch.Generator, n: int, d: int = 1, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(n, d, generator=gen)


def _sum_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a - b) ** 2).sum()


# --------------------------------------------------------------------------- hp_loss


def _check_hp_loss(answer) -> str:
    gen = torch.Generator().manual_seed(SEED)
    n_cases = 25
    tally = _Tally(
        "`hp_loss` gives a different value from L_HP on some random batches. Compare it "
        "with the formula: the mean, over the batch, of the squared differences."
    )
    for case in range(n_cases):
        n = 2 + case % 12
        s = _batch(gen, n).requires_grad_(True)
        t = _batch(gen, n)
        got = _loss_value("hp_loss", _call("hp_loss", answer, s, t))
        s = s.detach()
        tally.add(
            got,
            float(_hp_loss(s, t)),
            [
                ("`hp_loss` adds the squared differences up instead of averaging them: L_HP "
                 "is a mean over the batch (a sum grows with the batch size).",
                 float(_sum_mse(s, t))),
                ("`hp_loss` takes a square root: L_HP is the mean squared error, not its root.",
                 float(_hp_loss(s, t).sqrt())),
                ("`hp_loss` averages absolute differences: L_HP squares them.",
                 float((s - t).abs().mean())),
                ("`hp_loss` squares the mean difference instead of averaging the squared "
                 "differences, so errors of opposite sign cancel.", float((s - t).mean() ** 2)),
                ("`hp_loss` forgets to square the differences, so errors of opposite sign "
                 "cancel.", float((s - t).mean())),
            ],
        )
    tally.verdict()
    return f"`hp_loss` equals L_HP on {n_cases} random batches and keeps the gradient."


# --------------------------------------------------------------------------- weighted_loss


def _check_weighted_loss(answer) -> str:
    gen = torch.Generator().manual_seed(SEED + 1)
    rng = np.random.default_rng(SEED + 1)
    n_cases = 25
    tally = _Tally(
        "`weighted_loss` gives a different value from hard·MSE(y_s, y) + hp·L_HP on some "
        "random batches and weights."
    )
    for case in range(n_cases):
        n = 2 + case % 12
        s = _batch(gen, n).requires_grad_(True)
        y, t = _batch(gen, n), _batch(gen, n)
        hard, hp = _distinct_weights(rng, sum_to_one=case % 3 == 0)
        got = _loss_value(
            "weighted_loss", _call("weighted_loss", answer, s, y, t, hard, hp)
        )
        s = s.detach()
        m_y, m_t = float(mse(s, y)), float(mse(s, t))
        sum_y, sum_t = float(_sum_mse(s, y)), float(_sum_mse(s, t))
        summed = (
            "`weighted_loss` adds the squared differences up instead of averaging them: "
            "both terms are means over the batch."
        )
        teacher_term = (
            "The teacher term of `weighted_loss` does not compare the student with the "
            "teacher: L_HP is the MSE between `student_pred` and `teacher_pred`."
        )
        tally.add(
            got,
            hard * m_y + hp * m_t,
            [
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
            ],
        )
    tally.verdict()
    return (
        f"`weighted_loss` equals hard·MSE(y_s, y) + hp·L_HP on {n_cases} random batches "
        "and weights."
    )


def _distinct_weights(rng: np.random.Generator, sum_to_one: bool) -> tuple[float, float]:
    """Two clearly different weights; unless ``sum_to_one``, their sum is clearly not 1."""
    while True:
        hard = float(rng.uniform(0.05, 0.95))
        hp = 1.0 - hard if sum_to_one else float(rng.uniform(0.05, 1.5))
        if abs(hard - hp) > 0.1 and (sum_to_one or abs(hard + hp - 1) > 0.1):
            return hard, hp


# --------------------------------------------------------------------------- paired_t_test


def _check_paired_t_test(answer) -> str:
    rng = np.random.default_rng(SEED + 2)
    n_cases = 30
    t_tally = _Tally(
        "The t of `paired_t_test` differs from the paired t statistic on some random samples: "
        "the mean of the differences over their standard error."
    )
    p_tally = _Tally(
        "The p-value of `paired_t_test` differs from the one-sided paired t-test "
        "(H1: mean(a) < mean(b)) on some random samples."
    )
    for case in range(n_cases):
        n = 3 + case % 8
        base = rng.uniform(0.3, 0.5, n)  # shared by a run's two models: the pairing
        b = base + rng.normal(0, 0.01, n)
        shift = rng.normal(-0.01 if case % 3 else 0.01, 0.005)
        a = b + shift + rng.normal(0, 0.01, n)
        out = _call("paired_t_test", answer, a.tolist(), b.tolist())
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
        raise _Incorrect(
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


# --------------------------------------------------------------------------- distill_step


def _check_distill_step(answer) -> str:
    gen = torch.Generator().manual_seed(SEED + 3)
    rng = np.random.default_rng(SEED + 3)
    n_cases = 6
    updates = _Tally(
        "`distill_step` updates the student differently from one optimiser step on "
        "hard·MSE(y_s, y) + hp·L_HP.",
        close=_tensors_close,
    )
    losses = _Tally(
        "`distill_step` updates the student correctly but returns a different number: "
        "return the loss of this batch, computed before the step.",
        close=lambda a, b: _close(a, b, rtol=1e-4, atol=1e-7),
    )
    for case in range(n_cases):
        d, n = 4, 8 + 2 * case
        torch.manual_seed(SEED + 3 + case)
        student, teacher = StudentNet(n_features=d), ExpertTeacherNet(n_features=d)
        X, y = _batch(gen, n, d), _batch(gen, n)
        hard, hp = _distinct_weights(rng, sum_to_one=case % 2 == 0)
        lr = 0.05
        for param in student.parameters():  # left over from an earlier step
            param.grad = 0.1 * torch.randn(param.shape, generator=gen)
        student.eval()  # as after an evaluation; the step must switch it back
        teacher.train()  # as after the teacher's own training; the step must switch to eval
        expected = _distill_variants(student, teacher, X, y, hard, hp, lr, case)
        before = [p.detach().clone() for p in student.parameters()]
        teacher_before = [p.detach().clone() for p in teacher.parameters()]
        optimizer = torch.optim.SGD(student.parameters(), lr=lr)
        torch.manual_seed(case)  # the same dropout masks as the train-mode variant
        out = _call(
            "distill_step", answer, student, teacher, optimizer, X.clone(), y.clone(), hard, hp
        )
        after = student.parameters()
        update = torch.cat([(p.detach() - b).flatten() for p, b in zip(after, before)])
        _judge_distill_step(out, update, student, teacher, teacher_before)
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
         "are batch means.", step(weighted(t_eval, loss=_sum_mse))[0]),
        ("`distill_step` swaps the weights: `hard` multiplies the loss against the labels, "
         "`hp` the loss against the teacher.", step(weighted(t_eval, w_y=hp, w_t=hard))[0]),
        ("The teacher of `distill_step` predicted in train mode, with dropout on: call "
         "`teacher.eval()` before it predicts.", step(weighted(t_train))[0]),
    ]
    return right, mistakes


def _judge_distill_step(out, update, student, teacher, teacher_before) -> None:
    """The mistakes one case shows directly: what was returned, modes, gradients, weights."""
    if isinstance(out, torch.Tensor):
        raise _Incorrect(
            "`distill_step` returned a tensor; return the loss as a plain float "
            "(`loss.item()`), which also lets the step's graph be freed."
        )
    if not isinstance(out, (int, float)):
        raise _Incorrect(
            f"`distill_step` returned a {type(out).__name__}; return the step's loss as a float."
        )
    if teacher.training:
        raise _Incorrect(
            "`distill_step` left the teacher in train mode, so its dropout was on while it "
            "taught: call `teacher.eval()` before it predicts."
        )
    if any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in teacher.parameters()):
        raise _Incorrect(
            "The teacher received gradients in `distill_step`: compute its predictions under "
            "`torch.no_grad()` (or detach them), so that only the student learns."
        )
    if any(not torch.equal(p.detach(), b) for p, b in zip(teacher.parameters(), teacher_before)):
        raise _Incorrect("`distill_step` changed the teacher's weights: only the student learns.")
    if not bool(update.abs().sum() > 0):
        raise _Incorrect(
            "`distill_step` did not change the student's weights: call `loss.backward()`, "
            "then `optimizer.step()`."
        )
    if not student.training:
        raise _Incorrect(
            "`distill_step` left the student in eval mode: call `student.train()` before "
            "the step, so layers such as dropout train as they should."
        )


# --------------------------------------------------------------------------- pick_weights

_GRID_HARD = (0.1, 0.3, 0.5, 0.7, 0.9)
_GRID_LABELS = tuple(grid_name({"hard": h, "hp": round(1 - h, 10)}) for h in _GRID_HARD)
# Made-up per-run MSEs of a weight grid, shaped like the lessons' results: the grid point
# that looks best on the test set is not the one that is best on the validation set.
_GRID_VAL = (
    (0.3498, 0.3311, 0.3620, 0.3365, 0.3587),
    (0.3301, 0.3452, 0.3387, 0.3339, 0.3405),
    (0.3604, 0.3551, 0.3712, 0.3498, 0.3640),
    (0.3836, 0.3950, 0.3791, 0.3874, 0.3902),
    (0.4157, 0.4082, 0.4311, 0.4198, 0.4120),
)
_GRID_TEST = (
    (0.3361, 0.3298, 0.3452, 0.3350, 0.3399),
    (0.3397, 0.3440, 0.3371, 0.3425, 0.3383),
    (0.3689, 0.3602, 0.3745, 0.3571, 0.3706),
    (0.3960, 0.3899, 0.4017, 0.3921, 0.3978),
    (0.4402, 0.4288, 0.4351, 0.4423, 0.4331),
)


def grid_example() -> tuple[dict, dict]:
    """``(val_mse, test_mse)`` of a weight grid: label → per-run MSEs, fresh copies each call."""
    val = {label: list(runs) for label, runs in zip(_GRID_LABELS, _GRID_VAL)}
    test = {label: list(runs) for label, runs in zip(_GRID_LABELS, _GRID_TEST)}
    return val, test


def _best(scores: dict) -> str:
    return min(scores, key=scores.get)


def _mean_best(val: dict) -> str:
    return _best({label: float(np.mean(runs)) for label, runs in val.items()})


def _check_pick_weights(answer) -> str:
    rng = np.random.default_rng(SEED + 4)
    test_best = _mean_best(grid_example()[1])
    mistakes = [
        ("`pick_weights` picks the grid point with the highest mean validation MSE; the "
         "best has the lowest.", lambda v: _best({k: -np.mean(r) for k, r in v.items()})),
        ("`pick_weights` picks the grid point with the single luckiest run; compare the mean "
         "over all runs.", lambda v: _best({k: min(r) for k, r in v.items()})),
        ("`pick_weights` looks at the first run only; compare the mean over all runs.",
         lambda v: _best({k: r[0] for k, r in v.items()})),
        ("`pick_weights` looks at the last run only; compare the mean over all runs.",
         lambda v: _best({k: r[-1] for k, r in v.items()})),
    ]
    wrong_choices = [rule for _, rule in mistakes] + [lambda v: test_best]
    cases = [_grid_case(rng, wrong_choices) for _ in range(20)]
    answers = []
    for val in cases:
        out = _call("pick_weights", answer, copy.deepcopy(val))
        if not isinstance(out, str):
            raise _Incorrect(
                f"`pick_weights` returned a {type(out).__name__}; return the chosen label, "
                "one of the keys of `val_mse`."
            )
        answers.append(out)
    if all(a == _mean_best(v) for a, v in zip(answers, cases)):
        return (
            f"`pick_weights` picks the lowest mean validation MSE in {len(cases)} random grids, "
            "and never looks at the test set."
        )
    if all(a == test_best for a in answers):
        raise _Incorrect(
            "`pick_weights` returns the grid point that is best on the test set, whatever "
            "`val_mse` holds: choose from `val_mse` only, and keep the test set for the final, "
            "unbiased report."
        )
    if len(set(answers)) == 1:
        raise _Incorrect(
            "`pick_weights` returns the same label whatever `val_mse` holds: choose from "
            "its argument."
        )
    if any(a not in v for a, v in zip(answers, cases)):
        raise _Incorrect("`pick_weights` returned a label that is not a key of `val_mse`.")
    for message, rule in mistakes:
        if all(a == rule(v) for a, v in zip(answers, cases)):
            raise _Incorrect(message)
    raise _Incorrect(
        "`pick_weights` does not always pick the grid point with the lowest mean validation MSE."
    )


def _grid_case(rng: np.random.Generator, wrong_choices: list) -> dict:
    """A random grid in which the right choice differs from every typical wrong one."""
    while True:
        n_runs = int(rng.integers(3, 7))
        val = {}
        for label in _GRID_LABELS:
            mean, spread = rng.uniform(0.33, 0.42), rng.uniform(0.002, 0.04)
            val[label] = [float(v) for v in mean + rng.normal(0, spread, n_runs)]
        means = sorted(np.mean(r) for r in val.values())
        right = _mean_best(val)
        if means[1] - means[0] > 1e-3 and all(choose(val) != right for choose in wrong_choices):
            return val


# --------------------------------------------------------------------------- input_gradient


def _check_input_gradient(answer) -> str:
    gen = torch.Generator().manual_seed(SEED + 5)
    n_cases = 8
    tally = _Tally(
        "`input_gradient` differs from ∇x of the batch-mean MSE on some random models and "
        "batches.",
        close=_tensors_close,
    )
    for case in range(n_cases):
        d, n = 3 + case % 3, 4 + 2 * case
        torch.manual_seed(SEED + 5 + case)
        model = (StudentNet if case % 2 else TeacherNet)(n_features=d).eval()
        X, y = _batch(gen, n, d), _batch(gen, n)
        right = _input_gradient(model, X, y)
        variants = _input_gradient_variants(model, X, y)
        for create_graph in (False, True):
            got = _call("input_gradient", answer, model, X.clone(), y.clone(), create_graph)
            _judge_input_gradient(got, model, X, create_graph)
            tally.add(got, right, variants)
    tally.verdict()
    return (
        f"`input_gradient` gives ∇x of the batch-mean MSE on {n_cases} random models and "
        "batches, and keeps the graph when asked to."
    )


def _input_gradient_variants(model, X, y) -> list:
    """``(message, gradient)`` per typical mistake."""
    Xg = X.clone().requires_grad_(True)
    (out_grad,) = torch.autograd.grad(model(Xg).sum(), Xg)
    right = _input_gradient(model, X, y)
    return [
        ("`input_gradient` differentiates the sum of the squared errors instead of their "
         "batch mean, so every row is B times too large.", right * X.shape[0]),
        ("`input_gradient` differentiates the model's output instead of its MSE loss.",
         out_grad),
        ("`input_gradient` has the wrong sign.", -right),
    ]


def _judge_input_gradient(got, model, X, create_graph) -> None:
    """The mistakes one case shows directly: shape, parameter gradients, a missing graph."""
    if not isinstance(got, torch.Tensor) or got.shape != X.shape:
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        raise _Incorrect(
            f"`input_gradient` returned {shape} for X of shape {tuple(X.shape)}: the "
            "gradient with respect to X has X's shape, one row per sample."
        )
    if any(p.grad is not None for p in model.parameters()):
        raise _Incorrect(
            "`input_gradient` left gradients in the model's parameters (`.backward()` "
            "computes those too, and they would add to the next training step): use "
            "`torch.autograd.grad(loss, X)`."
        )
    if create_graph and not got.requires_grad:
        raise _Incorrect(
            "`input_gradient` ignores `create_graph`: with `create_graph=True` the gradient "
            "must stay differentiable (pass it on to `torch.autograd.grad`), or L_GR trains "
            "nothing."
        )


# --------------------------------------------------------------------------- lgr_loss


def _teacher_term_cases(seed: int, n_cases: int, labels: bool):
    """The random cases of a checker of a term that compares the student with the teacher:
    a student and an expert teacher of d inputs, both in train mode (as during the
    teacher's own training: the term must switch the teacher to eval), a batch X and, with
    ``labels``, its targets y (else None)."""
    gen = torch.Generator().manual_seed(seed)
    for case in range(n_cases):
        d, n = 3 + case % 3, 6 + 2 * case
        torch.manual_seed(seed + case)
        student, teacher = StudentNet(n_features=d), ExpertTeacherNet(n_features=d)
        X = _batch(gen, n, d)
        y = _batch(gen, n) if labels else None
        yield student.train(), teacher.train(), X, y


def _check_lgr_loss(answer) -> str:
    n_cases = 6
    tally = _Tally(
        "`lgr_loss` differs from L_GR on some random batches.",
        close=lambda a, b: _close(a, b, rtol=1e-3, atol=1e-12),
    )
    for student, teacher, X, y in _teacher_term_cases(SEED + 6, n_cases, labels=True):
        right, variants = _lgr_variants(student, teacher, X, y)
        out = _call("lgr_loss", answer, student, teacher, X.clone(), y.clone())
        value = _judge_lgr_loss(out, student, teacher, right)
        tally.add(value, right, variants)
    tally.verdict()
    return (
        f"`lgr_loss` equals L_GR on {n_cases} random batches, trains the student and leaves "
        "the teacher untouched."
    )


def _lgr_variants(student, teacher, X, y) -> tuple[float, list]:
    t = copy.deepcopy(teacher)
    right = float(lgr_as_in_original(student, t, X, y).detach())
    n, d = X.shape
    g_t = _input_gradient(t, X, y)
    g_s = _input_gradient(student, X, y)

    def outputs_grad(model):
        Xg = X.clone().requires_grad_(True)
        return torch.autograd.grad(model(Xg).sum(), Xg)[0]

    summed = (
        "`lgr_loss` uses gradients of summed squared errors instead of batch means "
        "(see `input_gradient`)."
    )
    return right, [
        (summed, right * n * n),
        (summed, float(mse(g_s * n, g_t))),
        (summed, float(mse(g_s, g_t * n))),
        ("`lgr_loss` adds up the squared gradient differences instead of averaging them.",
         right * n * d),
        ("`lgr_loss` compares the gradients of the models' outputs, not of their MSE losses.",
         float(mse(outputs_grad(student), outputs_grad(t)))),
    ]


def _judge_lgr_loss(out, student, teacher, right) -> float:
    return _judge_teacher_term("lgr_loss", "input gradient", out, student, teacher, right)


def _judge_teacher_term(name, quantity, out, student, teacher, right) -> float:
    """The mistakes one case shows directly for a term built from the student's and the
    teacher's ``quantity`` (their input gradients or derivatives); the answer's value if it
    shows none."""
    if any(p.grad is not None for p in teacher.parameters()):
        raise _Incorrect(
            f"`{name}` left gradients in the teacher's parameters (`.backward()`): compute "
            f"the teacher's {quantity} with `torch.autograd.grad`, without `create_graph`."
        )
    if any(p.grad is not None for p in student.parameters()):
        raise _Incorrect(
            f"`{name}` left gradients in the student's parameters (`.backward()`), which "
            "would add to the training step: use `torch.autograd.grad(..., X, ...)`."
        )
    value = _loss_value(name, out, needs_graph=False)
    if not _depends_on(out, student):
        raise _Incorrect(
            f"`{name}` does not depend on the student's weights, so it trains nothing: "
            f"compute the student's {quantity} with `create_graph=True`."
        )
    if _depends_on(out, teacher):
        raise _Incorrect(
            f"The teacher would receive gradients from `{name}`: its {quantity} must be "
            "a constant target (computed without `create_graph`, or detached)."
        )
    if teacher.training and not _close(value, right, rtol=1e-3, atol=1e-12):
        raise _Incorrect(
            f"`{name}` used the teacher in train mode, so dropout made its {quantity} "
            "random: call `teacher.eval()` first."
        )
    return value


def _depends_on(out: torch.Tensor, model) -> bool:
    if not out.requires_grad:
        return False
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(out.sum(), params, retain_graph=True, allow_unused=True)
    return any(g is not None and bool(g.abs().sum() > 0) for g in grads)


# --------------------------------------------------------------------------- jacobian_matching


def _check_jacobian_matching(answer) -> str:
    n_cases = 6
    tally = _Tally(
        "`jacobian_matching` differs from L_JAC on some random batches.",
        close=lambda a, b: _close(a, b, rtol=1e-3, atol=1e-12),
    )
    for student, teacher, X, _ in _teacher_term_cases(SEED + 7, n_cases, labels=False):
        right, variants = _jacobian_variants(student, teacher, X)
        out = _call("jacobian_matching", answer, student, teacher, X.clone())
        value = _judge_jacobian_matching(out, student, teacher, right)
        tally.add(value, right, variants)
    tally.verdict()
    return (
        f"`jacobian_matching` equals L_JAC on {n_cases} random batches, trains the student and "
        "leaves the teacher untouched."
    )


def _jacobian_variants(student, teacher, X) -> tuple[float, list]:
    t = copy.deepcopy(teacher).eval()
    right = float(_jacobian_matching(student, t, X).detach())
    n, d = X.shape
    return right, [
        ("`jacobian_matching` adds up the squared differences instead of averaging them over "
         "samples and features.", right * n * d),
        ("`jacobian_matching` differentiates the mean of the outputs instead of their sum, "
         "so every derivative is B times too small: each sample's output depends only on its "
         "own row, and the sum keeps every derivative whole.", right / (n * n)),
    ]


def _judge_jacobian_matching(out, student, teacher, right) -> float:
    return _judge_teacher_term("jacobian_matching", "derivatives", out, student, teacher, right)


# --------------------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class Exercise:
    name: str
    checker: Callable
    hints: tuple  # (level 1, level 2)


EXERCISES = {
    ex.name: ex
    for ex in (
        Exercise(
            "hp_loss",
            _check_hp_loss,
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
            _check_weighted_loss,
            (
                "Two mean squared errors with one weight each: the student against the labels, "
                "and the student against the teacher.",
                "`hard * MSE(student_pred, y) + hp * MSE(student_pred, teacher_pred)`, each "
                "MSE a batch mean (your `hp_loss` is the second one).",
            ),
        ),
        Exercise(
            "paired_t_test",
            _check_paired_t_test,
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
            _check_distill_step,
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
            _check_pick_weights,
            (
                "The choice may use only the numbers it is given: the validation MSEs. Which "
                "grid point has the lowest average over the runs?",
                "`min(val_mse, key=lambda label: np.mean(val_mse[label]))`.",
            ),
        ),
        Exercise(
            "input_gradient",
            _check_input_gradient,
            (
                "Make X a leaf that requires a gradient, compute the model's batch-mean MSE "
                "on it, and ask autograd for the gradient with respect to X only.",
                "`X = X.detach().requires_grad_(True)`; `loss = F.mse_loss(model(X), y)`; "
                "`torch.autograd.grad(loss, X, create_graph=create_graph)[0]`.",
            ),
        ),
        Exercise(
            "lgr_loss",
            _check_lgr_loss,
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
            _check_jacobian_matching,
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


def names() -> list[str]:
    """The exercises, in the order of the lessons they follow."""
    return list(EXERCISES)


def _exercise(name: str) -> Exercise:
    if name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}; the exercises are: {', '.join(EXERCISES)}")
    return EXERCISES[name]


def not_attempted(name: str) -> Result:
    """The verdict on an untouched stub."""
    _exercise(name)
    return Result(
        name,
        NOT_ATTEMPTED,
        f"`{name}` still raises NotImplementedError: replace the `raise` line with your code, "
        f"run that cell, then this one. Stuck? Try `exercises.hint(\"{name}\")`.",
    )


def check(name: str, answer: Callable) -> Result:
    """Run ``answer`` on the exercise's random cases; say whether it is right, and if not, why."""
    exercise = _exercise(name)
    if not callable(answer):
        raise TypeError(
            f"check({name!r}, answer) takes your function itself, e.g. check({name!r}, {name}), "
            f"not a {type(answer).__name__}"
        )
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        try:
            praise = exercise.checker(answer)
        except _NotAttempted:
            return not_attempted(name)
        except _Incorrect as wrong:
            return Result(name, INCORRECT, str(wrong))
    return Result(name, CORRECT, praise)


def hint(name: str, level: int = 1) -> Text:
    """A hint for the exercise: level 1 points at the idea, level 2 at the code."""
    exercise = _exercise(name)
    if level not in (1, 2):
        raise ValueError(f"hint level must be 1 or 2, got {level!r}")
    text = exercise.hints[level - 1]
    return Text(text, f"**Hint {level} for `{name}`.** {text}")


def solution(name: str) -> Text:
    """The reference solution's source, as written in the instructor notebook."""
    from kdteach.publish.learner_notebooks import solution_source

    _exercise(name)
    source = solution_source(name)
    return Text(source, f"```python\n{source}\n```")
