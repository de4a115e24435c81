"""Tests for kdteach.core.train and the stacked engine's train_many: the one-model loop,
the stacked engine and evaluation.

Data, teachers and students live on the ``device`` fixture's device (KDTEACH_DEVICE), so that
``make test-gpu`` trains them on CUDA. Comparisons of two different computations use
``tol(...)``, looser on CUDA; a computation against itself stays exact. Tests of pure
bookkeeping (a History's arithmetic, the CPU generators' shuffles) stay on the CPU.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import mean_squared_error, r2_score
from torch import nn

from kdteach.core.data import make_dataset
from kdteach.core.losses import DistillationLoss, make_adapter, output_jacobian
from kdteach.core.models import (
    MLP,
    ExpertTeacherNet,
    MLPSpec,
    StudentNet,
    TeacherNet,
    count_parameters,
)
from kdteach.core.stacked import train_many
from kdteach.core.train import (
    ADAPTER_SEED_OFFSET,
    History,
    TeacherTargets,
    batch_indices,
    evaluate,
    predict,
    teacher_targets,
    train,
)

HP = {"hard": 0.3, "hp": 0.7}
GR = {"hard": 0.2, "hp": 0.5, "gr": 0.3}
JAC = {"hard": 0.3, "hp": 0.4, "jac": 0.3}
FEAT = {"hard": 0.3, "hp": 0.4, "feat": 0.3}


@pytest.fixture(scope="module")
def ds(device):
    return make_dataset().to(device)


@pytest.fixture(scope="module")
def teachers(ds, device):
    """Two different frozen teachers: one briefly trained, one as initialised."""
    torch.manual_seed(100)
    trained = TeacherNet().to(device)
    train(trained, ds.X_train, ds.y_train, num_epochs=2, lr=1e-3, seed=100, progress=False)
    torch.manual_seed(101)
    untrained = TeacherNet().to(device).eval()
    return trained, untrained


def initial_state(seed: int, device) -> dict:
    """A StudentNet's initial weights from a random seed, on ``device``."""
    torch.manual_seed(seed)
    return {k: v.to(device) for k, v in StudentNet().state_dict().items()}


@pytest.fixture(scope="module")
def student_init(device):
    return initial_state(7, device)


def fresh_student(state) -> StudentNet:
    """A StudentNet holding ``state``, on the state's device."""
    net = StudentNet().to(next(iter(state.values())).device)
    net.load_state_dict(state)
    return net


def assert_same_weights(a: nn.Module, b: nn.Module, atol: float = 0.0):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        if atol == 0.0:
            assert torch.equal(sa[key], sb[key]), key
        else:
            diff = (sa[key] - sb[key]).abs().max().item()
            assert diff <= atol, f"{key}: max difference {diff}"


def weights_differ(a: nn.Module, b: nn.Module) -> bool:
    return any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                      b.state_dict().values()))


# ---------------------------------------------------------------- one model


def test_train_reduces_the_hard_loss_on_the_real_data(ds, student_init):
    net = fresh_student(student_init)
    before = evaluate(net, ds.X_train, ds.y_train)["mse"]
    history = train(net, ds.X_train, ds.y_train, num_epochs=5, lr=1e-3, progress=False)
    after = evaluate(net, ds.X_train, ds.y_train)["mse"]
    assert after < 0.8 * before
    totals = [float(v[0]) for v in history.epochs["total"]]
    assert len(totals) == 5
    assert totals[-1] < totals[0]
    # the test split improves too
    assert evaluate(net, ds.X_test, ds.y_test)["mse"] < before


def test_history_has_every_term_every_epoch(ds, student_init, teachers):
    net = fresh_student(student_init)
    loss = DistillationLoss(**GR)
    history = train(net, ds.X_train, ds.y_train, loss, teachers[0], num_epochs=3, lr=1e-3,
                    progress=False, desc="L_GR")
    assert history.terms == ["hard", "hp", "gr", "total"]
    assert len(history) == 3
    for term in history.terms:
        assert len(history.epochs[term]) == 3
        assert all(np.isfinite(v).all() and v.shape == (1,) for v in history.epochs[term])
    # the epoch's total is the weighted sum of the epoch's terms (all means over samples)
    for e in range(3):
        parts = sum(GR[t] * history.epochs[t][e][0] for t in ("hard", "hp", "gr"))
        assert history.epochs["total"][e][0] == pytest.approx(parts, rel=1e-5)
    assert history.last("gr").shape == (1,)

    frame = history.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["model", "epoch", "term", "loss"]
    assert len(frame) == 4 * 3
    assert set(frame["term"]) == {"hard", "hp", "gr", "total"}
    assert set(frame["model"]) == {"L_GR"}
    assert sorted(set(frame["epoch"])) == [1, 2, 3]
    row = frame[(frame.term == "hp") & (frame.epoch == 2)]
    assert row["loss"].item() == pytest.approx(float(history.epochs["hp"][1][0]))


def test_history_hard_only_has_hard_and_total(ds, student_init):
    history = train(fresh_student(student_init), ds.X_train, ds.y_train, num_epochs=1, lr=1e-3,
                    progress=False)
    assert history.terms == ["hard", "total"]
    np.testing.assert_allclose(history.epochs["hard"][0], history.epochs["total"][0])


def test_history_epoch_mean_weights_batches_by_size():
    h = History(["hard"], ["m"])
    h.add(torch.tensor(1.0), {"hard": torch.tensor(1.0)}, batch_size=3)
    h.add(torch.tensor(5.0), {"hard": torch.tensor(5.0)}, batch_size=1)
    h.end_epoch()
    assert h.last()[0] == pytest.approx(2.0)  # (3*1 + 1*5) / 4


def test_same_seed_gives_bit_identical_weights(ds, student_init, teachers):
    a, b = fresh_student(student_init), fresh_student(student_init)
    for net in (a, b):
        train(net, ds.X_train, ds.y_train, DistillationLoss(**HP), teachers[0], num_epochs=2,
              lr=1e-3, seed=3, progress=False)
    assert_same_weights(a, b)
    assert weights_differ(a, fresh_student(student_init))  # it did train


def test_other_shuffle_seed_gives_other_weights(ds, student_init):
    a, b = fresh_student(student_init), fresh_student(student_init)
    train(a, ds.X_train, ds.y_train, num_epochs=1, lr=1e-3, seed=0, progress=False)
    train(b, ds.X_train, ds.y_train, num_epochs=1, lr=1e-3, seed=1, progress=False)
    assert weights_differ(a, b)


def test_generator_seed_is_accepted(ds, student_init):
    a, b = fresh_student(student_init), fresh_student(student_init)
    train(a, ds.X_train, ds.y_train, num_epochs=1, lr=1e-3, seed=5, progress=False)
    train(b, ds.X_train, ds.y_train, num_epochs=1, lr=1e-3,
          seed=torch.Generator().manual_seed(5), progress=False)
    assert_same_weights(a, b)


def original_style_training(net, teacher, X, y, weights, num_epochs, lr, seed):
    """The original notebook's L_GR loop, written out again, with the teacher run on every batch.

    Only the batch order is borrowed from kdteach (``batch_indices`` with the same seed), so
    that the two can be compared weight for weight. Returns each epoch's sample-weighted mean
    of the L_GR term.
    """
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    net.train()
    teacher.eval()
    gr_means = []
    for _ in range(num_epochs):
        gr_sum = 0.0
        for idx in batch_indices(len(X), 128, [generator], X.device):
            X_batch = X[idx[0]].clone().requires_grad_(True)
            y_batch = y[idx[0]]
            optimizer.zero_grad()
            with torch.no_grad():
                y_teacher = teacher(X_batch)
            loss_t = criterion(teacher(X_batch), y_batch)
            grad_t = torch.autograd.grad(loss_t, X_batch)[0].detach()
            y_student = net(X_batch)
            loss_s = criterion(y_student, y_batch)
            grad_s = torch.autograd.grad(loss_s, X_batch, create_graph=True)[0]
            loss_gr = criterion(grad_s, grad_t)
            total = (weights.get("hard", 0) * criterion(y_student, y_batch)
                     + weights.get("hp", 0) * criterion(y_student, y_teacher)
                     + weights.get("gr", 0) * loss_gr)
            total.backward()
            optimizer.step()
            gr_sum += loss_gr.item() * len(y_batch)
        gr_means.append(gr_sum / len(X))
    return gr_means


@pytest.mark.parametrize("weights", [GR, {"gr": 1.0}], ids=["hard-hp-gr", "gr-only"])
def test_precomputed_teacher_matches_a_per_batch_teacher(weights, ds, student_init, teachers,
                                                         tol):
    """train() computes the teacher's outputs and gradients once; the original per batch."""
    X, y = ds.X_train[:600], ds.y_train[:600]  # the last batch holds 88
    ours, theirs = fresh_student(student_init), fresh_student(student_init)
    history = train(ours, X, y, DistillationLoss(**weights), teachers[0], num_epochs=2, lr=1e-3,
                    seed=4, progress=False)
    gr_means = original_style_training(theirs, teachers[0], X, y, weights, num_epochs=2, lr=1e-3,
                                   seed=4)
    np.testing.assert_allclose(np.concatenate(history.epochs["gr"]), gr_means, rtol=tol(1e-4))
    assert_same_weights(ours, theirs, atol=tol(1e-5))
    assert weights_differ(ours, fresh_student(student_init))


def test_modes_teacher_eval_student_train(ds, student_init, device):
    torch.manual_seed(0)
    teacher = ExpertTeacherNet().to(device).train()  # left in train mode on purpose
    student = fresh_student(student_init)
    teacher_modes, student_modes = [], []
    teacher.register_forward_hook(lambda mod, inp, out: teacher_modes.append(mod.training))
    student.register_forward_hook(lambda mod, inp, out: student_modes.append(mod.training))
    X, y = ds.X_train[:256], ds.y_train[:256]
    train(student, X, y, DistillationLoss(**GR), teacher, num_epochs=2, lr=1e-3, batch_size=64,
          progress=False)
    assert teacher_modes and not any(teacher_modes)
    assert not teacher.training
    assert len(student_modes) == 2 * 4  # every training batch, in train mode
    assert all(student_modes)
    assert not student.training  # handed back ready for evaluation


def test_dropout_teacher_gives_deterministic_targets(ds, student_init, device):
    """With the teacher in eval mode its dropout is off: the student does not depend on the
    teacher's mode at call time or on the global RNG."""
    torch.manual_seed(0)
    teacher = ExpertTeacherNet().to(device)
    a, b = fresh_student(student_init), fresh_student(student_init)
    X, y = ds.X_train[:256], ds.y_train[:256]
    torch.manual_seed(1)
    train(a, X, y, DistillationLoss(**HP), teacher.train(), num_epochs=1, lr=1e-3,
          progress=False)
    torch.manual_seed(2)
    train(b, X, y, DistillationLoss(**HP), teacher.train(), num_epochs=1, lr=1e-3,
          progress=False)
    assert_same_weights(a, b)


def test_teacher_targets(ds, teachers, device, tol):
    teacher = teachers[0]
    X, y = ds.X_train[:100], ds.y_train[:100]
    targets = teacher_targets(teacher, X, y, need_grad=True)
    with torch.no_grad():
        assert torch.allclose(targets.pred, teacher(X))
    idx = torch.tensor([5, 0, 42], device=device)
    batch = targets.batch(idx)
    assert set(batch) == {"teacher_pred", "teacher_grad", "teacher_jac", "teacher_features"}
    assert torch.equal(batch["teacher_pred"], targets.pred[idx])
    Xb = X[idx].clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(nn.MSELoss()(teacher(Xb), y[idx]), Xb)
    assert torch.allclose(batch["teacher_grad"], expected, rtol=tol(1e-5), atol=tol(1e-8))
    assert batch["teacher_jac"] is None and batch["teacher_features"] is None
    assert teacher_targets(teacher, X, y, need_grad=False).grad is None
    assert TeacherTargets(targets.pred).batch(idx)["teacher_grad"] is None


def test_batch_indices_are_fresh_permutations():  # the shuffles are drawn on the CPU
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    batches = batch_indices(10, 4, [g1, g2])
    assert [tuple(b.shape) for b in batches] == [(2, 4), (2, 4), (2, 2)]
    rows = torch.cat(batches, dim=1)
    for row in rows:
        assert sorted(row.tolist()) == list(range(10))
    assert not torch.equal(rows[0], rows[1])
    again = torch.cat(batch_indices(10, 4, [g1]), dim=1)[0]
    assert not torch.equal(again, rows[0])  # the next epoch shuffles again


# ---------------------------------------------------------------- the held-out curve


def test_heldout_mse_is_recorded_per_epoch_and_changes_nothing(ds, student_init, teachers):
    loss = DistillationLoss(**HP)
    plain, watched = fresh_student(student_init), fresh_student(student_init)
    h1 = train(plain, ds.X_train, ds.y_train, loss, teachers[0], num_epochs=3, lr=1e-3, seed=4,
               progress=False)
    h2 = train(watched, ds.X_train, ds.y_train, loss, teachers[0], num_epochs=3, lr=1e-3,
               seed=4, heldout=(ds.X_test, ds.y_test), progress=False)
    assert_same_weights(plain, watched)  # only measured, never used
    assert h1.heldout == [] and len(h2.heldout) == 3
    assert h2.heldout[-1][0] == pytest.approx(evaluate(watched, ds.X_test, ds.y_test)["mse"],
                                              rel=1e-5)
    frame = h2.to_frame()
    assert (frame["term"] == "heldout").sum() == 3
    assert "heldout" not in set(h1.to_frame()["term"])


def test_heldout_mse_of_a_dropout_stack_is_taken_in_eval_mode(ds, device, tol):
    torch.manual_seed(3)
    nets = [ExpertTeacherNet().to(device), ExpertTeacherNet().to(device)]
    trained, history = train_many(nets, ds.X_train, ds.y_train, num_epochs=1, lr=1e-4,
                                  heldout=(ds.X_test, ds.y_test), progress=False)
    expected = [evaluate(net, ds.X_test, ds.y_test)["mse"] for net in trained]
    np.testing.assert_allclose(history.heldout[0], expected, rtol=tol(1e-5))


def test_train_many_heldout_equals_train_heldout(ds, student_init, teachers, tol):
    loss = DistillationLoss(**GR)
    h1 = train(fresh_student(student_init), ds.X_train, ds.y_train, loss, teachers[0],
               num_epochs=2, lr=1e-3, seed=9, heldout=(ds.X_test, ds.y_test), progress=False)
    _, h2 = train_many([fresh_student(student_init)], ds.X_train, ds.y_train, [loss],
                       [teachers[0]], num_epochs=2, lr=1e-3, seeds=[9],
                       heldout=(ds.X_test, ds.y_test), progress=False)
    np.testing.assert_allclose(np.concatenate(h2.heldout), np.concatenate(h1.heldout),
                               rtol=tol(1e-4))


def test_a_bad_heldout_set_is_rejected(ds, student_init):
    with pytest.raises(ValueError, match="held-out X has 3 columns"):
        train(fresh_student(student_init), ds.X_train, ds.y_train, num_epochs=1, lr=1e-3,
              heldout=(ds.X_test[:, :3], ds.y_test), progress=False)


# ---------------------------------------------------------------- many models at once


@pytest.mark.parametrize("kind", ["plain", "hp", "gr", "jac", "feat"])
def test_train_many_equals_train(kind, ds, student_init, teachers, tol):
    weights = {"plain": {"hard": 1.0}, "hp": HP, "gr": GR, "jac": JAC, "feat": FEAT}[kind]
    loss = DistillationLoss(**weights)
    teacher = teachers[0] if loss.needs_teacher else None
    single = fresh_student(student_init)
    h1 = train(single, ds.X_train, ds.y_train, loss, teacher, num_epochs=2, lr=1e-3, seed=9,
               progress=False)
    (many,), h2 = train_many([fresh_student(student_init)], ds.X_train, ds.y_train, [loss],
                             [teacher], num_epochs=2, lr=1e-3, seeds=[9], progress=False)
    assert_same_weights(single, many, atol=tol(1e-5))
    assert weights_differ(single, fresh_student(student_init))
    for term in h1.terms:
        np.testing.assert_allclose(np.concatenate(h2.epochs[term]),
                                   np.concatenate(h1.epochs[term]), rtol=tol(1e-4))
    if kind == "feat":
        assert_same_weights(h1.adapters[0], h2.adapters[0], atol=tol(1e-5))
    else:
        assert h1.adapters == [None] and h2.adapters == [None]


def test_train_many_mixed_losses_teachers_and_seeds(ds, student_init, teachers, device, tol):
    trained_teacher, other_teacher = teachers
    other_init = initial_state(8, device)
    plan = [  # (initial state, loss weights, teacher, shuffle seed)
        (student_init, {"hard": 1.0}, None, 0),
        (student_init, HP, trained_teacher, 1),
        (student_init, GR, trained_teacher, 2),
        (other_init, GR, other_teacher, 3),
        (other_init, {"hard": 0.1, "hp": 0.9}, other_teacher, 1),
    ]
    losses = [DistillationLoss(**w) for _, w, _, _ in plan]
    X, y = ds.X_train[:800], ds.y_train[:800]
    common = dict(num_epochs=2, lr=1e-3, weight_decay=1e-4, batch_size=100)
    trained, history = train_many(
        [fresh_student(s) for s, _, _, _ in plan], X, y, losses,
        [t for _, _, t, _ in plan], seeds=[s for _, _, _, s in plan],
        labels=[f"m{i}" for i in range(len(plan))], progress=False, **common)
    assert len(trained) == len(plan)
    assert history.labels == [f"m{i}" for i in range(len(plan))]
    assert history.terms == ["hard", "hp", "gr", "total"]
    for m, ((state, _, teacher, seed), loss) in enumerate(zip(plan, losses)):
        single = fresh_student(state)
        h = train(single, X, y, loss, teacher, seed=seed, progress=False, **common)
        assert_same_weights(single, trained[m], atol=tol(1e-5))
        for term in history.terms:
            column = np.array([epoch[m] for epoch in history.epochs[term]])
            if term in h.terms:
                np.testing.assert_allclose(column, np.concatenate(h.epochs[term]),
                                           rtol=tol(1e-4))
            else:
                assert np.isnan(column).all(), (m, term)  # a term the model does not use
    # the five really are different trainings
    for i in range(len(trained)):
        for j in range(i + 1, len(trained)):
            assert weights_differ(trained[i], trained[j]), (i, j)


def test_train_many_leaves_its_inputs_alone(ds, student_init):
    nets = [fresh_student(student_init) for _ in range(2)]
    trained, _ = train_many(nets, ds.X_train[:256], ds.y_train[:256], num_epochs=1, lr=1e-3,
                            progress=False)
    for net in nets:
        assert_same_weights(net, fresh_student(student_init))
    assert all(not t.training for t in trained)
    assert all(t is not n for t, n in zip(trained, nets))


def test_train_many_without_fused_adam(ds, student_init, tol):
    X, y = ds.X_train[:512], ds.y_train[:512]
    (a,), _ = train_many([fresh_student(student_init)], X, y, num_epochs=2, lr=1e-3, seeds=[4],
                         fused=False, progress=False)
    b = fresh_student(student_init)
    train(b, X, y, num_epochs=2, lr=1e-3, seed=4, progress=False)
    assert_same_weights(a, b, atol=tol(1e-5))


def test_dropout_teacher_train_many_matches_train_in_distribution(ds, device):
    """Dropout masks come from different random streams, so only the behaviour can agree."""
    X, y = ds.X_train[:800], ds.y_train[:800]
    torch.manual_seed(0)
    init = ExpertTeacherNet().state_dict()
    common = dict(num_epochs=6, lr=1e-3, weight_decay=1e-4, progress=False)
    single = ExpertTeacherNet().to(device)
    single.load_state_dict(init)
    torch.manual_seed(1)
    h1 = train(single, X, y, seed=0, **common)
    start = ExpertTeacherNet().to(device)
    start.load_state_dict(init)
    torch.manual_seed(1)
    (many,), h2 = train_many([start], X, y, seeds=[0], **common)

    first1, last1 = float(h1.epochs["total"][0][0]), float(h1.last()[0])
    first2, last2 = float(h2.epochs["total"][0][0]), float(h2.last()[0])
    assert last1 < 0.75 * first1 and last2 < 0.75 * first2
    assert abs(last1 - last2) < 0.12 * last1
    test1 = evaluate(single, ds.X_test, ds.y_test)["mse"]
    test2 = evaluate(many, ds.X_test, ds.y_test)["mse"]
    assert abs(test1 - test2) < 0.2 * test1
    # in eval mode the trained stack member is an ordinary deterministic network
    assert torch.equal(predict(many, ds.X_test), predict(many, ds.X_test))


# ---------------------------------------------------------------- failures


def test_huge_learning_rate_names_the_epoch(ds, student_init):
    with pytest.raises(FloatingPointError, match=r"epoch 1\b"):
        train(fresh_student(student_init), ds.X_train[:256], ds.y_train[:256], num_epochs=3,
              lr=1e8, progress=False)


def test_huge_learning_rate_in_train_many_names_the_model(ds, student_init):
    with pytest.raises(FloatingPointError, match=r"wild.*epoch \d"):
        train_many([fresh_student(student_init)], ds.X_train[:256], ds.y_train[:256],
                   num_epochs=3, lr=1e8, labels=["wild"], progress=False)


def test_mismatched_lengths_are_rejected(ds, student_init):
    with pytest.raises(ValueError, match="rows"):
        train(fresh_student(student_init), ds.X_train[:100], ds.y_train[:99], num_epochs=1,
              lr=1e-3, batch_size=50, progress=False)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_inputs_are_rejected(bad, ds, student_init):
    X = ds.X_train[:100].clone()
    X[3, 4] = bad
    with pytest.raises(ValueError, match="NaN"):
        train(fresh_student(student_init), X, ds.y_train[:100], num_epochs=1, lr=1e-3,
              batch_size=50, progress=False)
    y = ds.y_train[:100].clone()
    y[0, 0] = bad
    with pytest.raises(ValueError, match=r"\by\b.*NaN"):
        train(fresh_student(student_init), ds.X_train[:100], y, num_epochs=1, lr=1e-3,
              batch_size=50, progress=False)


def test_input_width_mismatch_is_rejected(ds, device):
    with pytest.raises(ValueError, match="8 input features"):
        train(StudentNet(n_features=8).to(device), ds.X_train[:100], ds.y_train[:100],
              num_epochs=1, lr=1e-3, batch_size=50, progress=False)
    with pytest.raises(ValueError, match="8 input features"):
        train_many([StudentNet(n_features=8).to(device)], ds.X_train[:100], ds.y_train[:100],
                   num_epochs=1, lr=1e-3, batch_size=50, progress=False)


def test_bad_shapes_are_rejected(ds, student_init):
    with pytest.raises(ValueError, match="shape"):
        train(fresh_student(student_init), ds.X_train[:100], ds.y_train[:100, 0], num_epochs=1,
              lr=1e-3, batch_size=50, progress=False)


def test_distillation_without_teacher_is_rejected(ds, student_init):
    with pytest.raises(ValueError, match="teacher"):
        train(fresh_student(student_init), ds.X_train[:100], ds.y_train[:100],
              DistillationLoss(**HP), num_epochs=1, lr=1e-3, batch_size=50, progress=False)
    with pytest.raises(ValueError, match="teacher"):
        train_many([fresh_student(student_init)], ds.X_train[:100], ds.y_train[:100],
                   [DistillationLoss(**GR)], num_epochs=1, lr=1e-3, batch_size=50,
                   progress=False)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"num_epochs": -1}, "num_epochs"),
        ({"num_epochs": 1.5}, "num_epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 101}, "batch_size"),
    ],
)
def test_bad_training_arguments_are_rejected(kwargs, name, ds, student_init):
    args = {"num_epochs": 1, "lr": 1e-3, "batch_size": 50, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=name):
        train(fresh_student(student_init), ds.X_train[:100], ds.y_train[:100], **args)


def test_train_many_list_lengths_must_agree(ds, student_init):
    with pytest.raises(ValueError, match="same length"):
        train_many([fresh_student(student_init)] * 2, ds.X_train[:100], ds.y_train[:100],
                   seeds=[0], num_epochs=1, lr=1e-3, batch_size=50, progress=False)


# ---------------------------------------------------------------- evaluation and progress


def test_evaluate_matches_sklearn(ds, teachers):
    model = teachers[0]
    result = evaluate(model, ds.X_test, ds.y_test)
    with torch.no_grad():
        pred = model(ds.X_test).cpu().numpy()
    y = ds.y_test.cpu().numpy()
    assert result["mse"] == pytest.approx(mean_squared_error(y, pred), rel=1e-6)
    assert result["r2"] == pytest.approx(r2_score(y, pred), rel=1e-6)
    assert result["mse"] == pytest.approx(float(np.mean((y - pred) ** 2)), rel=1e-5)
    assert set(result) == {"mse", "r2"}
    assert isinstance(result["mse"], float) and isinstance(result["r2"], float)


def test_evaluate_uses_eval_mode(device):
    torch.manual_seed(0)
    net = ExpertTeacherNet().to(device).train()
    X, y = torch.randn(50, 10, device=device), torch.randn(50, 1, device=device)
    assert evaluate(net, X, y) == evaluate(net, X, y)
    assert not net.training


def test_progress_false_prints_nothing(ds, student_init, teachers, capsys):
    X, y = ds.X_train[:256], ds.y_train[:256]
    train(fresh_student(student_init), X, y, DistillationLoss(**HP), teachers[0], num_epochs=2,
          lr=1e-3, progress=False)
    train_many([fresh_student(student_init)] * 2, X, y, num_epochs=2, lr=1e-3, progress=False)
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_progress_true_draws_a_bar(ds, student_init, capsys):
    X, y = ds.X_train[:256], ds.y_train[:256]
    train(fresh_student(student_init), X, y, num_epochs=2, lr=1e-3, progress=True,
          desc="student-bar", leave=True)
    assert "student-bar" in capsys.readouterr().err


# ---------------------------------------------------------------- jac and L_FEAT


def reference_training(net, teacher, X, y, weights, num_epochs, lr, seed):
    """jac and L_FEAT written out by hand, with the teacher run on every batch and the
    adapter made and optimised here. Only the batch order and the adapter's initial
    weights are borrowed from kdteach. Returns the adapter (or None) and each epoch's
    sample-weighted mean of the jac or feat term."""
    criterion = nn.MSELoss()
    adapter = None
    params = list(net.parameters())
    if "feat" in weights:
        adapter = make_adapter(32, 64, torch.Generator().manual_seed(seed + ADAPTER_SEED_OFFSET))
        adapter = adapter.to(X.device)
        params += list(adapter.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    net.train()
    teacher.eval()
    means = []
    for _ in range(num_epochs):
        term_sum = 0.0
        for idx in batch_indices(len(X), 128, [generator], X.device):
            X_batch = X[idx[0]].clone().requires_grad_(True)
            y_batch = y[idx[0]]
            optimizer.zero_grad()
            y_teacher, t_features = teacher.forward_with_features(X_batch)
            (t_jac,) = torch.autograd.grad(y_teacher.sum(), X_batch)
            y_student, s_features = net.forward_with_features(X_batch)
            if adapter is None:
                (s_jac,) = torch.autograd.grad(y_student.sum(), X_batch, create_graph=True)
                term = criterion(s_jac, t_jac)
                weight = weights["jac"]
            else:
                term = criterion(adapter(s_features[-1]), t_features[-1].detach())
                weight = weights["feat"]
            total = (weights["hard"] * criterion(y_student, y_batch)
                     + weights["hp"] * criterion(y_student, y_teacher.detach()) + weight * term)
            total.backward()
            optimizer.step()
            term_sum += term.item() * len(y_batch)
        means.append(term_sum / len(X))
    return adapter, means


@pytest.mark.parametrize("weights", [JAC, FEAT], ids=["jac", "feat"])
def test_precomputed_teacher_jacobian_and_features_match_a_per_batch_teacher(
        weights, ds, student_init, teachers, tol):
    X, y = ds.X_train[:600], ds.y_train[:600]  # the last batch holds 88
    ours, theirs = fresh_student(student_init), fresh_student(student_init)
    history = train(ours, X, y, DistillationLoss(**weights), teachers[0], num_epochs=2, lr=1e-3,
                    seed=4, progress=False)
    adapter, means = reference_training(theirs, teachers[0], X, y, weights, num_epochs=2,
                                        lr=1e-3, seed=4)
    term = "jac" if "jac" in weights else "feat"
    np.testing.assert_allclose(np.concatenate(history.epochs[term]), means, rtol=tol(1e-4))
    assert_same_weights(ours, theirs, atol=tol(1e-5))
    if adapter is not None:
        assert_same_weights(history.adapters[0], adapter, atol=tol(1e-5))
    assert weights_differ(ours, fresh_student(student_init))


def test_teacher_targets_hold_the_jacobian_and_the_last_hidden_layer(ds, device, tol):
    torch.manual_seed(1)
    teacher = ExpertTeacherNet().to(device).train()  # eval mode is the function's job
    X, y = ds.X_train[:100], ds.y_train[:100]
    targets = teacher_targets(teacher, X, y, need_grad=False, need_jac=True, need_features=True)
    assert targets.grad is None
    assert tuple(targets.jac.shape) == (100, 10) and tuple(targets.features.shape) == (100, 64)
    idx = torch.tensor([5, 0, 42], device=device)
    batch = targets.batch(idx)
    # the Jacobian is per sample: a batch's is the rows, not divided by the batch size
    assert torch.allclose(batch["teacher_jac"], output_jacobian(teacher.eval(), X[idx]),
                          rtol=tol(1e-5), atol=tol(1e-8))
    with torch.no_grad():
        features = teacher.forward_with_features(X[idx])[1][-1]
    assert torch.allclose(batch["teacher_features"], features, rtol=tol(1e-5), atol=tol(1e-7))
    plain = teacher_targets(teacher, X, y, need_grad=True)
    assert plain.jac is None and plain.features is None


def test_feat_trains_the_adapter_and_leaves_the_student_a_student(ds, student_init, teachers,
                                                                  device):
    net = fresh_student(student_init)
    X, y = ds.X_train[:512], ds.y_train[:512]
    history = train(net, X, y, DistillationLoss(**FEAT), teachers[0], num_epochs=3, lr=1e-3,
                    seed=6, progress=False)
    adapter = history.adapters[0]
    start = make_adapter(32, 64, torch.Generator().manual_seed(6 + ADAPTER_SEED_OFFSET))
    assert weights_differ(adapter, start.to(device))  # the adapter was trained ...
    feat = [float(v[0]) for v in history.epochs["feat"]]
    assert feat[-1] < feat[0]  # ... and with the student it matches the teacher better
    # the student is a plain StudentNet: no adapter inside
    assert type(net) is StudentNet
    assert count_parameters(net) == 6_977
    assert list(net.state_dict()) == list(StudentNet().state_dict())
    assert all(p is not q for p in net.parameters() for q in adapter.parameters())
    assert set(evaluate(net, ds.X_test, ds.y_test)) == {"mse", "r2"}


def test_train_many_feat_among_other_losses(ds, student_init, teachers, tol):
    """A stack with L_FEAT, L_HP and plain students: each equals its own train(); only the
    L_FEAT student has an adapter, and every trained network is a plain StudentNet."""
    X, y = ds.X_train[:600], ds.y_train[:600]
    plan = [(FEAT, teachers[0], 1), (HP, teachers[0], 2), ({"hard": 1.0}, None, 3),
            ({"hard": 0.5, "jac": 0.2, "feat": 0.3}, teachers[1], 4)]
    losses = [DistillationLoss(**w) for w, _, _ in plan]
    trained, history = train_many([fresh_student(student_init) for _ in plan], X, y, losses,
                                  [t for _, t, _ in plan], seeds=[s for _, _, s in plan],
                                  num_epochs=2, lr=1e-3, weight_decay=1e-4, progress=False)
    assert history.terms == ["hard", "hp", "jac", "feat", "total"]
    assert [a is None for a in history.adapters] == [False, True, True, False]
    for m, (loss, (_, teacher, seed)) in enumerate(zip(losses, plan)):
        single = fresh_student(student_init)
        h = train(single, X, y, loss, teacher, num_epochs=2, lr=1e-3, weight_decay=1e-4,
                  seed=seed, progress=False)
        assert_same_weights(single, trained[m], atol=tol(1e-5))
        if loss.needs_features:
            assert_same_weights(h.adapters[0], history.adapters[m], atol=tol(1e-5))
        assert type(trained[m]) is StudentNet and count_parameters(trained[m]) == 6_977


def test_train_many_feat_needs_teachers_of_one_width(ds, student_init, teachers, device):
    torch.manual_seed(0)
    narrow = MLP(MLPSpec((10, 48, 1), activation="leaky_relu")).to(device)
    with pytest.raises(ValueError, match="one width"):
        train_many([fresh_student(student_init)] * 2, ds.X_train[:100], ds.y_train[:100],
                   [DistillationLoss(**FEAT)] * 2, [teachers[0], narrow], num_epochs=1,
                   lr=1e-3, batch_size=50, progress=False)
