"""Verdicts: the statuses, :class:`Result`, :class:`Text`, the signals a checker raises, and
the comparisons every checker shares (:class:`Tally` names the mistake an answer makes)."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

CORRECT, INCORRECT, NOT_ATTEMPTED = "correct", "incorrect", "not attempted"
STATUSES = (CORRECT, INCORRECT, NOT_ATTEMPTED)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, repr=False)
class Result:
    """The verdict on one answer: ``status`` is one of :data:`STATUSES`, ``message`` says why."""

    name: str
    status: str
    message: str

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")

    def __repr__(self) -> str:
        return f"{_ICONS[self.status]} {self.name}: {self.status}. {self.message}"

    def _repr_markdown_(self) -> str:
        return f"**{_ICONS[self.status]} `{self.name}`: {self.status}.** {self.message}"

    def _repr_html_(self) -> str:
        message = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(self.message))
        return (
            f'<div style="border-left: 6px solid {_COLOURS[self.status]}; '
            f'padding: 0.4em 0.8em; margin: 0.3em 0">'
            f"<strong>{_ICONS[self.status]} <code>{html.escape(self.name)}</code>: "
            f"{self.status}.</strong> {message}</div>"
        )


_ICONS = {CORRECT: "✔", INCORRECT: "✘", NOT_ATTEMPTED: "○"}
_COLOURS = {CORRECT: "#2e7d32", INCORRECT: "#c62828", NOT_ATTEMPTED: "#9e9e9e"}


class Text(str):
    """A string that a notebook shows as Markdown (hints and solutions)."""

    markdown: str = ""

    def __new__(cls, text: str, markdown: str):
        obj = super().__new__(cls, text)
        obj.markdown = markdown
        return obj

    def _repr_markdown_(self) -> str:
        return self.markdown


# --------------------------------------------------------------------------- signals


class Incorrect(Exception):
    """Raised inside a checker: the answer is wrong, and the message says how."""


class NotAttempted(Exception):
    """Raised inside a checker: the answer still raises NotImplementedError."""


# --------------------------------------------------------------------------- comparisons


def loss_value(name: str, out, batch: int | None = None) -> float:
    """A loss the answer returned, as a float: it must be a one-element tensor. A
    ``(batch, batch)`` table is named as the broadcasting mistake it comes from."""
    if not isinstance(out, torch.Tensor):
        raise Incorrect(
            f"`{name}` returned a {type(out).__name__}, not a tensor. Return the tensor itself: "
            "a plain number cannot be backpropagated."
        )
    if batch is not None and tuple(out.shape) == (batch, batch):
        raise Incorrect(f"`{name}` returned a tensor of shape {tuple(out.shape)}, not a single "
                        f"number, because it {broadcast(batch)}")
    if out.numel() != 1:
        raise Incorrect(
            f"`{name}` returned a tensor of shape {tuple(out.shape)}, not a single number: "
            "average over the whole batch."
        )
    return float(out.detach())


def broadcast(n: int, where: str = "") -> str:
    """The classic shape bug, for a batch of ``n``: a ``(n,)`` against a ``(n, 1)``."""
    return (
        f"compared tensors of shapes ({n},) and ({n}, 1){where}: broadcasting made an "
        f"({n}, {n}) table of every prediction against every target, instead of pairing each "
        f"sample with its own. Both arguments are ({n}, 1): subtract them as they are, or "
        "squeeze both (a `.squeeze()`, `.flatten()` or `.T` on one side only causes this)."
    )


def values_close(a: float, b: float, rtol: float = 1e-4, atol: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rtol, abs_tol=atol)


def tensors_close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-3) -> bool:
    a, b = a.detach().double(), b.detach().double()
    return a.shape == b.shape and bool((a - b).norm() <= rtol * b.norm() + 1e-12)


class Tally:
    """An answer's values over all cases, against the right ones and typical mistakes.

    ``add`` takes one case: the answer's value, the right value, and ``(message, value)``
    pairs, one per typical mistake, in the same order in every case (a mistake is known by
    its place, so its message may name the case, e.g. its shapes). ``verdict`` passes if
    every case was right; otherwise it names the first mistake that agrees with the answer
    in *every* case (one case alone can agree with a mistake by chance), in the words of
    the last case, or falls back to ``generic``.
    """

    def __init__(self, generic: str, close: Callable = None):
        self.generic = generic
        self.close = close or values_close
        self.all_right = True
        self.agree: set | None = None
        self.messages: list = []

    def add(self, value, right, variants: list) -> None:
        self.all_right = self.all_right and self.close(value, right)
        agree = {i for i, (_, v) in enumerate(variants) if self.close(value, v)}
        self.agree = agree if self.agree is None else self.agree & agree
        self.messages = [message for message, _ in variants]

    def verdict(self) -> None:
        if not self.all_right:
            raise Incorrect(self.messages[min(self.agree)] if self.agree else self.generic)
