"""Shared set-up of the exercises' tests: the repository's notebooks run as a kernel would,
and the assertion that an answer is incorrect for the reason meant."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from kdteach import exercises
from kdteach.publish.learner_notebooks import CHECK_CALL, TEST_CALL, solution_notebooks

ROOT = Path(__file__).resolve().parents[2]
NUMBER = re.compile(r"\d\.\d|\de-\d")  # a printed float: a message must never contain one


def run_code_cells(path) -> dict:
    """A notebook's code cells run in one namespace, as a kernel would; checks and the
    autograded tests are skipped."""
    namespace: dict = {}
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code" and not (CHECK_CALL.search(cell.source)
                                             or TEST_CALL.search(cell.source)):
            exec(compile(cell.source, str(path), "exec"), namespace)
    return namespace


@pytest.fixture(scope="session")
def solved() -> dict:
    """Every name the instructor notebooks define, the reference solutions among them."""
    paths = solution_notebooks(ROOT / "notebooks" / "solutions")
    return {k: v for p in paths for k, v in run_code_cells(p).items()}


@pytest.fixture(scope="session")
def stubs() -> dict:
    """Every name the learner notebooks define, the untouched stubs among them."""
    paths = sorted((ROOT / "notebooks" / "exercises").glob("*.ipynb"))
    return {k: v for p in paths for k, v in run_code_cells(p).items()}


def _incorrect(name, answer, fragment):
    result = exercises.check(name, answer)
    assert result.status == exercises.INCORRECT, result
    assert fragment in result.message, result
    assert not NUMBER.search(result.message), f"the message shows a number: {result.message}"
    return result


@pytest.fixture(scope="session")
def incorrect():
    """``incorrect(name, answer, fragment)``: check that the verdict is "incorrect", that its
    message holds ``fragment`` and shows no number; returns the verdict."""
    return _incorrect

