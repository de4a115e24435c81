"""Tests for kdteach.losses: hard loss, L_HP, L_GR and their weighted composite."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kdteach.losses import (
    DistillationLoss,
    gr_loss,
    hard_loss,
    hp_loss,
    input_gradient,
    lgr_as_in_original,
    mse,
    teacher_gradient_per_sample,
)
from kdteach.models import MLP, ExpertTeacherNet, MLPSpec, StudentNet, TeacherNet


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(5)
    X = torch.randn(32, 10, generator=g)
    y = torch.randn(32, 1, generator=g)
    return X, y


@pytest.fixture
def nets():
    torch.manual_seed(0)
    return StudentNet(), TeacherNet().eval()


def original_lgr(student, teacher, X, y):
    """The original notebook's L_GR steps, written out again by hand."""
    criterion = nn.MSELoss()
    X = X.clone().requires_grad_(True)
    loss_t = criterion(teacher(X), y)
    grad_t = torch.autograd.grad(loss_t, X, grad_outputs=torch.ones_like(loss_t))[0].detach()
    loss_s = criterion(student(X), y)
    grad_s = torch.autograd.grad(loss_s, X, grad_outputs=torch.ones_like(loss_s),
                                 create_graph=True)[0]
    return criterion(grad_s, grad_t)


def param_grads(net):
    return [p.grad for p in net.parameters()]


# ---------------------------------------------------------------- the terms


def test_hard_loss_is_mse(batch):
    X, y = batch
    pred = torch.randn_like(y)
    expected = nn.MSELoss()(pred, y)
    assert torch.allclose(hard_loss(pred, y), expected)
    assert torch.allclose(mse(pred, y), ((pred - y) ** 2).mean())
    assert hard_loss(pred, y).ndim == 0


def test_hard_loss_of_perfect_prediction_is_zero(batch):
    _, y = batch
    assert hard_loss(y.clone(), y).item() == 0.0


def test_hp_with_teacher_equal_to_labels_is_the_hard_loss(batch):
    _, y = batch
    pred = torch.randn_like(y)
    assert torch.equal(hp_loss(pred, y.clone()), hard_loss(pred, y))


def test_hp_is_mse_against_teacher(batch):
    _, y = batch
    pred, t = torch.randn_like(y), torch.randn_like(y)
    assert torch.allclose(hp_loss(pred, t), nn.functional.mse_loss(pred, t))
    assert not torch.allclose(hp_loss(pred, t), hard_loss(pred, y))


def test_gr_loss_is_mse_of_gradients():
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.allclose(gr_loss(a, b), ((a - b) ** 2).mean())


def test_lgr_matches_the_original_computation(batch, nets):
    X, y = batch
    student, teacher = nets
    ours = lgr_as_in_original(student, teacher, X, y)
    theirs = original_lgr(student, teacher, X, y)
    assert ours.item() > 0
    assert torch.allclose(ours, theirs, rtol=1e-6, atol=0)


def test_distillation_gr_term_matches_the_original_computation(batch, nets):
    X, y = batch
    student, teacher = nets
    per_sample = teacher_gradient_per_sample(teacher, X, y)
    Xg = X.clone().requires_grad_(True)
    _, terms = DistillationLoss(gr=1.0)(student(Xg), y, X=Xg, teacher_grad=per_sample / len(X))
    assert torch.allclose(terms["gr"], original_lgr(student, teacher, X, y), rtol=1e-5, atol=0)


def finite_difference_input_gradient(model, X, y, h=1e-6):
    """∂/∂X of the batch-mean MSE, entry by entry, by central differences."""
    grad = torch.zeros_like(X)
    with torch.no_grad():
        for i in range(X.shape[0]):
            for j in range(X.shape[1]):
                up, down = X.clone(), X.clone()
                up[i, j] += h
                down[i, j] -= h
                diff = ((model(up) - y) ** 2).mean() - ((model(down) - y) ** 2).mean()
                grad[i, j] = diff / (2 * h)
    return grad


def test_lgr_matches_finite_differences_on_a_tiny_net():
    torch.manual_seed(2)
    student = MLP(MLPSpec((3, 5, 1))).double()
    teacher = MLP(MLPSpec((3, 7, 4, 1), activation="leaky_relu")).double().eval()
    g = torch.Generator().manual_seed(9)
    X = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = torch.randn(6, 1, generator=g, dtype=torch.float64)

    fd_s = finite_difference_input_gradient(student, X, y)
    fd_t = finite_difference_input_gradient(teacher, X, y)
    assert torch.allclose(input_gradient(student, X, y), fd_s, rtol=1e-6, atol=1e-8)
    assert torch.allclose(input_gradient(teacher, X, y), fd_t, rtol=1e-6, atol=1e-8)

    expected = ((fd_s - fd_t) ** 2).mean()
    assert expected.item() > 0
    assert torch.allclose(lgr_as_in_original(student, teacher, X, y), expected, rtol=1e-6)
    per_sample = teacher_gradient_per_sample(teacher, X, y)
    assert torch.allclose(per_sample / len(X), fd_t, rtol=1e-6, atol=1e-8)


def test_teacher_gradient_per_sample_over_batch_size_is_the_batch_gradient(batch):
    X, y = batch
    torch.manual_seed(1)
    teacher = TeacherNet()
    per_sample = teacher_gradient_per_sample(teacher, X, y)
    assert tuple(per_sample.shape) == tuple(X.shape)
    assert not per_sample.requires_grad
    assert torch.allclose(per_sample / len(X), input_gradient(teacher, X, y), rtol=1e-5,
                          atol=1e-9)
    # any sub-batch: index the per-sample gradients and divide by the sub-batch size
    idx = torch.tensor([3, 17, 0, 29, 8])
    assert torch.allclose(per_sample[idx] / len(idx), input_gradient(teacher, X[idx], y[idx]),
                          rtol=1e-5, atol=1e-9)


def test_teacher_gradient_per_sample_uses_eval_mode(batch):
    X, y = batch
    torch.manual_seed(1)
    expert = ExpertTeacherNet().train()
    a = teacher_gradient_per_sample(expert, X, y)
    assert not expert.training
    b = teacher_gradient_per_sample(expert.train(), X, y)
    assert torch.equal(a, b)  # no dropout noise


def test_input_gradient_does_not_touch_parameter_grads(batch, nets):
    X, y = batch
    student, _ = nets
    input_gradient(student, X, y)
    assert all(g is None for g in param_grads(student))
    assert not X.requires_grad  # the caller's tensor is left alone


# ---------------------------------------------------------------- the composite


def test_total_is_the_weighted_sum_of_terms(batch, nets):
    X, y = batch
    student, teacher = nets
    loss = DistillationLoss(hard=0.2, hp=0.5, gr=0.3)
    with torch.no_grad():
        t_pred = teacher(X)
    t_grad = teacher_gradient_per_sample(teacher, X, y) / len(X)
    Xg = X.clone().requires_grad_(True)
    pred = student(Xg)
    total, terms = loss(pred, y, Xg, t_pred, t_grad)
    assert set(terms) == {"hard", "hp", "gr"}
    assert torch.allclose(terms["hard"], hard_loss(pred, y))
    assert torch.allclose(terms["hp"], hp_loss(pred, t_pred))
    assert torch.allclose(terms["gr"], lgr_as_in_original(student, teacher, X, y), rtol=1e-5)
    expected = 0.2 * terms["hard"] + 0.5 * terms["hp"] + 0.3 * terms["gr"]
    assert torch.allclose(total, expected)
    assert all(v.item() > 0 for v in terms.values())


def test_kd_weights_like_the_seed(batch, nets):
    X, y = batch
    student, teacher = nets
    with torch.no_grad():
        t_pred = teacher(X)
    pred = student(X)
    total, terms = DistillationLoss(hard=0.3, hp=0.7)(pred, y, teacher_pred=t_pred)
    assert set(terms) == {"hard", "hp"}
    criterion = nn.MSELoss()
    assert torch.allclose(total, 0.3 * criterion(pred, y) + 0.7 * criterion(pred, t_pred))


def test_only_positive_weights_are_terms():
    loss = DistillationLoss(hard=1.0, hp=0.0, gr=0.0)
    assert loss.weights == {"hard": 1.0}
    assert loss.terms == ("hard",)
    assert not loss.needs_teacher and not loss.needs_input_grad
    hp = DistillationLoss(hard=0.3, hp=0.7)
    assert hp.needs_teacher and not hp.needs_input_grad
    gr = DistillationLoss(hard=0.2, hp=0.5, gr=0.3)
    assert gr.needs_teacher and gr.needs_input_grad
    assert gr.terms == ("hard", "hp", "gr")


def test_from_weights_equality_and_repr():
    a = DistillationLoss.from_weights({"hard": 0.3, "hp": 0.7})
    assert a == DistillationLoss(hard=0.3, hp=0.7)
    assert a != DistillationLoss(hard=0.7, hp=0.3)
    assert "hard=0.3" in repr(a) and "hp=0.7" in repr(a)


@pytest.mark.parametrize(
    "weights, term",
    [
        ({"hard": -0.1, "hp": 1.0}, "hard"),
        ({"hp": math.nan}, "hp"),
        ({"gr": math.inf, "hard": 1.0}, "gr"),
        ({"hard": 1.0, "feat": 0.3}, "feat"),
    ],
)
def test_invalid_weights_name_the_term(weights, term):
    with pytest.raises(ValueError, match=term):
        DistillationLoss(**weights)


def test_all_zero_weights_are_rejected():
    with pytest.raises(ValueError, match="> 0"):
        DistillationLoss()
    with pytest.raises(ValueError):
        DistillationLoss(hard=0.0, hp=0.0, gr=0.0)


def test_missing_inputs_are_explained(batch, nets):
    X, y = batch
    student, _ = nets
    with pytest.raises(ValueError, match="teacher_pred"):
        DistillationLoss(hard=0.3, hp=0.7)(student(X), y)
    with pytest.raises(ValueError, match="teacher_grad"):
        DistillationLoss(gr=1.0)(student(X), y, X=X)
    # X without requires_grad cannot give the student's input gradient
    with pytest.raises(ValueError, match="requires_grad"):
        DistillationLoss(gr=1.0)(student(X), y, X=X, teacher_grad=torch.zeros_like(X))


# ---------------------------------------------------------------- gradients reach the student


@pytest.mark.parametrize("term", ["hard", "hp", "gr"])
def test_each_term_alone_trains_every_student_parameter(term, batch, nets):
    X, y = batch
    student, teacher = nets
    with torch.no_grad():
        t_pred = teacher(X)
    t_grad = teacher_gradient_per_sample(teacher, X, y) / len(X)
    Xg = X.clone().requires_grad_(True)
    total, terms = DistillationLoss(**{term: 1.0})(student(Xg), y, Xg, t_pred, t_grad)
    assert list(terms) == [term]
    total.backward()
    for name, p in student.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum().item() > 0, name


def test_gradient_penalty_without_create_graph_trains_nothing(batch, nets):
    """The pitfall: without ``create_graph`` the student's input gradient is a constant."""
    X, y = batch
    student, teacher = nets
    grad_t = input_gradient(teacher, X, y)
    grad_s = input_gradient(student, X, y, create_graph=False)
    penalty = gr_loss(grad_s, grad_t)
    assert penalty.item() > 0  # a number, but ...
    assert not penalty.requires_grad  # ... detached from the student's parameters
    with pytest.raises(RuntimeError):
        penalty.backward()
    assert all(g is None for g in param_grads(student))

    # with create_graph the same penalty does reach the parameters
    grad_s = input_gradient(student, X, y, create_graph=True)
    penalty = gr_loss(grad_s, grad_t)
    penalty.backward()
    assert all(g is not None and g.abs().sum() > 0 for g in param_grads(student))


def test_hp_term_does_not_reach_the_teacher(batch, nets):
    X, y = batch
    student, teacher = nets
    with torch.no_grad():
        t_pred = teacher(X)
    total, _ = DistillationLoss(hp=1.0)(student(X), y, teacher_pred=t_pred)
    total.backward()
    assert all(p.grad is None for p in teacher.parameters())


# ---------------------------------------------------------------- stacks of models


def test_stacked_inputs_give_one_value_per_model():
    g = torch.Generator().manual_seed(0)
    M, B = 3, 16
    pred = torch.randn(M, B, 1, generator=g)
    y = torch.randn(M, B, 1, generator=g)
    t = torch.randn(M, B, 1, generator=g)
    for fn, other in ((hard_loss, y), (hp_loss, t)):
        values = fn(pred, other)
        assert tuple(values.shape) == (M,)
        for m in range(M):
            assert torch.allclose(values[m], fn(pred[m], other[m]))
    ga, gb = torch.randn(M, B, 10, generator=g), torch.randn(M, B, 10, generator=g)
    values = gr_loss(ga, gb)
    assert tuple(values.shape) == (M,)
    assert torch.allclose(values[1], gr_loss(ga[1], gb[1]))


def test_stacked_distillation_loss_matches_per_model(batch):
    X, y = batch
    torch.manual_seed(3)
    students = [StudentNet() for _ in range(2)]
    teacher = TeacherNet().eval()
    loss = DistillationLoss(hard=0.2, hp=0.5, gr=0.3)
    with torch.no_grad():
        t_pred = teacher(X)
    t_grad = teacher_gradient_per_sample(teacher, X, y) / len(X)

    Xs = torch.stack([X, X]).requires_grad_(True)  # (M, B, d), one copy per model
    preds = torch.stack([s(Xs[m]) for m, s in enumerate(students)])
    total, terms = loss(preds, torch.stack([y, y]), Xs, torch.stack([t_pred, t_pred]),
                        torch.stack([t_grad, t_grad]))
    assert tuple(total.shape) == (2,)
    for m, s in enumerate(students):
        Xm = X.clone().requires_grad_(True)
        one_total, one_terms = loss(s(Xm), y, Xm, t_pred, t_grad)
        assert torch.allclose(total[m], one_total, rtol=1e-5)
        for name in ("hard", "hp", "gr"):
            assert torch.allclose(terms[name][m], one_terms[name], rtol=1e-5), name
    assert not torch.allclose(total[0], total[1])
