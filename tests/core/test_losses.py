"""Tests for kdteach.core.losses: hard loss, L_HP, L_GR, jac, L_FEAT and their weighted composite.

The batch and the networks live on the ``device`` fixture's device (KDTEACH_DEVICE), so that
``make test-gpu`` computes the losses and their gradients on CUDA; comparisons of two different
computations use ``tol(...)``, looser on CUDA. Four kinds of test stay on the CPU: the float64
finite-difference checks of the maths on tiny networks, checks of plain tensor formulas, the
seeded adapter (its generator is a CPU one) and argument checks that compute nothing.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kdteach.core.losses import (
    DistillationLoss,
    feat_loss,
    gr_loss,
    hard_loss,
    hp_loss,
    input_gradient,
    jac_loss,
    jacobian_matching,
    last_hidden_features,
    lgr_as_in_original,
    make_adapter,
    mse,
    output_jacobian,
    teacher_features,
    teacher_gradient_per_sample,
    teacher_jacobian,
)
from kdteach.core.models import MLP, ExpertTeacherNet, MLPSpec, StudentNet, TeacherNet


@pytest.fixture
def batch(device):
    g = torch.Generator().manual_seed(5)
    X = torch.randn(32, 10, generator=g)
    y = torch.randn(32, 1, generator=g)
    return X.to(device), y.to(device)


@pytest.fixture
def nets(device):
    torch.manual_seed(0)
    return StudentNet().to(device), TeacherNet().to(device).eval()


def adapter_on(device, seed: int):
    """L_FEAT's adapter from a seed (drawn on the CPU), moved to ``device``."""
    return make_adapter(32, 64, torch.Generator().manual_seed(seed)).to(device)


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


def test_lgr_matches_the_original_computation(batch, nets, tol):
    X, y = batch
    student, teacher = nets
    ours = lgr_as_in_original(student, teacher, X, y)
    theirs = original_lgr(student, teacher, X, y)
    assert ours.item() > 0
    assert torch.allclose(ours, theirs, rtol=tol(1e-6), atol=0)


def test_distillation_gr_term_matches_the_original_computation(batch, nets, tol):
    X, y = batch
    student, teacher = nets
    per_sample = teacher_gradient_per_sample(teacher, X, y)
    Xg = X.clone().requires_grad_(True)
    _, terms = DistillationLoss(gr=1.0)(student(Xg), y, X=Xg, teacher_grad=per_sample / len(X))
    assert torch.allclose(terms["gr"], original_lgr(student, teacher, X, y), rtol=tol(1e-5),
                          atol=0)


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


def test_teacher_gradient_per_sample_over_batch_size_is_the_batch_gradient(batch, device,
                                                                           tol):
    X, y = batch
    torch.manual_seed(1)
    teacher = TeacherNet().to(device)
    per_sample = teacher_gradient_per_sample(teacher, X, y)
    assert tuple(per_sample.shape) == tuple(X.shape)
    assert not per_sample.requires_grad
    assert torch.allclose(per_sample / len(X), input_gradient(teacher, X, y), rtol=tol(1e-5),
                          atol=tol(1e-9))
    # any sub-batch: index the per-sample gradients and divide by the sub-batch size
    idx = torch.tensor([3, 17, 0, 29, 8], device=device)
    assert torch.allclose(per_sample[idx] / len(idx), input_gradient(teacher, X[idx], y[idx]),
                          rtol=tol(1e-5), atol=tol(1e-9))


def test_teacher_gradient_per_sample_uses_eval_mode(batch, device):
    X, y = batch
    torch.manual_seed(1)
    expert = ExpertTeacherNet().to(device).train()
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


def test_total_is_the_weighted_sum_of_terms(batch, nets, tol):
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
    assert torch.allclose(terms["gr"], lgr_as_in_original(student, teacher, X, y),
                          rtol=tol(1e-5))
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
        ({"hard": 1.0, "jac": -0.5}, "jac"),
        ({"jac": math.nan}, "jac"),
        ({"hard": 1.0, "feat": math.inf}, "feat"),
        ({"hard": 1.0, "feat": "0.3"}, "feat"),
        ({"hard": 1.0, "lfeat": 0.3}, "lfeat"),
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


def test_stacked_inputs_give_one_value_per_model():  # plain tensor formulas: on the CPU
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


def test_stacked_distillation_loss_matches_per_model(batch, device, tol):
    X, y = batch
    torch.manual_seed(3)
    students = [StudentNet().to(device) for _ in range(2)]
    teacher = TeacherNet().to(device).eval()
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
        assert torch.allclose(total[m], one_total, rtol=tol(1e-5))
        for name in ("hard", "hp", "gr"):
            assert torch.allclose(terms[name][m], one_terms[name], rtol=tol(1e-5)), name
    assert not torch.allclose(total[0], total[1])


# ---------------------------------------------------------------- jac: Jacobian matching


def jacrev_jacobian(model, X):
    """∂f(x_i)/∂x_i by torch.func, one sample at a time: a reference independent of ours."""
    one = torch.func.jacrev(lambda x: model(x[None])[0, 0])
    return torch.func.vmap(one)(X)


def finite_difference_jacobian(model, X, h=1e-6):
    jac = torch.zeros_like(X)
    with torch.no_grad():
        for j in range(X.shape[1]):
            up, down = X.clone(), X.clone()
            up[:, j] += h
            down[:, j] -= h
            jac[:, j] = ((model(up) - model(down)) / (2 * h))[:, 0]
    return jac


def test_output_jacobian_equals_jacrev(batch, nets, tol):
    X, _ = batch
    for model in nets:
        ours = output_jacobian(model, X)
        assert tuple(ours.shape) == tuple(X.shape)
        assert torch.allclose(ours, jacrev_jacobian(model, X), rtol=tol(1e-5), atol=tol(1e-7))
    assert not X.requires_grad  # the caller's tensor is left alone


def test_jacobian_matching_equals_finite_differences_on_a_tiny_net():
    torch.manual_seed(2)
    student = MLP(MLPSpec((3, 5, 1))).double()
    teacher = MLP(MLPSpec((3, 7, 4, 1), activation="leaky_relu")).double()
    X = torch.randn(6, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    fd_s, fd_t = finite_difference_jacobian(student, X), finite_difference_jacobian(teacher, X)
    expected = ((fd_s - fd_t) ** 2).mean()
    assert expected.item() > 0
    assert torch.allclose(jacobian_matching(student, teacher, X), expected, rtol=1e-6)
    assert torch.allclose(teacher_jacobian(teacher, X), fd_t, rtol=1e-6, atol=1e-9)


def test_jacobian_matching_equals_a_jacrev_reference(batch, nets, tol):
    X, _ = batch
    student, teacher = nets
    expected = ((jacrev_jacobian(student, X) - jacrev_jacobian(teacher, X)) ** 2).mean()
    assert torch.allclose(jacobian_matching(student, teacher, X), expected, rtol=tol(1e-5))


def test_jac_term_is_independent_of_labels_and_batch_size(batch, nets, tol):
    X, y = batch
    student, teacher = nets
    t_jac = teacher_jacobian(teacher, X)
    loss = DistillationLoss(jac=1.0, gr=1.0)
    t_grad = teacher_gradient_per_sample(teacher, X, y)

    def terms(idx, labels):
        Xg = X[idx].clone().requires_grad_(True)
        return loss.compute_terms(student(Xg), labels[idx], Xg, teacher_jac=t_jac[idx],
                                  teacher_grad=t_grad[idx] / len(idx))

    everything = torch.arange(len(X), device=X.device)
    full = terms(everything, y)
    # other labels: jac is unchanged, L_GR is not
    other = terms(everything, y + 3.0)
    assert torch.equal(other["jac"], full["jac"])
    assert not torch.allclose(other["gr"], full["gr"])
    # batches of 8: the size-weighted mean of their jac is the full batch's jac;
    # L_GR carries 1/B², so its batches of 8 are far larger than the batch of 32
    halves = [terms(idx, y) for idx in everything.split(8)]
    assert torch.allclose(torch.stack([h["jac"] for h in halves]).mean(), full["jac"],
                          rtol=tol(1e-5))
    assert torch.stack([h["gr"] for h in halves]).mean() > 4 * full["gr"]


def test_jacobian_matching_trains_the_student_weights(batch, nets):
    """With create_graph the value reaches the student's weights. Not its biases: a ReLU
    network's Jacobian is a product of weights and on/off masks that a small change of
    a bias does not flip."""
    X, _ = batch
    student, teacher = nets
    value = jacobian_matching(student, teacher, X)
    assert value.item() > 0 and value.requires_grad
    value.backward()
    for name, p in student.named_parameters():
        if name.endswith("weight"):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None or p.grad.abs().sum() == 0, name
    assert all(p.grad is None for p in teacher.parameters())


def test_jacobian_without_create_graph_trains_nothing(batch, nets):
    X, _ = batch
    student, teacher = nets
    constant = jac_loss(output_jacobian(student, X), teacher_jacobian(teacher, X))
    assert constant.item() > 0 and not constant.requires_grad
    assert torch.allclose(constant, jacobian_matching(student, teacher, X))


def test_jac_term_of_the_loss_trains_the_student_weights(batch, nets, tol):
    X, y = batch
    student, teacher = nets
    Xg = X.clone().requires_grad_(True)
    total, terms = DistillationLoss(jac=1.0)(student(Xg), y, Xg,
                                             teacher_jac=teacher_jacobian(teacher, X))
    assert list(terms) == ["jac"]
    assert torch.allclose(terms["jac"], jacobian_matching(student, teacher, X), rtol=tol(1e-6))
    total.backward()
    weights = [p for name, p in student.named_parameters() if name.endswith("weight")]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)


def test_teacher_jacobian_uses_eval_mode(batch, device):
    X, _ = batch
    torch.manual_seed(1)
    expert = ExpertTeacherNet().to(device).train()
    a = teacher_jacobian(expert, X)
    assert not expert.training and not a.requires_grad
    assert torch.equal(a, teacher_jacobian(expert.train(), X))  # no dropout noise


def test_output_jacobian_needs_one_output(batch, device):
    X, _ = batch
    with pytest.raises(ValueError, match="one output"):
        output_jacobian(MLP(MLPSpec((10, 4, 2))).to(device), X)


# ---------------------------------------------------------------- feat: L_FEAT (FitNets)


def feature_matching(student, adapter, teacher, X: torch.Tensor) -> torch.Tensor:
    """L_FEAT on ``X``: ``MSE(adapter(h_s), h_t)``, mean over samples and features."""
    return feat_loss(adapter(last_hidden_features(student, X)), teacher_features(teacher, X))


def duplicating_teacher_and_adapter(student):
    """A teacher whose last hidden layer (64 units) is the student's (32) written twice,
    and the adapter ``[I; I]`` that maps the student's layer exactly onto it; on the
    student's device."""
    device = next(student.parameters()).device
    teacher = MLP(MLPSpec((10, 64, 64, 64, 1))).to(device)
    s_lin = [layer for layer in student.layers if isinstance(layer, nn.Linear)]
    t_lin = [layer for layer in teacher.layers if isinstance(layer, nn.Linear)]
    adapter = nn.Linear(32, 64).to(device)
    with torch.no_grad():
        for k in (0, 1):
            t_lin[k].weight.copy_(s_lin[k].weight)
            t_lin[k].bias.copy_(s_lin[k].bias)
        t_lin[2].weight.copy_(torch.cat([s_lin[2].weight, s_lin[2].weight]))
        t_lin[2].bias.copy_(torch.cat([s_lin[2].bias, s_lin[2].bias]))
        adapter.weight.copy_(torch.cat([torch.eye(32), torch.eye(32)]).to(device))
        adapter.bias.zero_()
    return teacher, adapter


def test_feat_is_zero_when_the_adapter_maps_the_student_onto_the_teacher(batch, nets, tol):
    X, y = batch
    student, _ = nets
    teacher, adapter = duplicating_teacher_and_adapter(student)
    zero = pytest.approx(0, abs=tol(1e-12))
    assert feature_matching(student, adapter, teacher, X).item() == zero
    h_s = last_hidden_features(student, X)
    assert (h_s > 0).any()  # the layer is not dead: the zero is a real match
    _, terms = DistillationLoss(feat=1.0)(student(X), y, adapted_features=adapter(h_s),
                                          teacher_features=teacher_features(teacher, X))
    assert terms["feat"].item() == zero
    with torch.no_grad():
        adapter.bias += 0.1
    assert feature_matching(student, adapter, teacher, X).item() == pytest.approx(
        0.01, rel=tol(1e-5))


def test_feature_matching_is_the_mse_of_the_adapted_last_hidden_layers(batch, nets, device):
    X, _ = batch
    student, teacher = nets
    adapter = adapter_on(device, 0)
    _, s_features = student.forward_with_features(X)
    _, t_features = teacher.forward_with_features(X)
    assert s_features[-1].shape[1] == 32 and t_features[-1].shape[1] == 64
    expected = ((adapter(s_features[-1]) - t_features[-1]) ** 2).mean()
    value = feature_matching(student, adapter, teacher, X)
    assert value.item() > 0
    assert torch.allclose(value, expected)


def test_teacher_features_are_the_last_hidden_layer_in_eval_mode(batch, device):
    X, _ = batch
    torch.manual_seed(1)
    expert = ExpertTeacherNet().to(device).train()
    features = teacher_features(expert, X)
    assert not expert.training and not features.requires_grad
    assert tuple(features.shape) == (len(X), 64)
    with torch.no_grad():
        assert torch.equal(features, expert.forward_with_features(X)[1][-1])
    assert torch.equal(features, teacher_features(expert.train(), X))  # no dropout noise


def test_feat_term_trains_the_student_below_its_output_and_the_adapter(batch, nets, device):
    X, y = batch
    student, teacher = nets
    adapter = adapter_on(device, 0)
    pred, features = student.forward_with_features(X)
    total, _ = DistillationLoss(feat=1.0)(pred, y, adapted_features=adapter(features[-1]),
                                          teacher_features=teacher_features(teacher, X))
    total.backward()
    output_layer = student.layers[-1]
    for name, p in student.named_parameters():
        if name.startswith(f"layers.{len(student.layers) - 1}."):
            assert p.grad is None, name  # the output layer is not part of h_s
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert isinstance(output_layer, nn.Linear)
    assert all(p.grad.abs().sum() > 0 for p in adapter.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_make_adapter_is_seeded_and_leaves_the_global_rng_alone():  # a CPU generator
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    a = make_adapter(32, 64, torch.Generator().manual_seed(3))
    assert torch.equal(torch.rand(1), before)  # the global random state did not move
    b = make_adapter(32, 64, torch.Generator().manual_seed(3))
    c = make_adapter(32, 64, torch.Generator().manual_seed(4))
    assert tuple(a.weight.shape) == (64, 32) and tuple(a.bias.shape) == (64,)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert not torch.equal(a.weight, c.weight)
    bound = 1 / math.sqrt(32)
    for p in (a.weight, a.bias):
        assert p.abs().max() <= bound and p.abs().max() > 0.9 * bound


def test_last_hidden_features_needs_a_kdteach_mlp(batch, device):
    X, _ = batch
    with pytest.raises(ValueError, match="forward_with_features"):
        last_hidden_features(nn.Sequential(nn.Linear(10, 1)).to(device), X)
    with pytest.raises(ValueError, match="hidden layer"):
        last_hidden_features(MLP(MLPSpec((10, 1))).to(device), X)


def test_new_terms_need_the_teacher_and_say_what_they_need():
    jac, feat = DistillationLoss(hard=0.5, jac=0.5), DistillationLoss(**{"hard": 0.3, "hp": 0.4,
                                                                        "feat": 0.3})
    assert jac.needs_teacher and jac.needs_input_grad and not jac.needs_features
    assert feat.needs_teacher and feat.needs_features and not feat.needs_input_grad
    assert DistillationLoss(jac=1.0).needs_teacher and DistillationLoss(feat=1.0).needs_teacher
    assert feat.terms == ("hard", "hp", "feat")
    assert "feat=0.3" in repr(feat) and "jac=0.5" in repr(jac)


def test_missing_inputs_of_the_new_terms_are_explained(batch, nets):
    X, y = batch
    student, _ = nets
    Xg = X.clone().requires_grad_(True)
    with pytest.raises(ValueError, match="teacher_jac"):
        DistillationLoss(jac=1.0)(student(Xg), y, X=Xg)
    with pytest.raises(ValueError, match="requires_grad"):
        DistillationLoss(jac=1.0)(student(X), y, X=X, teacher_jac=torch.zeros_like(X))
    with pytest.raises(ValueError, match="adapted_features"):
        DistillationLoss(feat=1.0)(student(X), y,
                                   teacher_features=torch.zeros(len(X), 64, device=X.device))
    with pytest.raises(ValueError, match="teacher_features"):
        DistillationLoss(feat=1.0)(student(X), y,
                                   adapted_features=torch.zeros(len(X), 64, device=X.device))


def test_stacked_jac_and_feat_terms_match_per_model(batch, device, tol):
    X, y = batch
    torch.manual_seed(3)
    students = [StudentNet().to(device) for _ in range(2)]
    teacher = TeacherNet().to(device).eval()
    adapters = [adapter_on(device, m) for m in range(2)]
    loss = DistillationLoss(hard=0.2, jac=0.5, feat=0.3)
    t_jac, t_feat = teacher_jacobian(teacher, X), teacher_features(teacher, X)

    Xs = torch.stack([X, X]).requires_grad_(True)
    outs = [s.forward_with_features(Xs[m]) for m, s in enumerate(students)]
    preds = torch.stack([pred for pred, _ in outs])
    adapted = torch.stack([a(f[-1]) for a, (_, f) in zip(adapters, outs)])
    total, terms = loss(preds, torch.stack([y, y]), Xs, teacher_jac=torch.stack([t_jac, t_jac]),
                        adapted_features=adapted, teacher_features=torch.stack([t_feat, t_feat]))
    assert tuple(total.shape) == (2,)
    for m, (s, a) in enumerate(zip(students, adapters)):
        Xm = X.clone().requires_grad_(True)
        pred, features = s.forward_with_features(Xm)
        one_total, one_terms = loss(pred, y, Xm, teacher_jac=t_jac,
                                    adapted_features=a(features[-1]), teacher_features=t_feat)
        assert torch.allclose(total[m], one_total, rtol=tol(1e-5))
        for name in ("hard", "jac", "feat"):
            assert torch.allclose(terms[name][m], one_terms[name], rtol=tol(1e-5)), name
    assert not torch.allclose(total[0], total[1])
