"""Training: one readable loop for one model, and the stacked engine that trains many at once.

Both follow the original notebook: Adam, a fresh shuffle every epoch, mini-batches of 128, the
teacher in ``eval()`` mode while the student is in ``train()`` mode. Both share the
batching (:func:`batch_indices`), the teacher's precomputed targets
(:func:`teacher_targets`), the losses (:class:`~kdteach.core.losses.DistillationLoss`)
and the per-epoch :class:`History`; they differ only in how weights are held.

Why precompute the teacher? A frozen teacher in eval mode gives the same output for a
sample whatever batch it lands in, so its outputs (and its part of L_GR, its Jacobian
and its last hidden layer) are computed once for the whole training set and looked up
by sample index.

L_FEAT adds a learned adapter per student (:func:`~kdteach.core.losses.make_adapter`), trained
by the student's Adam; it is returned in ``History.adapters`` and never becomes part of
the student.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import mean_squared_error, r2_score
from tqdm.auto import trange

from kdteach.core.losses import (
    LOSS_TERMS,
    DistillationLoss,
    make_adapter,
    mse,
    teacher_features,
    teacher_gradient_per_sample,
    teacher_jacobian,
)
from kdteach.core.resources import guard_memory, has_free_core
from kdteach.core.stacked import PrefetchedDropout, StackedLinear, StackedMLP

# ---------------------------------------------------------------- checks


def check_data(X: torch.Tensor, y: torch.Tensor, model=None, name: str = "training") -> None:
    """Fail before training, naming what is wrong with the data or the model's input width."""
    if X.ndim != 2 or y.ndim != 2 or y.shape[1] != 1:
        raise ValueError(
            f"{name} data must be X of shape (n, features) and y of shape (n, 1); "
            f"got X {tuple(X.shape)} and y {tuple(y.shape)}"
        )
    if X.shape[0] != y.shape[0]:
        raise ValueError(
            f"{name} X has {X.shape[0]} rows but y has {y.shape[0]}: they must match"
        )
    for label, t in (("X", X), ("y", y)):
        bad = int((~torch.isfinite(t)).sum())
        if bad:
            raise ValueError(f"{name} {label} holds {bad} NaN or infinite value(s); clean the data")
    width = getattr(model, "n_features", None)
    if width is None and isinstance(model, StackedMLP):
        width = model.spec.sizes[0]
    if width is not None and width != X.shape[1]:
        raise ValueError(
            f"the model takes {width} input features but {name} X has {X.shape[1]} columns"
        )


def _check_training_args(num_epochs, lr, batch_size, n):
    if isinstance(num_epochs, bool) or not isinstance(num_epochs, int) or num_epochs < 0:
        raise ValueError(f"num_epochs must be an integer >= 0, got {num_epochs!r}")
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 0 < batch_size <= n:
        raise ValueError(f"batch_size must be an integer in 1..{n} (the training set), "
                         f"got {batch_size!r}")


def _check_val(val, patience, nets, losses=()) -> None:
    """Fail before training if the validation set or the patience is unusable."""
    if val is not None and any(loss.needs_features for loss in losses):
        raise ValueError("early stopping (val=) cannot be combined with the 'feat' term yet: "
                         "its adapter would not be restored with the best epoch; train "
                         "without val, or without feat")
    if patience is not None and (
        isinstance(patience, bool) or not isinstance(patience, int) or patience < 1
    ):
        raise ValueError(f"patience must be an integer >= 1 (epochs without improvement), "
                         f"or None to train every epoch; got {patience!r}")
    if val is None:
        if patience is not None:
            raise ValueError("patience needs a validation set to watch: pass val=(X_val, y_val)")
        return
    if not isinstance(val, (tuple, list)) or len(val) != 2:
        raise ValueError("val must be a pair (X_val, y_val) of tensors")
    for net in nets:
        check_data(*val, net, name="validation")


# ---------------------------------------------------------------- shared pieces


def batch_indices(n: int, batch_size: int, generators, device=None) -> list[torch.Tensor]:
    """One epoch's mini-batches: a fresh permutation of ``range(n)`` per generator,
    cut into batches. Returns tensors of shape ``(len(generators), B)``."""
    perms = torch.stack([torch.randperm(n, generator=g) for g in generators])
    return list(perms.to(device).split(batch_size, dim=1))


@dataclass
class TeacherTargets:
    """A frozen teacher's outputs ``(N, 1)`` on the training set and, when a loss term
    needs them: for L_GR its per-sample input gradient ``2·(t(x)−y)·∇x t(x)`` ``(N, d)``;
    for jac its Jacobian ``∂t(x)/∂x`` ``(N, d)``; for L_FEAT its last hidden layer
    ``(N, width)``. For a stack of M models every tensor has a leading axis M."""

    pred: torch.Tensor
    grad: torch.Tensor | None = None
    jac: torch.Tensor | None = None
    features: torch.Tensor | None = None

    def batch(self, idx: torch.Tensor, rows: torch.Tensor | None = None) -> dict:
        """The batch's targets, as the keyword arguments of ``DistillationLoss``.

        ``idx`` holds the batch's sample indices, ``(B,)``; for a stack ``(M, B)`` with
        ``rows`` the model indices ``(M, 1)``. L_GR's gradient is divided by the batch
        size (it is ∇x of a batch *mean*); the Jacobian is not (it is per sample)."""
        at = idx if rows is None else (rows, idx)
        grad = None if self.grad is None else self.grad[at] / idx.shape[-1]
        return {
            "teacher_pred": self.pred[at],
            "teacher_grad": grad,
            "teacher_jac": None if self.jac is None else self.jac[at],
            "teacher_features": None if self.features is None else self.features[at],
        }

    @classmethod
    def stack(cls, per_model: list, y: torch.Tensor) -> TeacherTargets:
        """One model's targets per row; a model without a teacher (``None``) gets the
        labels as outputs and zeros elsewhere (its weights for those terms are 0)."""
        given = [t for t in per_model if t is not None]
        widths = {t.features.shape[1] for t in given if t.features is not None}
        if len(widths) > 1:
            raise ValueError(
                f"L_FEAT in one stack needs teachers whose last hidden layers have one width; "
                f"got widths {sorted(widths)}: train these students in separate calls"
            )

        def stacked(name, fill):
            if getattr(given[0], name) is None:
                return None
            return torch.stack([fill(getattr(given[0], name)) if t is None else getattr(t, name)
                                for t in per_model])

        return cls(stacked("pred", lambda _: y), stacked("grad", torch.zeros_like),
                   stacked("jac", torch.zeros_like), stacked("features", torch.zeros_like))


def teacher_targets(teacher, X: torch.Tensor, y: torch.Tensor, need_grad: bool,
                    need_jac: bool = False, need_features: bool = False) -> TeacherTargets:
    """The teacher's targets on ``(X, y)``, computed once in eval mode."""
    teacher.eval()
    with torch.no_grad():
        pred = teacher(X)
    return TeacherTargets(
        pred,
        grad=teacher_gradient_per_sample(teacher, X, y) if need_grad else None,
        jac=teacher_jacobian(teacher, X) if need_jac else None,
        features=teacher_features(teacher, X) if need_features else None,
    )


def _targets_for(loss: DistillationLoss, teacher, X, y) -> TeacherTargets:
    return teacher_targets(teacher, X, y, "gr" in loss.weights, need_jac="jac" in loss.weights,
                           need_features=loss.needs_features)


ADAPTER_SEED_OFFSET = 0xADA  # L_FEAT's adapter of model m starts from seeds[m] + this


def _adapter(student, teacher_width: int, seed) -> torch.nn.Linear:
    """L_FEAT's adapter from the student's last hidden layer to the teacher's (of width
    ``teacher_width``); its initial weights depend only on that random seed."""
    spec = getattr(student, "spec", None)
    if spec is None or len(spec.sizes) < 3:
        raise ValueError("L_FEAT needs the student to be a kdteach MLP with a hidden layer")
    return make_adapter(spec.sizes[-2], teacher_width,
                        _generator(_seed_int(seed) + ADAPTER_SEED_OFFSET))


class History:
    """Per-epoch means of every loss term (and the total), for one or many models.

    With a validation set (``val=`` of :func:`train` and :func:`train_many`) it also holds
    ``val_mse`` (one array per epoch), ``best_epoch`` (1-based, one per model: the epoch
    whose weights were kept) and ``stopped_epoch`` (the last epoch each model trained);
    without one, ``best_epoch`` is None. A model's entries after its ``stopped_epoch``
    are NaN (the stacked engine trains on until every model has stopped).
    """

    def __init__(self, terms, labels):
        self.terms = list(terms) + ["total"]
        self.labels = list(labels)
        self.epochs = {t: [] for t in self.terms}
        self.heldout: list[np.ndarray] = []  # per epoch, when a held-out set was given
        self.val_mse: list[np.ndarray] = []  # per epoch, when a validation set was given
        self.best_epoch: np.ndarray | None = None
        self.stopped_epoch: np.ndarray | None = None
        # L_FEAT's trained adapter per model (None for a model without L_FEAT); for
        # inspection only: the adapter is not part of the student
        self.adapters: list = [None] * len(self.labels)
        # {epoch: [state_dict per model]}, when snapshot_epochs= asked for copies
        self.snapshots: dict[int, list[dict]] = {}
        self._sums = None
        self._count = 0

    def add(self, total, terms: dict, batch_size: int) -> None:
        values = {**terms, "total": total}
        step = {t: values[t].detach() * batch_size for t in self.terms}
        if self._sums is None:
            self._sums = step
        else:
            self._sums = {t: self._sums[t] + step[t] for t in self.terms}
        self._count += batch_size

    def end_epoch(self, mask: dict | None = None, active: np.ndarray | None = None) -> None:
        """Close the epoch; stop with an error naming the model if a loss is not finite.
        Models not ``active`` (stopped early) are recorded as NaN and not checked."""
        means = {t: np.atleast_1d((s / self._count).cpu().numpy()) for t, s in self._sums.items()}
        epoch = len(self.epochs["total"]) + 1
        checked = _all_if_none(active, len(self.labels))
        bad = np.flatnonzero(~np.isfinite(means["total"]) & checked)
        if bad.size:
            m = int(bad[0])
            last = self.epochs["total"][-1][m] if epoch > 1 else None
            last_text = f"{last:.6g}" if last is not None else "none (first epoch)"
            raise FloatingPointError(
                f"{self.labels[m]}: the loss became {means['total'][m]} in epoch {epoch}; "
                f"last finite epoch loss {last_text}. Lower the learning rate or the loss weights."
            )
        for t, v in means.items():
            if mask is not None and t in mask:
                v = np.where(mask[t], v, np.nan)
            if active is not None:
                v = np.where(active, v, np.nan)
            self.epochs[t].append(v)
        self._sums, self._count = None, 0

    def __len__(self):
        return len(self.epochs["total"])

    def last(self, term: str = "total") -> np.ndarray:
        return self.epochs[term][-1]

    def add_heldout(self, mse: torch.Tensor, active: np.ndarray | None = None) -> None:
        """Record the epoch's MSE on the held-out set (one value per model)."""
        self.heldout.append(_masked(mse, active))

    def add_val(self, mse: torch.Tensor, active: np.ndarray | None = None) -> None:
        """Record the epoch's MSE on the validation set (one value per model)."""
        self.val_mse.append(_masked(mse, active))

    def to_frame(self) -> pd.DataFrame:
        """Long form: one row per (model, epoch, term). The held-out MSE, when recorded,
        is the term ``"heldout"``; the validation MSE is the term ``"val"``. A model
        stopped early has no rows after its ``stopped_epoch``."""
        rows = []
        series = {t: self.epochs[t] for t in self.terms}
        if self.heldout:
            series[HELDOUT] = self.heldout
        if self.val_mse:
            series[VAL] = self.val_mse
        n = len(self.labels)
        stops = self.stopped_epoch if self.stopped_epoch is not None else [len(self)] * n
        for t, epochs in series.items():
            for e, values in enumerate(epochs, start=1):
                for label, v, stop in zip(self.labels, values, stops):
                    if e <= stop:
                        rows.append({"model": label, "epoch": e, "term": t, "loss": float(v)})
        return pd.DataFrame(rows, columns=["model", "epoch", "term", "loss"])


HELDOUT = "heldout"
VAL = "val"


def _all_if_none(active, n: int) -> np.ndarray:
    return np.ones(n, dtype=bool) if active is None else np.asarray(active, dtype=bool)


def _masked(mse: torch.Tensor, active) -> np.ndarray:
    values = np.atleast_1d(mse.detach().cpu().numpy())
    return values if active is None else np.where(active, values, np.nan)


def heldout_mse(model, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MSE on a held-out set in eval mode, one value per model of a stack; leaves the
    model in train mode (it is called between training epochs)."""
    model.eval()
    with torch.no_grad():
        if isinstance(model, StackedMLP):
            X = X.expand(model.n_models, *X.shape)
        value = mse(model(X), y)
    model.train()
    return value


class EarlyStopping:
    """Early stopping on a validation MSE, for one model or each model of a stack.

    ``tensors`` are the weights to watch, each with the models along dim 0 (a stack's
    parameters; a single model's state-dict tensors with a leading axis of 1). After each
    epoch, :meth:`update` copies the weights of every model whose validation MSE fell
    below its best so far (strictly lower) into a separate buffer, and stops a model once
    ``patience`` epochs in a row brought no improvement (``None``: never). :meth:`restore`
    writes each model's best weights back. Epochs are 1-based; ``best_epoch`` is 0 only
    when no epoch ran.
    """

    def __init__(self, tensors: list[torch.Tensor], patience: int | None, labels: list[str]):
        self.tensors = tensors
        self.patience = patience
        self.labels = list(labels)
        n = len(self.labels)
        with torch.no_grad():
            self.best = [t.detach().clone() for t in tensors]  # a copy, never a reference
        self.best_mse = np.full(n, np.inf)
        self.best_epoch = np.zeros(n, dtype=int)
        self.stopped_epoch = np.zeros(n, dtype=int)
        self.active = np.ones(n, dtype=bool)

    def update(self, epoch: int, val_mse: torch.Tensor) -> None:
        values = np.atleast_1d(val_mse.detach().cpu().numpy()).astype(float)
        bad = np.flatnonzero(~np.isfinite(values) & self.active)
        if bad.size:
            m = int(bad[0])
            raise FloatingPointError(
                f"{self.labels[m]}: the validation MSE became {values[m]} in epoch {epoch}. "
                "Lower the learning rate or the loss weights."
            )
        better = self.active & (values < self.best_mse)
        if better.any():
            rows = torch.from_numpy(np.flatnonzero(better)).to(self.tensors[0].device)
            with torch.no_grad():
                for best, current in zip(self.best, self.tensors):
                    best[rows] = current.detach()[rows]  # indexing copies
            self.best_mse[better] = values[better]
            self.best_epoch[better] = epoch
        self.stopped_epoch[self.active] = epoch
        if self.patience is not None:
            self.active &= (epoch - self.best_epoch) < self.patience

    def restore(self) -> None:
        """Write each model's best weights back (a model never validated keeps its own)."""
        rows = torch.from_numpy(np.flatnonzero(self.best_epoch > 0)).to(self.tensors[0].device)
        with torch.no_grad():
            for best, current in zip(self.best, self.tensors):
                current[rows] = best[rows]


def _generator(seed, device="cpu") -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator(device=device).manual_seed(0 if seed is None else int(seed))


DROPOUT_SEED_OFFSET = 0x5EED  # dropout masks of model m come from seeds[m] + this


def _seed_int(seed) -> int:
    return seed.initial_seed() if isinstance(seed, torch.Generator) else int(seed or 0)


class FusedAdam:
    """Adam (betas 0.9/0.999, eps 1e-8, L2 weight decay) as one call of PyTorch's fused
    kernel per step: what ``torch.optim.Adam(fused=True)`` computes, bit for bit (a test
    checks it), without ``torch.optim``'s per-step bookkeeping in Python and without its
    first-use import of ``torch._dynamo`` (about a second in a fresh process)."""

    def __init__(self, params, lr: float, weight_decay: float = 0.0):
        self.params = list(params)
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format)
                         for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format)
                            for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device)
                      for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        steps = [self.steps[i] for i in live]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            [self.params[i] for i in live], [self.params[i].grad for i in live],
            [self.exp_avgs[i] for i in live], [self.exp_avg_sqs[i] for i in live], [],
            steps, amsgrad=False, lr=self.lr, beta1=0.9, beta2=0.999,
            weight_decay=self.weight_decay, eps=1e-8, maximize=False,
            grad_scale=None, found_inf=None)


def _make_adam(params, lr, weight_decay, fused):
    """The stacked engine's Adam: :class:`FusedAdam` where PyTorch has the fused kernel for
    the device, else ``torch.optim.Adam``."""
    params = list(params)
    if fused and hasattr(torch, "_fused_adam_") and params[0].device.type in ("cpu", "cuda"):
        return FusedAdam(params, lr, weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def dropout_shapes(spec, n_models: int, n: int, batch_size: int, num_epochs: int):
    """The shape of every dropout layer's output, in the order a stack's training forward
    passes meet them: epoch by epoch, batch by batch (the last one smaller when
    ``batch_size`` does not divide ``n``), layer by layer."""
    widths = [spec.sizes[i + 1] for i in sorted(spec.dropout_after)]
    batches = [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    for _ in range(num_epochs):
        for b in batches:
            for width in widths:
                yield (n_models, b, width)


def _forward(model, adapter, X: torch.Tensor):
    """The prediction, and L_FEAT's adapted last hidden layer (None without an adapter);
    the same for one network and for a stack."""
    if adapter is None:
        return model(X), None
    pred, features = model.forward_with_features(X)
    return pred, adapter(features[-1])


def _check_snapshots(snapshot_epochs, num_epochs, val) -> list[int]:
    """The epochs (0 = the initial weights) at which to keep a copy of the weights."""
    if snapshot_epochs is None:
        return []
    epochs = sorted(set(snapshot_epochs))
    if not all(isinstance(e, int) and not isinstance(e, bool) and 0 <= e <= num_epochs
               for e in epochs):
        raise ValueError(f"snapshot_epochs must be whole numbers in 0..{num_epochs} "
                         f"(num_epochs), got {list(snapshot_epochs)!r}")
    if val is not None and epochs:
        raise ValueError("snapshot_epochs cannot be combined with early stopping (val=): "
                         "the weights handed back are the best epoch's, not the last's")
    return epochs


def _states(nets) -> list[dict]:
    """A detached CPU copy of each network's weights."""
    return [{k: v.detach().cpu().clone() for k, v in net.state_dict().items()} for net in nets]


# ---------------------------------------------------------------- one model


def train(
    net,
    X: torch.Tensor,
    y: torch.Tensor,
    loss: DistillationLoss | None = None,
    teacher=None,
    *,
    num_epochs: int,
    lr: float,
    weight_decay: float = 0.0,
    batch_size: int = 128,
    seed=0,
    heldout: tuple | None = None,
    val: tuple | None = None,
    patience: int | None = None,
    progress: bool = True,
    desc: str = "training",
    leave: bool = False,
    on_epoch=None,
    snapshot_epochs=None,
) -> History:
    """Train ``net`` in place on ``(X, y)``; the loss decides what kind of training it is.

    * a teacher or a scratch student: ``loss=None`` (the hard loss alone);
    * a distilled student: ``DistillationLoss(hard=0.3, hp=0.7)`` and a ``teacher``;
    * an L_GR student: ``DistillationLoss(hard=0.2, hp=0.5, gr=0.3)`` and a ``teacher``;
    * Jacobian matching: a ``jac`` weight, e.g. ``DistillationLoss(hard=0.3, hp=0.4, jac=0.3)``;
    * an L_FEAT student: ``DistillationLoss(hard=0.3, hp=0.4, feat=0.3)``. Its adapter
      (student's last hidden layer → teacher's) starts from ``seed`` and is trained by the
      same Adam; ``net`` keeps its own layers only, the trained adapter is
      ``history.adapters[0]``.

    ``seed`` (an int or a ``torch.Generator``) fixes the shuffle order. ``heldout=(X, y)``
    records the MSE on that set after every epoch (``history.heldout``); it is only
    measured, never used for training.

    Early stopping: ``val=(X_val, y_val)`` measures the validation MSE after every epoch
    (``history.val_mse``, eval mode), keeps a copy of the weights of the best epoch so far
    and writes them back into ``net`` at the end (``history.best_epoch``, 1-based).
    ``patience=N`` stops once N epochs in a row have not lowered the validation MSE
    (``history.stopped_epoch``); with ``patience=None`` every epoch is trained and the
    best is still restored. The returned weights are bit for bit those of training for
    ``best_epoch`` epochs. ``val`` decides; ``heldout`` only looks.

    Watching a training: ``on_epoch(epoch, history)`` is called after every epoch (1-based),
    once that epoch's losses and held-out MSE are recorded. ``snapshot_epochs=[...]`` keeps
    a copy of the weights after each of those epochs (0: the initial weights) in
    ``history.snapshots`` (``{epoch: [state_dict]}``); the copy after epoch e is bit for bit
    the result of training for e epochs. Neither changes the training.
    """
    loss = loss or DistillationLoss(hard=1.0)
    check_data(X, y, net)
    if heldout is not None:
        check_data(*heldout, net, name="held-out")
    _check_val(val, patience, [net], [loss])
    _check_training_args(num_epochs, lr, batch_size, len(X))
    snapshots = _check_snapshots(snapshot_epochs, num_epochs, val)
    if loss.needs_teacher and teacher is None:
        raise ValueError(f"{loss!r} uses the teacher: pass teacher=...")
    targets = _targets_for(loss, teacher, X, y) if loss.needs_teacher else None
    adapter = None
    if loss.needs_features:
        adapter = _adapter(net, targets.features.shape[-1], seed).to(X.device)
    params = list(net.parameters())
    if adapter is not None:
        params += list(adapter.parameters())  # trained by the student's Adam
    generator = _generator(seed)
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    history = History(loss.terms, [desc])
    stopping = None
    if val is not None:
        stopping = EarlyStopping([t[None] for t in net.state_dict().values()], patience, [desc])

    if 0 in snapshots:
        history.snapshots[0] = _states([net])
    net.train()
    for epoch in trange(1, num_epochs + 1, desc=desc, leave=leave, disable=not progress):
        for idx in batch_indices(len(X), batch_size, [generator], X.device):
            idx = idx[0]
            X_batch, y_batch = X[idx], y[idx]
            teacher_batch = targets.batch(idx) if targets else {}
            if loss.needs_input_grad:
                X_batch.requires_grad_(True)
            optimizer.zero_grad()
            pred, adapted = _forward(net, adapter, X_batch)
            total, terms = loss(pred, y_batch, X_batch, adapted_features=adapted, **teacher_batch)
            total.backward()
            optimizer.step()
            history.add(total, terms, len(idx))
        history.end_epoch()
        if stopping is not None:
            value = heldout_mse(net, *val)
            history.add_val(value)
            stopping.update(epoch, value)
        if heldout is not None:
            history.add_heldout(heldout_mse(net, *heldout))
        if epoch in snapshots:
            history.snapshots[epoch] = _states([net])
        if on_epoch is not None:
            on_epoch(epoch, history)
        if stopping is not None and not stopping.active[0]:
            break
    history.stopped_epoch = np.array([len(history)])
    if stopping is not None:
        stopping.restore()
        history.best_epoch = stopping.best_epoch
    net.eval()
    history.adapters = [adapter]
    return history


# ---------------------------------------------------------------- many models at once


@guard_memory
def train_many(
    nets: list,
    X: torch.Tensor,
    y: torch.Tensor,
    losses: list[DistillationLoss] | None = None,
    teachers: list | None = None,
    *,
    num_epochs: int,
    lr: float,
    weight_decay: float = 0.0,
    batch_size: int = 128,
    seeds: list | None = None,
    labels: list[str] | None = None,
    heldout: tuple | None = None,
    val: tuple | None = None,
    patience: int | None = None,
    progress: bool = True,
    desc: str = "training",
    leave: bool = False,
    fused: bool = True,
    on_epoch=None,
    snapshot_epochs=None,
) -> tuple[list, History]:
    """Train M networks of one architecture at once; each keeps its own initial weights,
    its own loss weights, its own teacher and its own shuffle (``seeds[m]``).

    Equivalent to calling :func:`train` on each (pinned by a test), but one step of all M
    is a few batched matmuls. Returns the trained networks (new modules) and a History
    whose arrays hold one column per network. ``heldout=(X, y)`` as in :func:`train`; the
    L_FEAT adapters of the networks that use it are in ``history.adapters``.

    ``val=(X_val, y_val)`` and ``patience`` as in :func:`train`, for each network on its
    own: each has its own best epoch (``history.best_epoch[m]``) and is handed back with
    that epoch's weights. The stack trains as one, so a network whose patience has run
    out is carried along until every network has stopped or the epochs run out: for it,
    "stopped" means "its best is fixed"; its later epochs are NaN in the history and
    never returned. The epochs run are the largest ``stopped_epoch``.

    ``on_epoch(epoch, history)`` and ``snapshot_epochs`` as in :func:`train`; a snapshot
    holds one state_dict per network, in the order of ``nets``.
    """
    M = len(nets)
    losses = losses or [DistillationLoss(hard=1.0)] * M
    teachers = teachers or [None] * M
    seeds = list(range(M)) if seeds is None else seeds
    labels = labels or [f"model {m}" for m in range(M)]
    if not (len(losses) == len(teachers) == len(seeds) == len(labels) == M):
        raise ValueError("nets, losses, teachers, seeds and labels must have the same length")
    for net in nets:
        check_data(X, y, net)
        if heldout is not None:
            check_data(*heldout, net, name="held-out")
    _check_val(val, patience, nets, losses)
    _check_training_args(num_epochs, lr, batch_size, len(X))
    snapshots = _check_snapshots(snapshot_epochs, num_epochs, val)
    for loss, teacher, label in zip(losses, teachers, labels):
        if loss.needs_teacher and teacher is None:
            raise ValueError(f"{label}: {loss!r} uses the teacher: pass its teacher")

    # loss weights as per-model columns; a term a model does not use has weight 0
    terms = [t for t in LOSS_TERMS if any(t in loss.weights for loss in losses)]
    weights = {
        t: torch.tensor([loss.weights.get(t, 0.0) for loss in losses], device=X.device)
        for t in terms
    }
    used = {t: (weights[t] > 0).cpu().numpy() for t in terms}
    union = DistillationLoss(**{t: 1.0 for t in terms})

    # each distinct teacher's targets once; a model without a teacher gets the labels
    targets = None
    if union.needs_teacher:
        cache = {}
        for teacher in teachers:
            if teacher is not None and id(teacher) not in cache:
                cache[id(teacher)] = _targets_for(union, teacher, X, y)
        targets = TeacherTargets.stack([cache[id(t)] if t is not None else None
                                        for t in teachers], y)

    stack = StackedMLP.from_models(nets)
    if stack.spec.dropout:
        stack.dropout_generators = [
            _generator(_seed_int(s) + DROPOUT_SEED_OFFSET, X.device) for s in seeds
        ]
        if X.device.type == "cpu" and has_free_core():  # draw the masks ahead, in a thread
            stack.dropout_supply = PrefetchedDropout(
                stack.dropout_generators, stack.spec.dropout,
                dropout_shapes(stack.spec, M, len(X), batch_size, num_epochs), X.device)
    # L_FEAT's adapters, one per model (a model without L_FEAT gets one it never uses)
    adapters = None
    if union.needs_features:
        width = targets.features.shape[-1]
        adapters = StackedLinear.from_linears(
            [_adapter(net, width, s).to(X.device) for net, s in zip(nets, seeds)])
    params = list(stack.parameters())
    if adapters is not None:
        params += list(adapters.parameters())
    optimizer = _make_adam(params, lr, weight_decay, fused)
    generators = [_generator(s) for s in seeds]
    rows = torch.arange(M, device=X.device)[:, None]
    history = History(terms, labels)
    stopping = (EarlyStopping(list(stack.parameters()), patience, labels)
                if val is not None else None)

    if 0 in snapshots:
        history.snapshots[0] = _states(nets)
    stack.train()
    try:
        for epoch in trange(1, num_epochs + 1, desc=desc, leave=leave, disable=not progress):
            active = None if stopping is None else stopping.active.copy()
            for idx in batch_indices(len(X), batch_size, generators, X.device):
                X_batch, y_batch = X[idx], y[idx]  # (M, B, d), (M, B, 1)
                teacher_batch = targets.batch(idx, rows) if targets is not None else {}
                if union.needs_input_grad:
                    X_batch.requires_grad_(True)
                optimizer.zero_grad()
                pred, adapted = _forward(stack, adapters, X_batch)
                term_values = union.compute_terms(pred, y_batch, X_batch,
                                                  adapted_features=adapted, **teacher_batch)
                per_model = sum(weights[t] * v for t, v in term_values.items())
                per_model.sum().backward()
                optimizer.step()
                history.add(per_model, term_values, idx.shape[1])
            history.end_epoch(mask=used, active=active)
            if stopping is not None:
                value = heldout_mse(stack, *val)
                history.add_val(value, active)
                stopping.update(epoch, value)
            if heldout is not None:
                history.add_heldout(heldout_mse(stack, *heldout), active)
            if epoch in snapshots:
                history.snapshots[epoch] = _states(stack.to_models(like=nets))
            if on_epoch is not None:
                on_epoch(epoch, history)
            if stopping is not None and not stopping.active.any():
                break
    finally:
        if stack.dropout_supply is not None:
            stack.dropout_supply.close()
            stack.dropout_supply = None
    if stopping is None:
        history.stopped_epoch = np.full(M, len(history))
    else:
        stopping.restore()
        history.best_epoch, history.stopped_epoch = stopping.best_epoch, stopping.stopped_epoch
    trained = stack.to_models(like=nets)
    for net in trained:
        net.eval()
    if adapters is not None:
        history.adapters = [a if loss.needs_features else None
                            for a, loss in zip(adapters.to_linears(), losses)]
    return trained, history


# ---------------------------------------------------------------- evaluation


def predict(model, X: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(X)


def evaluate(model, X: torch.Tensor, y: torch.Tensor) -> dict:
    """Test MSE and R² of ``model`` on ``(X, y)``, computed like the original (scikit-learn)."""
    y_np = y.detach().cpu().numpy()
    pred = predict(model, X).cpu().numpy()
    return {"mse": float(mean_squared_error(y_np, pred)), "r2": float(r2_score(y_np, pred))}
