"""Checkers of gradient matching: input gradients, L_GR and Jacobian matching (L_JAC)."""

from __future__ import annotations

import copy

import torch

from kdteach.core.losses import input_gradient as _input_gradient
from kdteach.core.losses import jacobian_matching as _jacobian_matching
from kdteach.core.losses import lgr_as_in_original, mse
from kdteach.core.models import ExpertTeacherNet, StudentNet, TeacherNet
from kdteach.exercises.cases import SEED, batch
from kdteach.exercises.running import call, gradient, student_gradient, wrong_gradient
from kdteach.exercises.verdicts import Incorrect, Tally, loss_value, tensors_close, values_close

# --------------------------------------------------------------------------- input_gradient


def check_input_gradient(answer) -> str:
    gen = torch.Generator().manual_seed(SEED + 5)
    n_cases = 8
    tally = Tally(
        "`input_gradient` differs from ∇x of the batch-mean MSE on some random models and "
        "batches.",
        close=tensors_close,
    )
    graphs = Tally(
        "`input_gradient` has the right values, but with `create_graph=True` its graph does "
        "not lead back to the model's weights as the graph of ∇x of the MSE does: part of it "
        "is cut off (`.detach()`, NumPy) or rebuilt, so L_GR would not train the student as "
        "it should.",
        close=tensors_close,
    )
    for case in range(n_cases):
        d, n = 3 + case % 3, 4 + 2 * case
        torch.manual_seed(SEED + 5 + case)
        model = (StudentNet if case % 2 else TeacherNet)(n_features=d).eval()
        X, y = batch(gen, n, d), batch(gen, n)
        right = _input_gradient(model, X, y)
        variants = _input_gradient_variants(model, X, y)
        # the graph, seen through a random weighting of the gradient's entries
        probe = torch.randn(X.shape, generator=torch.Generator().manual_seed(case))
        right_graph = _graph(_input_gradient(model, X, y, create_graph=True), probe, model)
        for create_graph in (False, True):
            got = call("input_gradient", answer, model=model, X=X.clone(), y=y.clone(),
                       create_graph=create_graph)
            _judge_input_gradient(got, model, X)
            tally.add(got, right, variants)
            if create_graph:
                graphs.add(_judged_graph(got, probe, model), right_graph, [])
    tally.verdict()
    graphs.verdict()
    return (
        f"`input_gradient` gives ∇x of the batch-mean MSE on {n_cases} random models and "
        "batches, and keeps the graph when asked to."
    )


def _graph(grad, probe, model):
    """Where the gradient's graph leads in the model's weights (None: nowhere)."""
    return gradient((grad * probe).sum(), model.parameters())


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


def _judge_input_gradient(got, model, X) -> None:
    """The mistakes one case shows directly: the type and shape, parameter gradients."""
    if not isinstance(got, torch.Tensor):
        raise Incorrect(
            f"`input_gradient` returned a {type(got).__name__}, not a tensor: the gradient "
            "with respect to X has X's shape, one row per sample."
        )
    if got.shape != X.shape:
        how = ""
        if tuple(got.shape) == tuple(X.shape)[::-1]:
            how = ", so it is transposed"
        elif got.numel() == X.numel():
            how = ", so it is flattened or reshaped"
        raise Incorrect(
            f"`input_gradient` returned a tensor of shape {tuple(got.shape)} for X of shape "
            f"{tuple(X.shape)}{how}: the gradient with respect to X has X's shape, one row "
            "per sample."
        )
    if any(p.grad is not None for p in model.parameters()):
        raise Incorrect(
            "`input_gradient` left gradients in the model's parameters (`.backward()` "
            "computes those too, and they would add to the next training step): use "
            "`torch.autograd.grad(loss, X)`."
        )


def _judged_graph(got, probe, model):
    """The graph of the answer's gradient asked for with ``create_graph=True``."""
    graph = _graph(got, probe, model)
    if graph is None:
        raise Incorrect(
            "`input_gradient` ignores `create_graph`: with `create_graph=True` the gradient "
            "must stay differentiable in the model's weights (pass it on to "
            "`torch.autograd.grad`), or L_GR trains nothing."
        )
    return graph


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
        X = batch(gen, n, d)
        y = batch(gen, n) if labels else None
        yield student.train(), teacher.train(), X, y


def _check_teacher_term(name, answer, seed, labels, variants, judge, term) -> str:
    """The L_GR and L_JAC checkers: random students, teachers and batches (with labels
    for L_GR); the answer's value against the reference and the typical wrong answers, and
    its gradient in the student's weights against the reference's."""
    n_cases = 6
    tally = Tally(f"`{name}` differs from {term} on some random batches.",
                  close=lambda a, b: values_close(a, b, rtol=1e-3, atol=1e-12))
    grads = Tally(wrong_gradient(name, "the student's weights", term), close=tensors_close)
    for student, teacher, X, y in _teacher_term_cases(seed, n_cases, labels=labels):
        inputs = {"X": X, "y": y} if labels else {"X": X}
        right_loss, wrong = variants(student, teacher, *inputs.values())  # before the answer
        right = float(right_loss.detach())
        right_grad = gradient(right_loss, student.parameters())
        out = call(name, answer, student=student, teacher=teacher,
                   **{arg: x.clone() for arg, x in inputs.items()})
        value, grad = judge(out, student, teacher, right)
        tally.add(value, right, wrong)
        grads.add(grad, right_grad, [])
    tally.verdict()
    grads.verdict()
    return (f"`{name}` equals {term} on {n_cases} random batches, trains the student and "
            "leaves the teacher untouched.")


def check_lgr_loss(answer) -> str:
    return _check_teacher_term("lgr_loss", answer, SEED + 6, True, _lgr_variants,
                               _judge_lgr_loss, "L_GR")


def _lgr_variants(student, teacher, X, y) -> tuple[torch.Tensor, list]:
    """The right L_GR (a tensor, in the graph of the student's weights), and
    ``(message, value)`` per typical mistake."""
    t = copy.deepcopy(teacher)
    right_loss = lgr_as_in_original(student, t, X, y)
    right = float(right_loss.detach())
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
    return right_loss, [
        (summed, right * n * n),
        (summed, float(mse(g_s * n, g_t))),
        (summed, float(mse(g_s, g_t * n))),
        ("`lgr_loss` adds up the squared gradient differences instead of averaging them.",
         right * n * d),
        ("`lgr_loss` compares the gradients of the models' outputs, not of their MSE losses.",
         float(mse(outputs_grad(student), outputs_grad(t)))),
    ]


def _judge_lgr_loss(out, student, teacher, right) -> tuple:
    return _judge_teacher_term("lgr_loss", "input gradient", out, student, teacher, right)


def _judge_teacher_term(name, quantity, out, student, teacher, right) -> tuple:
    """The mistakes one case shows directly for a term built from the student's and the
    teacher's ``quantity`` (their input gradients or derivatives); the answer's value and
    its gradient in the student's weights if it shows none."""
    if any(p.grad is not None for p in teacher.parameters()):
        raise Incorrect(
            f"`{name}` left gradients in the teacher's parameters (`.backward()`): compute "
            f"the teacher's {quantity} with `torch.autograd.grad`, without `create_graph`."
        )
    if any(p.grad is not None for p in student.parameters()):
        raise Incorrect(
            f"`{name}` left gradients in the student's parameters (`.backward()`), which "
            "would add to the training step: use `torch.autograd.grad(..., X, ...)`."
        )
    value = loss_value(name, out)
    grad = student_gradient(
        name, out, student.parameters(), "the student's weights",
        cut_off=(f"`{name}` does not depend on the student's weights, so it trains nothing: "
                 f"compute the student's {quantity} with `create_graph=True`."),
    )
    if gradient(out, teacher.parameters()) is not None:
        raise Incorrect(
            f"The teacher would receive gradients from `{name}`: its {quantity} must be "
            "a constant target (computed without `create_graph`, or detached)."
        )
    if teacher.training and not values_close(value, right, rtol=1e-3, atol=1e-12):
        raise Incorrect(
            f"`{name}` used the teacher in train mode, so dropout made its {quantity} "
            "random: call `teacher.eval()` first."
        )
    return value, grad


# --------------------------------------------------------------------------- jacobian_matching


def check_jacobian_matching(answer) -> str:
    return _check_teacher_term("jacobian_matching", answer, SEED + 7, False, _jacobian_variants,
                               _judge_jacobian_matching, "L_JAC")


def _jacobian_variants(student, teacher, X) -> tuple[torch.Tensor, list]:
    """The right L_JAC (a tensor, in the graph of the student's weights), and
    ``(message, value)`` per typical mistake."""
    t = copy.deepcopy(teacher).eval()
    right_loss = _jacobian_matching(student, t, X)
    right = float(right_loss.detach())
    n, d = X.shape
    return right_loss, [
        ("`jacobian_matching` adds up the squared differences instead of averaging them over "
         "samples and features.", right * n * d),
        ("`jacobian_matching` differentiates the mean of the outputs instead of their sum, "
         "so every derivative is B times too small: each sample's output depends only on its "
         "own row, and the sum keeps every derivative whole.", right / (n * n)),
    ]


def _judge_jacobian_matching(out, student, teacher, right) -> tuple:
    return _judge_teacher_term("jacobian_matching", "derivatives", out, student, teacher, right)
