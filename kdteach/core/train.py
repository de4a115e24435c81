"""Training one model: the readable loop :func:`train`, and the pieces it shares with the
stacked engine (:func:`kdteach.core.stacked.train_many`).

The loop follows the original notebook: Adam, a fresh shuffle every epoch, mini-batches of
128, the teacher in ``eval()`` mode while the student is in ``train()`` mode. The stacked
engine shares with it the checks (:func:`check_run`), the batching (:func:`batch_indices`),
the teacher's precomputed targets (:func:`teacher_targets`), the losses
(:class:`~kdteach.core.losses.DistillationLoss`), the per-epoch :class:`History` and the
:class:`EarlyStopping`; the two differ only in how weights are held.

Why precompute the teacher? A frozen teacher in eval mode gives the same output for a
sample whatever batch it lands in, so its outputs (and its part of L_GR, its Jacobian
and its last hidden layer) are computed once for the whole training set and looked up
by sample index.

L_FEAT adds a learned adapter per student (:func:`feat_adapter`), trained by the
student's Adam; it is returned in ``History.adapters`` and never becomes part of the
student.

Early stopping (``val=(X_val, y_val)``): the validation MSE is measured after every epoch
in eval mode, the weights of the best epoch so far are copied aside and written back at
the end, so the returned weights are bit for bit those of training for ``best_epoch``
epochs; ``patience=N`` stops once N epochs in a row brought no improvement, ``None``
trains every epoch. ``val`` decides; ``heldout`` only looks. A snapshot taken after epoch
e (``snapshot_epochs=``) is bit for bit the result of training for e epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import mean_squared_error, r2_score

from kdteach.core.losses import (
    DistillationLoss,
    make_adapter,
    mse,
    teacher_features,
    teacher_gradient_per_sample,
    teacher_jacobian,
)
from kdteach.core.progress import trange

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
    width = getattr(model, "n_features", None)  # an MLP's, or a stack's
    if width is not None and width != X.shape[1]:
        raise ValueError(
            f"the model takes {width} input features but {name} X has {X.shape[1]} columns"
        )


def _check_training_args(num_epochs, lr, batch_size, n):
    if isinstance(num_epochs, bool) or not isinstance(num_epochs, int) or num_epochs < 0:
        raise ValueError(f"num_epochs must be an integer >= 0, got {num_epochs!r}")
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    check_batch_size(batch_size, n)


def check_batch_size(batch_size, n: int) -> None:
    """A batch size for a training set of ``n`` samples: a whole number in 1..n."""
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


def check_run(nets, X, y, losses, *, heldout, val, patience, num_epochs, lr, batch_size,
              snapshot_epochs) -> list[int]:
    """The checks both engines make before training anything (data, validation set,
    patience, epochs, learning rate, batch size, snapshots); returns the epochs to
    snapshot, sorted."""
    for net in nets:
        check_data(X, y, net)
        if heldout is not None:
            check_data(*heldout, net, name="held-out")
    _check_val(val, patience, nets, losses)
    _check_training_args(num_epochs, lr, batch_size, len(X))
    return _check_snapshots(snapshot_epochs, num_epochs, val)


def _check_train(net, X, y, loss, teacher, **run) -> list[int]:
    """:func:`train`'s checks; returns the epochs to snapshot."""
    snapshots = check_run([net], X, y, [loss], **run)
    if loss.needs_teacher and teacher is None:
        raise ValueError(f"{loss!r} uses the teacher: pass teacher=...")
    return snapshots


# ---------------------------------------------------------------- seeds


def seeded_generator(seed, device="cpu") -> torch.Generator:
    """A ``torch.Generator`` seeded with ``seed`` (None: 0); a generator is used as it is."""
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator(device=device).manual_seed(0 if seed is None else int(seed))


def seed_int(seed) -> int:
    """The integer a seed stands for: an int itself (None: 0), a generator's initial seed."""
    return seed.initial_seed() if isinstance(seed, torch.Generator) else int(seed or 0)


ADAPTER_SEED_OFFSET = 0xADA  # L_FEAT's adapter of model m starts from seeds[m] + this


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


def targets_for(loss: DistillationLoss, teacher, X, y) -> TeacherTargets:
    """The teacher's targets on ``(X, y)`` that the terms of ``loss`` need."""
    return teacher_targets(teacher, X, y, "gr" in loss.weights, need_jac="jac" in loss.weights,
                           need_features=loss.needs_features)


def feat_adapter(student, teacher_width: int, seed) -> torch.nn.Linear:
    """L_FEAT's adapter from the student's last hidden layer to the teacher's (of width
    ``teacher_width``); its initial weights depend only on that random seed."""
    spec = getattr(student, "spec", None)
    if spec is None or len(spec.sizes) < 3:
        raise ValueError("L_FEAT needs the student to be a kdteach MLP with a hidden layer")
    return make_adapter(spec.sizes[-2], teacher_width,
                        seeded_generator(seed_int(seed) + ADAPTER_SEED_OFFSET))


def forward_pass(model, adapter, X: torch.Tensor):
    """The prediction, and L_FEAT's adapted last hidden layer (None without an adapter);
    the same for one network and for a stack."""
    if adapter is None:
        return model(X), None
    pred, features = model.forward_with_features(X)
    return pred, adapter(features[-1])


def state_copies(nets) -> list[dict]:
    """A detached CPU copy of each network's weights."""
    return [{k: v.detach().cpu().clone() for k, v in net.state_dict().items()} for net in nets]


class History:
    """Per-epoch means of every loss term (and the total), for one or many models.

    With a validation set (``val=`` of :func:`train` and
    :func:`~kdteach.core.stacked.train_many`) it also holds ``val_mse`` (one array per
    epoch) and ``best_epoch`` (1-based: the epoch whose weights were kept); without one,
    ``best_epoch`` is None. ``stopped_epoch`` is the last epoch trained. After
    :func:`train` both are plain ints; after ``train_many`` arrays, one entry per model,
    and a model's entries after its ``stopped_epoch`` are NaN (the stacked engine trains
    on until every model has stopped).
    """

    def __init__(self, terms, labels):
        self.terms = list(terms) + ["total"]
        self.labels = list(labels)
        self.epochs = {t: [] for t in self.terms}
        self.heldout: list[np.ndarray] = []  # per epoch, when a held-out set was given
        self.val_mse: list[np.ndarray] = []  # per epoch, when a validation set was given
        self.best_epoch: int | np.ndarray | None = None
        self.stopped_epoch: int | np.ndarray | None = None
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
        stops = np.broadcast_to(len(self) if self.stopped_epoch is None
                                else self.stopped_epoch, n)
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
        if hasattr(model, "n_models"):  # a stack: the same inputs for every model
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


def replay_early_stopping(val_mse, patience: int) -> tuple[int, int]:
    """``(best epoch, stopped epoch)``, 1-based, that :class:`EarlyStopping` with
    ``patience`` would reach on the recorded validation curve ``val_mse`` (one value per
    epoch, from epoch 1; NaN after the training stopped).

    Training does not depend on the patience until it stops, so a curve recorded with a
    patience P replays exactly any patience up to P: the lessons' patience slider needs
    no training. Past the recorded epochs the answer is where the record ends."""
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
    values = np.asarray(val_mse, dtype=float)
    best_mse, best, epoch = np.inf, 0, 0
    for epoch, value in enumerate(values, start=1):
        if not np.isfinite(value):
            return best, epoch - 1
        if value < best_mse:
            best_mse, best = value, epoch
        if epoch - best >= patience:
            break
    return best, epoch


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
    """Train ``net`` in place on ``(X, y)`` with Adam; the loss decides what kind of training.

    ``loss=None`` is the hard loss alone (a teacher, a scratch student); a
    ``DistillationLoss`` with an hp, gr, jac or feat weight needs the frozen ``teacher``.
    ``seed`` (an int or a ``torch.Generator``) fixes the shuffle. ``heldout=(X, y)`` is only
    measured, after every epoch; ``val=(X, y)`` with ``patience`` is early stopping (see the
    module's docstring). ``on_epoch(epoch, history)`` is called after every epoch;
    ``snapshot_epochs`` keeps copies of the weights (0: the initial ones). L_FEAT's trained
    adapter is ``history.adapters[0]``, never part of ``net``.

    Taught in Lesson 03, section 4 (one grid point by hand); one step of it is Exercises 02,
    exercise 4 (``distill_step``). :func:`kdteach.core.stacked.train_many` trains many at once.
    """
    loss = loss or DistillationLoss(hard=1.0)
    snapshots = _check_train(net, X, y, loss, teacher, heldout=heldout, val=val,
                             patience=patience, num_epochs=num_epochs, lr=lr,
                             batch_size=batch_size, snapshot_epochs=snapshot_epochs)
    # the teacher's targets, once for the whole training set
    targets = targets_for(loss, teacher, X, y) if loss.needs_teacher else None
    # L_FEAT only: the adapter from the student's last hidden layer to the teacher's
    adapter = None
    if loss.needs_features:
        adapter = feat_adapter(net, targets.features.shape[-1], seed).to(X.device)
    params = list(net.parameters())
    if adapter is not None:
        params += list(adapter.parameters())  # trained by the student's Adam
    shuffle = seeded_generator(seed)
    # the optimiser
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    history = History(loss.terms, [desc])
    stopping = None
    if val is not None:
        stopping = EarlyStopping([t[None] for t in net.state_dict().values()], patience, [desc])

    if 0 in snapshots:
        history.snapshots[0] = state_copies([net])
    net.train()
    for epoch in trange(1, num_epochs + 1, desc=desc, leave=leave, disable=not progress):
        # shuffle: this epoch's mini-batches
        for idx in batch_indices(len(X), batch_size, [shuffle], X.device):
            idx = idx[0]  # one model: the only row
            # slice the batch, and the teacher's targets for it
            X_batch, y_batch = X[idx], y[idx]
            teacher_batch = targets.batch(idx) if targets else {}
            if loss.needs_input_grad:
                X_batch.requires_grad_(True)
            optimizer.zero_grad()
            # forward
            pred, adapted = forward_pass(net, adapter, X_batch)
            # loss
            total, terms = loss(pred, y_batch, X_batch, adapted_features=adapted, **teacher_batch)
            # backward, step
            total.backward()
            optimizer.step()
            history.add(total, terms, len(idx))
        # record the epoch's mean losses
        history.end_epoch()
        # early-stopping bookkeeping: the validation MSE, and a copy of the best weights
        if stopping is not None:
            value = heldout_mse(net, *val)
            history.add_val(value)
            stopping.update(epoch, value)
        if heldout is not None:
            history.add_heldout(heldout_mse(net, *heldout))
        # snapshot
        if epoch in snapshots:
            history.snapshots[epoch] = state_copies([net])
        # callback
        if on_epoch is not None:
            on_epoch(epoch, history)
        if stopping is not None and not stopping.active[0]:
            break
    history.stopped_epoch = len(history)
    if stopping is not None:
        stopping.restore()  # the best epoch's weights
        history.best_epoch = int(stopping.best_epoch[0])
    net.eval()
    history.adapters = [adapter]
    return history


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
