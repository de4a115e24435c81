"""The loss terms and the weighted composite that combines them.

The original's three terms:

* hard:  ``MSE(y_s, y)``, the student against the labels;
* L_HP:  ``MSE(y_s, y_t)``, the student against the (frozen) teacher's predictions;
* L_GR:  ``MSE(∇x L_s, ∇x L_t)``, where ``L = MSE(model(x), y)`` is each model's
  *batch-mean* loss and ∇x its gradient with respect to the input batch.

Two terms kdteach adds:

* jac:   ``MSE(∂y_s/∂x, ∂y_t/∂x)``, Jacobian matching (Sobolev training): the student's
  input gradient of its *output* against the teacher's, sample by sample. Unlike L_GR it
  holds no residual and no ``1/B``, so it depends on neither the labels nor the batch size.
* L_FEAT: ``MSE(adapter(h_s), h_t)`` (FitNets): the student's last hidden layer ``h_s``,
  mapped by a learned linear adapter, against the teacher's last hidden layer ``h_t``.
  The original names this term (with weights hard 0.3, hp 0.4, feat 0.3) but never
  builds it. The adapter is trained with the student and is not part of it.

Every function here works on one model's batch, shapes ``(B, d)``, and equally on a
stack of models, shapes ``(M, B, d)``: reductions run over the last two axes, so a
stack returns one value per model. That is how the one-model loop
(:mod:`kdteach.core.train`) and the stacked engine (:mod:`kdteach.core.stacked`) share
this code.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

LOSS_TERMS = ("hard", "hp", "gr", "jac", "feat")


def is_number(value) -> bool:
    """A real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_weights(weights: dict, name: str = "weights") -> dict:
    """Validate a loss-weight dict: known terms, finite, >= 0, not all zero."""
    if not isinstance(weights, dict):
        raise ValueError(f"{name} must be a dict like {{'hard': 0.3, 'hp': 0.7}}, got {weights!r}")
    for term, w in weights.items():
        if term not in LOSS_TERMS:
            raise ValueError(
                f"{name}: unknown loss term {term!r}; valid terms are {', '.join(LOSS_TERMS)}"
            )
        if not is_number(w) or not math.isfinite(w) or w < 0:
            raise ValueError(f"{name}: weight {term!r} must be a finite number >= 0, got {w!r}")
    if not any(w > 0 for w in weights.values()):
        raise ValueError(f"{name}: at least one loss weight must be > 0, got {weights!r}")
    return {t: float(w) for t, w in weights.items()}


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the last two axes (a scalar, or one value per model)."""
    return ((a - b) ** 2).mean(dim=(-2, -1))


def hard_loss(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The hard loss ``MSE(y_s, y)``. Taught in Lesson 01, section 1 (the idea)."""
    return mse(pred, y)


def hp_loss(pred: torch.Tensor, teacher_pred: torch.Tensor) -> torch.Tensor:
    """L_HP, ``MSE(y_s, y_t)``. Taught in Lesson 01, section 1 (the idea)."""
    return mse(pred, teacher_pred)


def gr_loss(student_grad: torch.Tensor, teacher_grad: torch.Tensor) -> torch.Tensor:
    """L_GR, ``MSE(∇x L_s, ∇x L_t)``. Taught in Lesson 04, section 1 (the idea)."""
    return mse(student_grad, teacher_grad)


def jac_loss(student_jac: torch.Tensor, teacher_jac: torch.Tensor) -> torch.Tensor:
    """L_JAC, ``MSE(∂y_s/∂x, ∂y_t/∂x)``. Taught in Lesson 05, section 1 (L_JAC)."""
    return mse(student_jac, teacher_jac)


def feat_loss(adapted_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """L_FEAT, ``MSE(adapter(h_s), h_t)``. Taught in Lesson 05, section 2 (L_FEAT)."""
    return mse(adapted_features, teacher_features)


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


def output_jacobian(model, X: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """``∂f(x_i)/∂x_i`` for every sample: shape ``(B, d)`` for a model with one output.

    Each output depends only on its own input row, so the gradient of the sum of the
    outputs holds every sample's Jacobian. With ``create_graph=True`` the result stays
    differentiable with respect to the model's parameters (needed for the student).
    """
    X = X.detach().requires_grad_(True)
    out = model(X)
    if out.shape[-1] != 1:
        raise ValueError(
            f"output_jacobian needs a model with one output, got {out.shape[-1]} outputs"
        )
    (jac,) = torch.autograd.grad(out.sum(), X, create_graph=create_graph)
    return jac


def teacher_jacobian(teacher, X: torch.Tensor) -> torch.Tensor:
    """The teacher's ``∂y_t/∂x`` for every sample, in eval mode, detached."""
    teacher.eval()
    return output_jacobian(teacher, X).detach()


def jacobian_matching(student, teacher, X: torch.Tensor) -> torch.Tensor:
    """The mean over samples and features of ``(∂y_s/∂x − ∂y_t/∂x)²``.

    The student's Jacobian keeps its graph, so the value trains the student's weights.
    Not its biases, for a ReLU student: its Jacobian is a product of weight matrices and
    ReLU on/off masks, and the masks do not change under a small change of a bias.
    """
    return jac_loss(output_jacobian(student, X, create_graph=True), teacher_jacobian(teacher, X))


def last_hidden_features(model, X: torch.Tensor) -> torch.Tensor:
    """The output of ``model``'s last hidden layer (after its activation, before any
    dropout): the layer L_FEAT matches, for the student and for the teacher."""
    if not hasattr(model, "forward_with_features"):
        raise ValueError(f"L_FEAT needs kdteach MLPs (with forward_with_features), "
                         f"got a {type(model).__name__}")
    _, features = model.forward_with_features(X)
    if not features:
        raise ValueError("L_FEAT needs a network with at least one hidden layer")
    return features[-1]


def teacher_features(teacher, X: torch.Tensor) -> torch.Tensor:
    """The teacher's last hidden layer for every sample, in eval mode, detached."""
    teacher.eval()
    with torch.no_grad():
        return last_hidden_features(teacher, X)


def make_adapter(n_in: int, n_out: int, generator: torch.Generator) -> nn.Linear:
    """L_FEAT's adapter, ``Linear(n_in → n_out)``, with ``nn.Linear``'s default initial
    distribution (weights and biases uniform in ±1/√n_in) drawn from ``generator``, so
    that it does not move the global random state."""
    adapter = nn.utils.skip_init(nn.Linear, n_in, n_out)  # no draw from the global RNG
    bound = 1.0 / math.sqrt(n_in)
    with torch.no_grad():
        for p in (adapter.weight, adapter.bias):
            p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * bound)
    return adapter


class DistillationLoss:
    """``total = hard·MSE(y_s, y) + hp·MSE(y_s, y_t) + gr·MSE(∇x L_s, ∇x L_t)
    + jac·MSE(∂y_s/∂x, ∂y_t/∂x) + feat·MSE(adapter(h_s), h_t)``.

    >>> loss = DistillationLoss(hard=0.3, hp=0.7)
    >>> loss.weights
    {'hard': 0.3, 'hp': 0.7}

    Only terms with a positive weight are computed. Call it with the student's
    predictions and whatever the active terms need; it returns the total and a dict
    of every term (each detached from nothing: the caller may log or plot them).

    Taught in Lesson 01, section 1 (the idea); written by hand in Exercises 01.
    """

    def __init__(self, hard: float = 0.0, hp: float = 0.0, gr: float = 0.0, jac: float = 0.0,
                 feat: float = 0.0, **unknown):
        if unknown:
            raise ValueError(
                f"unknown loss term(s) {', '.join(sorted(unknown))}; "
                f"valid terms are {', '.join(LOSS_TERMS)}"
            )
        given = {"hard": hard, "hp": hp, "gr": gr, "jac": jac, "feat": feat}
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
        return any(t in self.weights for t in ("hp", "gr", "jac", "feat"))

    @property
    def needs_input_grad(self) -> bool:
        """Whether the input batch must have ``requires_grad`` (L_GR and jac differentiate
        with respect to it)."""
        return "gr" in self.weights or "jac" in self.weights

    @property
    def needs_features(self) -> bool:
        """Whether the student's last hidden layer and an adapter are needed (L_FEAT)."""
        return "feat" in self.weights

    def __repr__(self):
        args = ", ".join(f"{t}={w:g}" for t, w in self.weights.items())
        return f"DistillationLoss({args})"

    def __eq__(self, other):
        return isinstance(other, DistillationLoss) and self.weights == other.weights

    def compute_terms(self, pred, y, X=None, teacher_pred=None, teacher_grad=None,
                      teacher_jac=None, adapted_features=None, teacher_features=None) -> dict:
        """Each active term (a scalar, or one value per model for a stack).

        ``teacher_grad`` is ∇x of the teacher's batch-mean MSE (L_GR), ``teacher_jac`` the
        teacher's ``∂y_t/∂x`` per sample (jac), ``adapted_features`` the adapter applied
        to the student's last hidden layer and ``teacher_features`` the teacher's last
        hidden layer (L_FEAT). ``X`` is the input batch that produced ``pred``.
        """
        terms = {}
        hard = hard_loss(pred, y)
        if "hard" in self.weights:
            terms["hard"] = hard
        if "hp" in self.weights:
            if teacher_pred is None:
                raise ValueError("the 'hp' term needs teacher_pred (the teacher's outputs)")
            terms["hp"] = hp_loss(pred, teacher_pred)
        if "gr" in self.weights:
            _need_input_batch("gr", X, teacher_grad, "teacher_grad (the teacher's input gradient)")
            (student_grad,) = torch.autograd.grad(hard.sum(), X, create_graph=True)
            terms["gr"] = gr_loss(student_grad, teacher_grad)
        if "jac" in self.weights:
            _need_input_batch("jac", X, teacher_jac,
                              "teacher_jac (the teacher's ∂y_t/∂x per sample)")
            (student_jac,) = torch.autograd.grad(pred.sum(), X, create_graph=True)
            terms["jac"] = jac_loss(student_jac, teacher_jac)
        if "feat" in self.weights:
            if adapted_features is None or teacher_features is None:
                raise ValueError(
                    "the 'feat' term needs adapted_features (the adapter applied to the "
                    "student's last hidden layer) and teacher_features (the teacher's)"
                )
            terms["feat"] = feat_loss(adapted_features, teacher_features)
        return terms

    def __call__(self, pred, y, X=None, teacher_pred=None, teacher_grad=None, teacher_jac=None,
                 adapted_features=None, teacher_features=None):
        terms = self.compute_terms(pred, y, X, teacher_pred, teacher_grad, teacher_jac,
                                   adapted_features, teacher_features)
        total = sum(self.weights[t] * v for t, v in terms.items())
        return total, terms


def _need_input_batch(term: str, X, teacher_value, teacher_arg: str) -> None:
    """A term differentiated with respect to the inputs needs the batch X (requiring grad)
    and the teacher's precomputed counterpart (``teacher_arg`` names and explains it)."""
    if X is None or teacher_value is None or not X.requires_grad:
        raise ValueError(
            f"the '{term}' term needs X (the input batch, with requires_grad=True, that "
            f"produced pred) and {teacher_arg}"
        )
