"""The stacked engine: many MLPs of one architecture trained as one.

``StackedMLP.from_models([net_1, ..., net_M])`` holds M networks with their weights
stacked along a leading axis; its forward takes inputs of shape ``(M, B, d)`` and runs all
M with one batched matmul per layer (``torch.baddbmm``). Adam — weight decay included —
updates each element on its own, so one Adam over the stack trains M networks exactly as
M separate Adams would. ``to_models()`` gives the M ordinary networks back.

``StackedLinear`` does the same for M linear layers of one shape: L_FEAT's adapters,
trained by the same Adam as the stack of students.

:func:`train_many` trains M networks this way, each as :func:`kdteach.core.train.train`
would train it alone, sharing that loop's checks, batching, teacher targets, History and
early stopping. What only the engine needs lives here too: its Adam (:class:`FusedAdam`,
:func:`make_adam`) and its dropout, one generator per model (:func:`dropout_divisors`),
with the masks drawn ahead in a second thread (:class:`PrefetchedDropout`,
:func:`dropout_shapes`).
"""

from __future__ import annotations

import copy
import queue
import threading

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdteach.core.losses import LOSS_TERMS, DistillationLoss
from kdteach.core.models import MLP, MLPSpec
from kdteach.core.progress import trange
from kdteach.core.resources import guard_memory, has_free_core
from kdteach.core.train import (
    EarlyStopping,
    History,
    TeacherTargets,
    batch_indices,
    check_run,
    feat_adapter,
    forward_pass,
    heldout_mse,
    seed_int,
    seeded_generator,
    state_copies,
    targets_for,
)


class StackedMLP(nn.Module):
    def __init__(self, spec: MLPSpec, n_models: int):
        super().__init__()
        self.spec = spec
        self.n_models = n_models
        sizes = spec.sizes
        # weights stored transposed, (M, in, out), so a layer is baddbmm(b, x, W)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(n_models, n_in, n_out))
            for n_in, n_out in zip(sizes[:-1], sizes[1:])
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.empty(n_models, 1, n_out)) for n_out in sizes[1:]
        )
        # one generator per model for dropout masks, so a model's masks do not depend
        # on which other models share its stack; None → torch's global generator
        self.dropout_generators = None
        # or a callable giving the divisors for the next forward pass in training mode,
        # drawn ahead of time from those generators (a PrefetchedDropout)
        self.dropout_supply = None

    @property
    def n_features(self) -> int:
        """The input width of every network in the stack."""
        return self.spec.sizes[0]

    @classmethod
    def from_models(cls, models: list[MLP]) -> StackedMLP:
        specs = {m.spec for m in models}
        if len(specs) != 1:
            raise ValueError("all stacked models must share one architecture (MLPSpec)")
        stack = cls(models[0].spec, len(models)).to(next(models[0].parameters()).device)
        linears = [[layer for layer in m.layers if isinstance(layer, nn.Linear)] for m in models]
        with torch.no_grad():
            for k, (W, b) in enumerate(zip(stack.weights, stack.biases)):
                W.copy_(torch.stack([lin[k].weight.T for lin in linears]))
                b.copy_(torch.stack([lin[k].bias[None, :] for lin in linears]))
        return stack

    def to_models(self, like: list[MLP] | None = None) -> list[MLP]:
        """The M networks as ordinary modules holding copies of the current weights;
        of the same classes as ``like`` (e.g. the networks the stack was made from)."""
        if like is None:
            with torch.random.fork_rng(devices=[]):  # templates' init must not move the RNG
                like = [MLP(self.spec) for _ in range(self.n_models)]
        if len(like) != self.n_models:
            raise ValueError(f"need {self.n_models} template networks, got {len(like)}")
        models = []
        for m, template in enumerate(like):
            net = copy.deepcopy(template).to(self.weights[0].device)
            linears = [layer for layer in net.layers if isinstance(layer, nn.Linear)]
            with torch.no_grad():
                for lin, W, b in zip(linears, self.weights, self.biases):
                    lin.weight.copy_(W[m].T)
                    lin.bias.copy_(b[m, 0])
            models.append(net)
        return models

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[0]

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The output ``(M, B, out)`` and every hidden layer's activation ``(M, B, width)``
        (after the non-linearity, before any dropout), like ``MLP.forward_with_features``."""
        spec = self.spec
        last = len(self.weights) - 1
        features = []
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, W)
            if i < last:
                if spec.activation == "relu":
                    x = F.relu(x)
                else:
                    x = F.leaky_relu(x, spec.negative_slope)
                features.append(x)
                if spec.dropout and i in spec.dropout_after and self.training:
                    x = self._dropout(x)
        return x, features

    def _dropout(self, x: torch.Tensor) -> torch.Tensor:
        p = self.spec.dropout
        if self.dropout_supply is not None:
            return x / self.dropout_supply(x.shape)
        if self.dropout_generators is None:
            return F.dropout(x, p, training=True)
        return x / dropout_divisors(self.dropout_generators, x.shape, p, x.device)


def dropout_divisors(generators, shape, p: float, device=None) -> torch.Tensor:
    """Dropout for a stack as one division: ``x / d`` with ``d = 1 − p`` where a unit is
    kept and ``d = ∞`` where it is dropped (x / ∞ = 0).

    Model m's uniforms come from ``generators[m]``, drawn straight into its slice of one
    buffer, and a unit is kept when its uniform is ≥ p, as in ``F.dropout``. Bit for bit
    this gives what ``x * keep / (1 − p)`` gives, forward and backward (the division's
    gradient is ``grad / d``), in one pass each way instead of three.
    """
    uniforms = torch.empty(shape, device=device)
    for m, g in enumerate(generators):
        uniforms[m].uniform_(generator=g)
    # in place, three cheap passes: 1.0 (kept) or 0.0, then 1 or ∞, then 1 − p or ∞
    return uniforms.ge_(p).reciprocal_().mul_(1.0 - p)


class PrefetchedDropout:
    """A stack's dropout divisors drawn ahead of time in a second thread.

    ``shapes`` lists, in order, the shape of every dropout layer's output in every
    training forward pass to come; the thread draws each one's divisors with
    :func:`dropout_divisors` while the training thread computes, and calling the object
    with a shape hands over the next divisors. The generators are drawn from in the same
    order as drawing when asked, so the masks are bit for bit the same; on a machine
    with a free core the random numbers leave the training step's critical path.
    ``close()`` stops the thread (training may end early).
    """

    def __init__(self, generators, p: float, shapes, device=None, ahead: int = 8):
        self._queue = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._draw, name="kdteach-dropout",
                                        args=(list(generators), p, shapes, device), daemon=True)
        self._thread.start()

    def _draw(self, generators, p, shapes, device) -> None:
        try:
            for shape in shapes:
                item = (tuple(shape), dropout_divisors(generators, shape, p, device))
                if not self._put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 -- handed to the training thread
            self._put((None, exc))

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __call__(self, shape) -> torch.Tensor:
        expected, divisors = self._queue.get()
        if isinstance(divisors, BaseException):
            raise divisors
        if expected != tuple(shape):
            raise RuntimeError(f"dropout divisors were drawn for {expected} but a layer of "
                               f"shape {tuple(shape)} asked: the planned batches are wrong")
        return divisors

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class StackedLinear(nn.Module):
    """M ``nn.Linear`` layers of one shape as one: weight ``(M, in, out)``, bias
    ``(M, 1, out)``; the forward takes ``(M, B, in)``."""

    def __init__(self, n_models: int, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_models, n_in, n_out))
        self.bias = nn.Parameter(torch.empty(n_models, 1, n_out))

    @classmethod
    def from_linears(cls, linears: list[nn.Linear]) -> StackedLinear:
        shapes = {tuple(lin.weight.shape) for lin in linears}
        if len(shapes) != 1:
            raise ValueError(
                f"all stacked linear layers must share one shape, got {sorted(shapes)}"
            )
        n_out, n_in = shapes.pop()
        stack = cls(len(linears), n_in, n_out).to(linears[0].weight.device)
        with torch.no_grad():
            stack.weight.copy_(torch.stack([lin.weight.T for lin in linears]))
            stack.bias.copy_(torch.stack([lin.bias[None, :] for lin in linears]))
        return stack

    def to_linears(self) -> list[nn.Linear]:
        """The M layers as ``nn.Linear`` modules holding copies of the current weights."""
        n_models, n_in, n_out = self.weight.shape
        linears = []
        for m in range(n_models):
            lin = nn.utils.skip_init(nn.Linear, n_in, n_out, device=self.weight.device)
            with torch.no_grad():
                lin.weight.copy_(self.weight[m].T)
                lin.bias.copy_(self.bias[m, 0])
            linears.append(lin)
        return linears

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


# ---------------------------------------------------------------- the engine's Adam


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


def make_adam(params, lr: float, weight_decay: float = 0.0, fused: bool = True):
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


DROPOUT_SEED_OFFSET = 0x5EED  # dropout masks of model m come from seeds[m] + this


# ---------------------------------------------------------------- many models at once


def _check_many(nets, X, y, losses, teachers, seeds, labels, **run) -> list[int]:
    """:func:`train_many`'s checks; returns the epochs to snapshot."""
    if not (len(losses) == len(teachers) == len(seeds) == len(labels) == len(nets)):
        raise ValueError("nets, losses, teachers, seeds and labels must have the same length")
    snapshots = check_run(nets, X, y, losses, **run)
    for loss, teacher, label in zip(losses, teachers, labels):
        if loss.needs_teacher and teacher is None:
            raise ValueError(f"{label}: {loss!r} uses the teacher: pass its teacher")
    return snapshots


def _stacked_targets(union: DistillationLoss, teachers, X, y) -> TeacherTargets:
    """Each distinct teacher's targets once, one row per model; a model without a teacher
    gets the labels (and zeros)."""
    cache = {}
    for teacher in teachers:
        if teacher is not None and id(teacher) not in cache:
            cache[id(teacher)] = targets_for(union, teacher, X, y)
    return TeacherTargets.stack([cache[id(t)] if t is not None else None for t in teachers], y)


def _set_up_dropout(stack: StackedMLP, seeds, X, batch_size: int, num_epochs: int) -> None:
    """One dropout generator per model, from its seed; on a CPU with a free core the masks
    of the whole training are drawn ahead, in a thread."""
    stack.dropout_generators = [
        seeded_generator(seed_int(s) + DROPOUT_SEED_OFFSET, X.device) for s in seeds
    ]
    if X.device.type == "cpu" and has_free_core():
        stack.dropout_supply = PrefetchedDropout(
            stack.dropout_generators, stack.spec.dropout,
            dropout_shapes(stack.spec, stack.n_models, len(X), batch_size, num_epochs),
            X.device)


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

    Equivalent to calling :func:`~kdteach.core.train.train` on each (pinned by a test), but
    one step of all M is a few batched matmuls. Returns the trained networks (new modules)
    and a History whose arrays hold one column per network. ``heldout=(X, y)`` as in
    ``train``; the L_FEAT adapters of the networks that use it are in ``history.adapters``.

    ``val=(X_val, y_val)`` and ``patience`` as in ``train``, for each network on its
    own: each has its own best epoch (``history.best_epoch[m]``) and is handed back with
    that epoch's weights. The stack trains as one, so a network whose patience has run
    out is carried along until every network has stopped or the epochs run out: for it,
    "stopped" means "its best is fixed"; its later epochs are NaN in the history and
    never returned. The epochs run are the largest ``stopped_epoch``.

    ``on_epoch(epoch, history)`` and ``snapshot_epochs`` as in ``train``; a snapshot
    holds one state_dict per network, in the order of ``nets``.
    """
    M = len(nets)
    losses = losses or [DistillationLoss(hard=1.0)] * M
    teachers = teachers or [None] * M
    seeds = list(range(M)) if seeds is None else seeds
    labels = labels or [f"model {m}" for m in range(M)]
    snapshots = _check_many(nets, X, y, losses, teachers, seeds, labels, heldout=heldout,
                            val=val, patience=patience, num_epochs=num_epochs, lr=lr,
                            batch_size=batch_size, snapshot_epochs=snapshot_epochs)

    # loss weights as per-model columns; a term a model does not use has weight 0
    terms = [t for t in LOSS_TERMS if any(t in loss.weights for loss in losses)]
    weights = {
        t: torch.tensor([loss.weights.get(t, 0.0) for loss in losses], device=X.device)
        for t in terms
    }
    used = {t: (weights[t] > 0).cpu().numpy() for t in terms}
    union = DistillationLoss(**{t: 1.0 for t in terms})

    targets = _stacked_targets(union, teachers, X, y) if union.needs_teacher else None

    stack = StackedMLP.from_models(nets)
    if stack.spec.dropout:
        _set_up_dropout(stack, seeds, X, batch_size, num_epochs)
    # L_FEAT's adapters, one per model (a model without L_FEAT gets one it never uses)
    adapters = None
    if union.needs_features:
        width = targets.features.shape[-1]
        adapters = StackedLinear.from_linears(
            [feat_adapter(net, width, s).to(X.device) for net, s in zip(nets, seeds)])
    params = list(stack.parameters())
    if adapters is not None:
        params += list(adapters.parameters())
    optimizer = make_adam(params, lr, weight_decay, fused)
    generators = [seeded_generator(s) for s in seeds]
    rows = torch.arange(M, device=X.device)[:, None]
    history = History(terms, labels)
    stopping = (EarlyStopping(list(stack.parameters()), patience, labels)
                if val is not None else None)

    if 0 in snapshots:
        history.snapshots[0] = state_copies(nets)
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
                pred, adapted = forward_pass(stack, adapters, X_batch)
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
                history.snapshots[epoch] = state_copies(stack.to_models(like=nets))
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
