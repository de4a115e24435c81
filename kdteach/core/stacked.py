"""Many MLPs of one architecture held as one: weights stacked along a leading axis.

``StackedMLP.from_models([net_1, ..., net_M])`` holds M networks; its forward takes
inputs of shape ``(M, B, d)`` and runs all M with one batched matmul per layer
(``torch.baddbmm``). Adam — weight decay included — updates each element on its
own, so one Adam over the stack trains M networks exactly as M separate Adams
would. ``to_models()`` gives the M ordinary networks back.

``StackedLinear`` does the same for M linear layers of one shape: L_FEAT's adapters,
trained by the same Adam as the stack of students.
"""

from __future__ import annotations

import copy
import queue
import threading

import torch
import torch.nn.functional as F
from torch import nn

from kdteach.core.models import MLP, MLPSpec


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
