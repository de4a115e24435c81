"""The exercises' public API: names, check, verdicts, hints and solutions.

Every reference solution (run from the instructor notebooks) must pass its checker and every
untouched stub (run from the learner notebooks) must be "not attempted".
"""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

import pytest
import torch

from kdteach import exercises
from kdteach.publish.learner_notebooks import BEGIN, END, solution_source

ROOT = Path(__file__).resolve().parents[2]

NAMES = [
    "hp_loss",
    "weighted_loss",
    "paired_t_test",
    "distill_step",
    "pick_weights",
    "input_gradient",
    "lgr_loss",
    "jacobian_matching",
]
NUMBER = re.compile(r"\d\.\d|\de-\d")  # a printed float: a message must never contain one


def test_names_follow_the_lessons():
    assert exercises.names() == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_reference_solution_is_correct(solved, name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would land in the notebook's output
        result = exercises.check(name, solved[name])
    assert result.status == exercises.CORRECT, result
    assert not NUMBER.search(result.message)


@pytest.mark.parametrize("name", NAMES)
def test_untouched_stubs_are_not_attempted(stubs, name):
    result = exercises.check(name, stubs[name])
    assert result.status == exercises.NOT_ATTEMPTED, result
    assert "NotImplementedError" in result.message
    assert result == exercises.not_attempted(name)


def test_a_stub_that_a_function_calls_is_not_attempted_either():
    def weighted_loss(s, y, t, hard, hp):
        raise NotImplementedError  # e.g. a hp_loss the learner has not written yet

    assert exercises.check("weighted_loss", weighted_loss).status == exercises.NOT_ATTEMPTED


def test_any_other_exception_is_incorrect_and_named():
    def hp_loss(s, t):
        raise ValueError("shapes do not match")

    result = exercises.check("hp_loss", hp_loss)
    assert result.status == exercises.INCORRECT
    assert "ValueError: shapes do not match" in result.message


def test_check_refuses_unknown_names_and_non_functions():
    with pytest.raises(ValueError, match="unknown exercise 'hp'; the exercises are: hp_loss"):
        exercises.check("hp", lambda s, t: s)
    with pytest.raises(TypeError, match=r"check\('hp_loss', hp_loss\)"):
        exercises.check("hp_loss", 0.5)


def test_checks_are_reproducible_and_leave_the_random_state_alone(solved):
    def wrong(s, t):
        return (s - t).abs().mean()

    torch.manual_seed(7)
    before = torch.get_rng_state()
    first = exercises.check("distill_step", solved["distill_step"])
    assert torch.equal(torch.get_rng_state(), before)
    assert exercises.check("distill_step", solved["distill_step"]) == first
    assert exercises.check("hp_loss", wrong) == exercises.check("hp_loss", wrong)


def test_result_shows_as_text_html_and_markdown():
    result = exercises.Result("hp_loss", exercises.INCORRECT, "`a < b` is wrong")
    assert repr(result) == "✘ hp_loss: incorrect. `a < b` is wrong"
    assert "<code>a &lt; b</code>" in result._repr_html_()
    assert "incorrect" in result._repr_html_()
    assert result._repr_markdown_().startswith("**✘ `hp_loss`: incorrect.**")
    with pytest.raises(ValueError, match="status must be one of correct, incorrect"):
        exercises.Result("hp_loss", "wrong", "")


@pytest.mark.parametrize("name", NAMES)
def test_hints_get_more_concrete(name):
    one, two = exercises.hint(name), exercises.hint(name, level=2)
    assert one and two and one != two
    assert f"Hint 2 for `{name}`" in two._repr_markdown_()


def test_hint_refuses_bad_levels_and_names():
    with pytest.raises(ValueError, match="hint level must be 1 or 2, got 3"):
        exercises.hint("hp_loss", level=3)
    with pytest.raises(ValueError, match="unknown exercise"):
        exercises.hint("hp")


@pytest.mark.parametrize("name", NAMES)
def test_solution_is_the_reference_function(solved, name):
    source = exercises.solution(name)
    compile(source, "<solution>", "exec")
    tree = ast.parse(source)
    assert [node.name for node in tree.body] == [name]
    assert BEGIN not in source and END not in source
    assert source._repr_markdown_().startswith("```python\n")
    assert solution_source(name, ROOT / "notebooks" / "solutions") == source
