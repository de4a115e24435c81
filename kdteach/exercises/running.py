"""Running a learner's answer: what it raises becomes a verdict, the arguments it changed
in place are named, and the loss it returns is followed back to the student.

Every checker calls the answer through :func:`call` and computes the right values from
tensors the answer never saw (before the call, or on copies), so an answer that overwrites
its arguments cannot move the target it is compared with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from kdteach.exercises.verdicts import Incorrect, NotAttempted

# --------------------------------------------------------------------------- what it raises


def guarded(name: str, fn: Callable, *args):
    """``fn(*args)``, where nothing the learner's code raises escapes: NotImplementedError
    (the untouched stub) is :class:`NotAttempted`, anything else, SystemExit included,
    :class:`Incorrect` naming it. Only KeyboardInterrupt, the learner stopping it, and the
    checkers' own signals pass through."""
    try:
        return fn(*args)
    except (Incorrect, NotAttempted, KeyboardInterrupt):
        raise
    except NotImplementedError:
        raise NotAttempted from None
    except BaseException as err:  # the learner's code may raise anything: name it
        raise Incorrect(raised(name, err)) from None


def raised(name: str, err: BaseException) -> str:
    """``"`name` raised ValueError: the first line of its message"``."""
    try:
        lines = str(err).strip().splitlines()
    except Exception:  # an exception of the learner's own, whose message itself fails
        lines = []
    said = f": {lines[0]}" if lines else ""
    if isinstance(err, SystemExit):
        said += " (`sys.exit()` and `exit()` would stop the whole program: return a value)"
    return f"`{name}` raised {type(err).__name__}{said}"


# --------------------------------------------------------------------------- what it changed


def call(name: str, answer: Callable, /, *, may_change: Sequence[str] = (), **args):
    """``answer`` on ``args``, passed by position in their order; their names are the
    exercise's (the learner's may differ), for the messages. An argument the answer changed
    in place (a tensor's values or shape, a model's weights or buffers, a list's or a dict's
    items) is :class:`Incorrect`, unless it is named in ``may_change``."""
    before = {arg: _state(value) for arg, value in args.items() if arg not in may_change}
    with torch.enable_grad():  # restored, whatever the answer switches off
        out = guarded(name, answer, *args.values())
    for arg, kept in before.items():
        if not _equal(kept, _state(args[arg])):
            raise Incorrect(_changed(name, arg, args[arg]))
    return out


def _state(value):
    """A copy of everything about ``value`` that the answer must leave as it was."""
    if isinstance(value, torch.nn.Module):
        value = value.state_dict()
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {key: _state(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_state(item) for item in value]
    return value  # numbers, strings and flags cannot change in place


def _equal(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(_equal(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_equal, a, b))
    return bool(a == b)


def _changed(name: str, arg: str, value) -> str:
    said = f"`{name}` changed its argument `{arg}` in place"
    if isinstance(value, torch.nn.Module):
        return (f"{said} (its weights or buffers): the caller's model must stay as it was, "
                "with the weights it came with. Weights change only in the optimiser's step "
                "of the training loop, and only the student's.")
    if isinstance(value, torch.Tensor):
        return (f"{said}: the caller's tensors must stay as they were, or whatever uses them "
                "next (the other loss term, the next epoch) works on values your function "
                "overwrote. Compute new tensors (`a - b`, not `a -= b`, `a.sub_(b)`, "
                "`a.squeeze_()` or `a[...] = ...`), or `.clone()` first.")
    return (f"{said}: the caller's data must stay as they were, or whatever uses them next "
            "works on values your function changed. Work on a copy (`sorted(x)`, `list(x)`, "
            "`np.array(x)`) instead of `sort()`, `pop()`, `append()` or `x[i] = ...`.")


# --------------------------------------------------------------------------- its gradient


def gradient(loss: torch.Tensor, inputs: Iterable[torch.Tensor]) -> torch.Tensor | None:
    """∂loss/∂inputs flattened into one float64 tensor, or None where the gradient does
    not reach ``inputs``: no path back to them, or zero everywhere."""
    inputs = list(inputs)
    found = {}
    reachable = [x for x in inputs if x.requires_grad]
    if loss.requires_grad and reachable:
        grads = torch.autograd.grad(loss.sum(), reachable, retain_graph=True, allow_unused=True)
        found = {id(x): g for x, g in zip(reachable, grads) if g is not None}
    flat = torch.cat([found.get(id(x), torch.zeros_like(x)).detach().flatten().double()
                      for x in inputs])
    return flat if bool(flat.abs().sum() > 0) else None


def student_gradient(name: str, loss: torch.Tensor, inputs: Iterable[torch.Tensor],
                     what: str, cut_off: str | None = None) -> torch.Tensor:
    """The gradient of the answer's ``loss`` with respect to ``inputs``, the student's
    predictions or weights (``what`` names them); :class:`Incorrect` if the answer called
    ``.backward()`` itself, or if the gradient does not reach them (``cut_off`` says so)."""
    inputs = list(inputs)
    if any(x.grad is not None for x in inputs):
        raise Incorrect(
            f"`{name}` called `.backward()` itself, so gradients already landed in {what}: "
            "return the loss, and let the training step call `.backward()` once."
        )
    grad = gradient(loss, inputs)
    if grad is None:
        raise Incorrect(cut_off or (
            f"`{name}` returned a value cut off from the computation graph (by `.item()`, "
            "`.detach()`, NumPy, `torch.no_grad()` or a new `torch.tensor(...)` holding the "
            f"number): no gradient reaches {what}, so it would train nothing."
        ))
    return grad


def wrong_gradient(name: str, what: str, term: str) -> str:
    """The message for an answer with the right values and the wrong gradient."""
    return (
        f"`{name}` has the right value but not the right gradient with respect to {what}: "
        f"part of it is cut off from the graph (`.detach()`, `.item()`, NumPy) or added as a "
        f"constant, so training on it would not follow {term}."
    )
