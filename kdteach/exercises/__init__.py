"""Self-study exercises: checkers that name the mistake, hints, and the reference solutions.

A learner writes a function in a notebook of ``notebooks/exercises/`` and asks for feedback:

>>> from kdteach import exercises
>>> exercises.names()[:2]
['hp_loss', 'weighted_loss']
>>> exercises.check("hp_loss", lambda s, t: ((s - t) ** 2).mean()).status
'correct'

``check`` runs the answer on many random cases (fixed random seeds, so the verdict is the
same every time) and compares it with the package's own code and with typical wrong
answers, so an incorrect answer hears *which* mistake it made, never the expected numbers.
``hint(name, level)`` gives a hint (level 2 is more concrete) and ``solution(name)`` the
reference solution, read from the package data file ``solutions.json`` that
:mod:`kdteach.publish.learner_notebooks` writes from the instructor notebooks.
``assert_correct(name, answer)`` is the autograded test of a course graded with nbgrader
(:mod:`kdteach.publish.assignments`): it raises AssertionError unless the check says correct.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Callable
from importlib import resources

import torch

from kdteach.exercises.catalogue import EXERCISES, Exercise, exercise
from kdteach.exercises.choosing_weights import grid_example
from kdteach.exercises.running import guarded
from kdteach.exercises.verdicts import (
    CORRECT,
    INCORRECT,
    NOT_ATTEMPTED,
    STATUSES,
    Incorrect,
    NotAttempted,
    Result,
    Text,
)

__all__ = [
    "CORRECT", "EXERCISES", "INCORRECT", "NOT_ATTEMPTED", "STATUSES", "Exercise", "Result",
    "Text", "assert_correct", "check", "grid_example", "hint", "names", "not_attempted",
    "solution",
]

SOLUTIONS_FILE = "solutions.json"  # package data: {function name: its reference source}


def names() -> list[str]:
    """The exercises, in the order of the lessons they follow."""
    return list(EXERCISES)


def not_attempted(name: str) -> Result:
    """The verdict on an untouched stub."""
    exercise(name)
    return Result(
        name,
        NOT_ATTEMPTED,
        f"`{name}` still raises NotImplementedError: replace the `raise` line with your code, "
        f"run that cell, then this one. Stuck? Try `exercises.hint(\"{name}\")`.",
    )


def check(name: str, answer: Callable) -> Result:
    """Run ``answer`` on the exercise's random cases; say whether it is right, and if not, why."""
    checked = exercise(name)
    if not callable(answer):
        raise TypeError(
            f"check({name!r}, answer) takes your function itself, e.g. check({name!r}, {name}), "
            f"not a {type(answer).__name__}"
        )
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        try:  # guarded: what the answer returned may raise too, when the checker reads it
            praise = guarded(name, checked.checker, answer)
        except NotAttempted:
            return not_attempted(name)
        except Incorrect as wrong:
            return Result(name, INCORRECT, str(wrong))
    return Result(name, CORRECT, praise)


def assert_correct(name: str, answer: Callable) -> None:
    """The autograded test of an exercise: nothing if :func:`check` says ``answer`` is
    correct, else AssertionError with the verdict, whose message names the mistake.

    An nbgrader test cell calls it. What the answer prints or warns while the checker runs
    it is dropped: nbgrader scores a cell with any output on stderr as failed, and a correct
    answer that warns must still pass (an incorrect one fails on its verdict alone)."""
    with (warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()),
          contextlib.redirect_stderr(io.StringIO())):
        warnings.simplefilter("ignore")
        result = check(name, answer)
    if result.status != CORRECT:
        raise AssertionError(repr(result))


def hint(name: str, level: int = 1) -> Text:
    """A hint for the exercise: level 1 points at the idea, level 2 at the code."""
    hints = exercise(name).hints
    if level not in (1, 2):
        raise ValueError(f"hint level must be 1 or 2, got {level!r}")
    text = hints[level - 1]
    return Text(text, f"**Hint {level} for `{name}`.** {text}")


def solution(name: str) -> Text:
    """The reference solution's source, as written in the instructor notebook."""
    exercise(name)
    data = resources.files(__name__).joinpath(SOLUTIONS_FILE).read_text(encoding="utf-8")
    sources = json.loads(data)
    if name not in sources:
        raise LookupError(
            f"{SOLUTIONS_FILE} of kdteach.exercises has no solution of {name}(): run "
            "`make exercises` to regenerate it from notebooks/solutions/"
        )
    source = sources[name]
    return Text(source, f"```python\n{source}\n```")
