"""Tests for kdteach.core.diagnostics: the factors of L_GR and each term's pull on the student."""

import pytest
import torch

from kdteach.core.data import make_dataset
from kdteach.core.diagnostics import lgr_factors, term_gradient_norms
from kdteach.core.losses import gr_loss, input_gradient, jacobian_matching
from kdteach.core.models import StudentNet, TeacherNet


@pytest.fixture(scope="module")
def setup():
    ds = make_dataset(n_samples=300)
    torch.manual_seed(0)
    return ds.X_train, ds.y_train, StudentNet(), TeacherNet().eval()


def test_lgr_factors_match_the_loss_computed_directly(setup):
    X, y, student, teacher = setup
    f = lgr_factors(student, teacher, X, y, batch_size=len(X))  # one batch: exact comparison
    direct = gr_loss(input_gradient(student, X, y), input_gradient(teacher, X, y))
    assert f["lgr"] == pytest.approx(float(direct), rel=1e-4)
    # the (2/B)² factor times the unscaled difference is L_GR
    assert f["batch_factor"] * f["lgr_unscaled"] == pytest.approx(f["lgr"], rel=1e-4)
    assert f["batch_factor"] == pytest.approx((2 / len(X)) ** 2)
    with torch.no_grad():
        assert f["teacher_residual_sq"] == pytest.approx(float(((teacher(X) - y) ** 2).mean()),
                                                         rel=1e-5)


def test_lgr_shrinks_with_the_batch_size(setup):
    X, y, student, teacher = setup
    small, large = (lgr_factors(student, teacher, X, y, batch_size=b)["lgr"] for b in (8, 128))
    assert small > 20 * large  # (2/B)²: 256 times in theory, minus the batch-mean effect


def test_lgr_vanishes_with_the_residuals(setup):
    """A teacher and a student that fit the labels exactly have zero L_GR."""
    X, _, student, teacher = setup
    with torch.no_grad():
        y_student = student(X)
    f = lgr_factors(student, student, X, y_student)
    assert f["lgr"] == pytest.approx(0.0, abs=1e-12)
    assert f["student_residual_sq"] == pytest.approx(0.0, abs=1e-12)


def test_term_gradient_norms_shares_and_zero_terms(setup):
    X, y, student, teacher = setup
    norms = term_gradient_norms(student, teacher, X, y, {"hard": 0.2, "hp": 0.5, "gr": 0.3},
                                batch_size=64)
    assert list(norms["term"]) == ["hard", "hp", "gr"]
    assert norms["share of the pull"].sum() == pytest.approx(1.0)
    assert (norms["gradient norm"] > 0).all()
    # the weight scales the pull linearly
    double = term_gradient_norms(student, teacher, X, y, {"hard": 0.4, "hp": 0.5, "gr": 0.3},
                                 batch_size=64)
    assert double["gradient norm"][0] == pytest.approx(2 * norms["gradient norm"][0], rel=1e-5)
    alone = term_gradient_norms(student, None, X, y, {"hard": 1.0}, batch_size=64)
    assert list(alone["term"]) == ["hard"] and alone["share of the pull"][0] == 1.0


def test_bad_batch_size_is_rejected(setup):
    X, y, student, teacher = setup
    with pytest.raises(ValueError, match="batch_size"):
        lgr_factors(student, teacher, X, y, batch_size=10**6)


def test_term_gradient_norms_measure_jac_and_refuse_feat(setup):
    X, y, student, teacher = setup
    norms = term_gradient_norms(student, teacher, X, y, {"hard": 0.5, "jac": 0.5},
                                batch_size=len(X))  # one batch: compare with the loss itself
    assert list(norms["term"]) == ["hard", "jac"]
    assert norms["loss value"][1] == pytest.approx(jacobian_matching(student, teacher, X).item(),
                                                   rel=1e-5)
    assert norms["gradient norm"][1] > 0
    with pytest.raises(ValueError, match="adapter"):
        term_gradient_norms(student, teacher, X, y, {"hard": 0.5, "feat": 0.5})
