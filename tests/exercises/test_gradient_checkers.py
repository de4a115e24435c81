"""The checkers of input_gradient, lgr_loss and jacobian_matching: each typical mistake is
"incorrect" with the message meant for it, other correct forms pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kdteach import exercises
from kdteach.core.losses import input_gradient as package_input_gradient
from kdteach.core.models import StudentNet

# --------------------------------------------------------------------------- input_gradient


def _grad_of(loss_fn, graph_flag=None):
    def input_gradient(model, X, y, create_graph):
        X = X.detach().requires_grad_(True)
        graph = create_graph if graph_flag is None else graph_flag
        return torch.autograd.grad(loss_fn(model(X), y), X, create_graph=graph)[0]

    return input_gradient


def _grad_backward(model, X, y, create_graph):
    X = X.detach().requires_grad_(True)
    F.mse_loss(model(X), y).backward(create_graph=create_graph)
    return X.grad


def _grad_per_feature_mean(model, X, y, create_graph):
    return _grad_of(F.mse_loss)(model, X, y, create_graph).mean(dim=0)


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (_grad_of(lambda p, y: ((p - y) ** 2).sum()), "the sum of the squared errors"),
        (_grad_of(lambda p, y: p.sum()), "the model's output instead of its MSE loss"),
        (_grad_of(lambda p, y: -F.mse_loss(p, y)), "the wrong sign"),
        (_grad_of(F.mse_loss, graph_flag=False), "ignores `create_graph`"),
        (_grad_backward, "left gradients in the model's parameters"),
        (_grad_per_feature_mean, "gradient with respect to X has X's shape"),
    ],
)
def test_input_gradient_mistakes(incorrect, answer, fragment):
    incorrect("input_gradient", answer, fragment)


def _grad_functorch(model, X, y, create_graph):
    return torch.func.grad(lambda x: ((model(x) - y) ** 2).mean())(X)


@pytest.mark.parametrize(
    "answer",
    [
        _grad_of(F.mse_loss),
        _grad_of(F.mse_loss, graph_flag=True),  # a graph nobody asked for does no harm
        package_input_gradient,
        _grad_functorch,
    ],
)
def test_input_gradient_accepts_other_correct_forms(answer):
    assert exercises.check("input_gradient", answer).status == exercises.CORRECT


def _grad_graph_cut_off(model, X, y, create_graph):
    grad = _grad_of(F.mse_loss)(model, X, y, False)
    return grad.detach().requires_grad_(create_graph)  # requires_grad, but no graph behind it


def _grad_graph_half_cut_off(model, X, y, create_graph):
    grad = _grad_of(F.mse_loss)(model, X, y, create_graph)
    return 0.5 * grad + 0.5 * grad.detach()  # the right values, half the graph


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (_grad_graph_cut_off, "ignores `create_graph`"),
        (_grad_graph_half_cut_off, "graph does not lead back to the model's weights"),
        (lambda model, X, y, create_graph: _grad_of(F.mse_loss)(model, X, y, create_graph).T,
         "is transposed"),
        (lambda model, X, y, create_graph: _grad_of(F.mse_loss)(model, X, y, create_graph)
         .flatten(), "flattened or reshaped"),
    ],
)
def test_input_gradient_graph_and_shape_mistakes(incorrect, answer, fragment):
    incorrect("input_gradient", answer, fragment)


def _grad_own_inplace(model, X, y, create_graph):
    X = X.clone().requires_grad_(True)
    residual = model(X) - y
    residual.pow_(2)  # in place, on the answer's own tensor
    return torch.autograd.grad(residual.mean(), X, create_graph=create_graph)[0]


def _grad_flat_views(model, X, y, create_graph):
    X = X.detach().requires_grad_(True)
    loss = F.mse_loss(model(X).view(-1), y.view(-1))
    return torch.autograd.grad(loss, X, create_graph=create_graph)[0]


@pytest.mark.parametrize("answer", [_grad_own_inplace, _grad_flat_views])
def test_input_gradient_accepts_correct_answers_written_differently(answer):
    assert exercises.check("input_gradient", answer).status == exercises.CORRECT


# --------------------------------------------------------------------------- lgr_loss


def make_lgr(
    eval_teacher=True,
    student_graph=True,
    teacher_graph=False,
    loss_fn=F.mse_loss,
    reduce=lambda a, b: ((a - b) ** 2).mean(),
    backward=False,
):
    """An lgr_loss with one deliberate mistake."""

    def grad(model, X, y, create_graph):
        X = X.detach().requires_grad_(True)
        loss = loss_fn(model(X), y)
        if backward:
            loss.backward(create_graph=create_graph)
            return X.grad
        return torch.autograd.grad(loss, X, create_graph=create_graph)[0]

    def lgr_loss(student, teacher, X, y):
        if eval_teacher:
            teacher.eval()
        g_t = grad(teacher, X, y, teacher_graph)
        g_s = grad(student, X, y, student_graph)
        return reduce(g_s, g_t)

    return lgr_loss


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (make_lgr(student_graph=False), "compute the student's input gradient with `create_gr"),
        (make_lgr(teacher_graph=True), "The teacher would receive gradients"),
        (make_lgr(eval_teacher=False), "teacher in train mode"),
        (make_lgr(loss_fn=lambda p, y: ((p - y) ** 2).sum()), "gradients of summed squared"),
        (make_lgr(reduce=lambda a, b: ((a - b) ** 2).sum()), "adds up the squared gradient"),
        (make_lgr(loss_fn=lambda p, y: p.sum()), "gradients of the models' outputs"),
        (make_lgr(backward=True), "left gradients in the teacher's parameters"),
    ],
)
@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_lgr_loss_mistakes(incorrect, answer, fragment):
    incorrect("lgr_loss", answer, fragment)


def _lgr_polite(student, teacher, X, y):
    was_training = teacher.training
    teacher.eval()
    g_t = package_input_gradient(teacher, X, y)
    teacher.train(was_training)  # restoring the caller's mode is fine
    g_s = package_input_gradient(student, X, y, create_graph=True)
    return F.mse_loss(g_s, g_t)


def _lgr_detached_teacher(student, teacher, X, y):
    teacher.eval()
    g_t = _grad_of(F.mse_loss)(teacher, X, y, True).detach()  # a graph, cut off afterwards
    g_s = _grad_of(F.mse_loss)(student, X, y, True)
    return (g_s - g_t).pow(2).mean()


@pytest.mark.parametrize("answer", [_lgr_polite, _lgr_detached_teacher])
def test_lgr_loss_accepts_other_correct_forms(answer):
    assert exercises.check("lgr_loss", answer).status == exercises.CORRECT


def _lgr_float64(student, teacher, X, y):
    teacher.eval()
    g_t = package_input_gradient(teacher, X, y)
    g_s = package_input_gradient(student, X.clone(), y, create_graph=True)
    diff = g_s.double() - g_t.double()
    diff.pow_(2)  # in place, on the answer's own tensor
    return diff.mean()


def _lgr_half_graph(student, teacher, X, y):
    loss = make_lgr()(student, teacher, X, y)
    return 0.5 * loss + 0.5 * loss.detach()  # the right value, half the gradient


def test_lgr_loss_accepts_float64_and_in_place_ops_on_its_own_tensors():
    assert exercises.check("lgr_loss", _lgr_float64).status == exercises.CORRECT


def test_lgr_loss_must_have_the_right_gradient(incorrect):
    incorrect("lgr_loss", _lgr_half_graph,
              "not the right gradient with respect to the student's weights")


def test_lgr_loss_trains_the_student_in_a_step(solved):
    """The reference L_GR, backpropagated, moves the student's weights and nothing else."""
    torch.manual_seed(0)
    student, teacher = StudentNet(n_features=3), StudentNet(n_features=3)
    X, y = torch.randn(8, 3), torch.randn(8, 1)
    solved["lgr_loss"](student, teacher, X, y).backward()
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())


# --------------------------------------------------------------------------- jacobian_matching


def make_jac(eval_teacher=True, student_graph=True, teacher_graph=False,
             reduce=lambda a, b: ((a - b) ** 2).mean(), outputs=lambda out: out.sum(),
             backward=False):
    """A jacobian_matching with one deliberate mistake."""

    def derivatives(model, X, create_graph):
        X = X.detach().requires_grad_(True)
        total = outputs(model(X))
        if backward:
            total.backward(create_graph=create_graph)
            return X.grad
        return torch.autograd.grad(total, X, create_graph=create_graph)[0]

    def jacobian_matching(student, teacher, X):
        if eval_teacher:
            teacher.eval()
        return reduce(derivatives(student, X, student_graph), derivatives(teacher, X,
                                                                            teacher_graph))

    return jacobian_matching


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (make_jac(student_graph=False), "compute the student's derivatives with `create_graph"),
        (make_jac(teacher_graph=True), "The teacher would receive gradients"),
        (make_jac(eval_teacher=False), "teacher in train mode"),
        (make_jac(reduce=lambda a, b: ((a - b) ** 2).sum()), "adds up the squared differences"),
        (make_jac(outputs=lambda out: out.mean()), "mean of the outputs instead of their sum"),
        (make_jac(backward=True), "left gradients in the teacher's parameters"),
    ],
)
@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_jacobian_matching_mistakes(incorrect, answer, fragment):
    incorrect("jacobian_matching", answer, fragment)


def test_jacobian_matching_accepts_the_package_and_jacrev_forms():
    from torch.func import jacrev, vmap

    from kdteach.core.losses import jacobian_matching

    def with_jacrev(student, teacher, X):
        teacher.eval()
        one = lambda m: vmap(jacrev(lambda x: m(x[None])[0, 0]))(X)  # noqa: E731
        return ((one(student) - one(teacher).detach()) ** 2).mean()

    for answer in (jacobian_matching, with_jacrev):
        assert exercises.check("jacobian_matching", answer).status == exercises.CORRECT


def _jac_half_graph(student, teacher, X):
    loss = make_jac()(student, teacher, X)
    return 0.5 * loss + 0.5 * loss.detach()


def _jac_own_inplace(student, teacher, X):
    teacher.eval()
    X = X.clone().requires_grad_(True)
    (j_t,) = torch.autograd.grad(teacher(X).sum(), X)
    (j_s,) = torch.autograd.grad(student(X).sum(), X, create_graph=True)
    diff = j_s - j_t
    diff.pow_(2)  # in place, on the answer's own tensor
    return diff.mean()


def test_jacobian_matching_must_have_the_right_gradient(incorrect):
    incorrect("jacobian_matching", _jac_half_graph,
              "not the right gradient with respect to the student's weights")


@pytest.mark.parametrize(
    "answer",
    [_jac_own_inplace, make_jac(reduce=F.mse_loss),
     make_jac(reduce=lambda a, b: ((a.double() - b.double()) ** 2).mean())],
)
def test_jacobian_matching_accepts_correct_answers_written_differently(answer):
    assert exercises.check("jacobian_matching", answer).status == exercises.CORRECT
