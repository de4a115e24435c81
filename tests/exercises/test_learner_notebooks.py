"""The learner notebooks and solutions.json, generated from the instructor notebooks by
:mod:`kdteach.publish.learner_notebooks`, and the notebooks' structure."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from kdteach import exercises
from kdteach.publish.learner_notebooks import (
    BEGIN,
    CHECK_CALL,
    END,
    STUB,
    TEST_CALL,
    build,
    check_markers,
    learner_notebook,
    learner_view,
    main,
    solution_notebooks,
    solution_source,
)

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS_DIR = ROOT / "notebooks" / "solutions"
EXERCISES_DIR = ROOT / "notebooks" / "exercises"
PACKAGE_DATA = ROOT / "kdteach" / "exercises" / "solutions.json"

NAMES = exercises.names()  # pinned to the lessons' order in test_exercise_api.py
LESSONS = {
    "01_distillation_loss": "01_standard_teacher.ipynb",
    "02_distillation_step": "02_expert_teacher.ipynb",
    "03_choosing_weights": "03_grid_search.ipynb",
    "04_gradient_matching": "04_gradient_regularisation.ipynb",
    "05_jacobian_matching": "05_going_further.ipynb",
}
TEST_SOURCE = ("# nbgrader's test: raises AssertionError until the check above says correct\n"
               'exercises.assert_correct("{name}", {name})')


def solution_metadata(name: str) -> dict:
    return {"grade": False, "grade_id": name, "locked": False, "schema_version": 3,
            "solution": True, "task": False}


# --------------------------------------------------------------------------- the tool


def test_learner_notebooks_are_generated_from_the_solutions():
    """The committed learner notebooks and kdteach/exercises/solutions.json are up to date."""
    stale, orphans = build(
        check=True, solutions=SOLUTIONS_DIR, exercises=EXERCISES_DIR, package_data=PACKAGE_DATA
    )
    assert not stale, f"out of date, run `make exercises`: {stale}"
    assert not orphans


def solution_cell(source: str, name: str = "f"):
    """A code cell that nbgrader's metadata marks as the solution of ``name``."""
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = solution_metadata(name)
    return cell


def test_the_learner_view_leaves_the_stub_in_the_function():
    source = (
        f"import torch\n\n\ndef f(x):\n    '''Doc.'''\n    {BEGIN}\n    y = x\n    return y\n"
        f"    {END}\n"
    )
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": kernel})
    nb.cells = [solution_cell(source)]
    view = learner_view(nb)
    assert view.cells[0].source == f"import torch\n\n\ndef f(x):\n    '''Doc.'''\n    {STUB}\n"
    assert view.cells[0].metadata["deletable"] is False, "nbgrader's LockCells ran"
    assert nb.cells[0].source == source, "the notebook given stays as it was"


@pytest.mark.parametrize(
    "source, message",
    [
        (f"def f():\n    {BEGIN}\n    return 1\n", "never closed"),
        (f"def f():\n    return 1\n    {END}\n", "without a"),
        (f"{BEGIN}\nx = 1\n{END}\n", "inside a function's body"),
        (f"def f():\n    {BEGIN}\n    {BEGIN}\n    return 1\n    {END}\n", "line 3"),
        (f"def f():\n    return 1  {BEGIN}\n", "stand alone on its line"),
        (f"def f():\n    {BEGIN}\n    return 1\n\n\nx = 2\n{END}\n", "inside the same def"),
        ("def f(:\n", "not valid Python"),
    ],
)
def test_broken_markers_are_refused(source, message):
    with pytest.raises(ValueError, match=message):
        check_markers(source)


def test_markers_inside_a_function_pass():
    check_markers(f"def f():\n    '''Doc.'''\n    {BEGIN}\n    return 1\n    {END}\n")


def test_a_solution_outside_an_nbgrader_solution_cell_is_refused(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"def f():\n    {BEGIN}\n    return 1\n    {END}")]
    path = tmp_path / "demo.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="demo.ipynb, cell 1: .* not make it a solution cell"):
        learner_notebook(path)


def test_a_cell_that_calls_an_exercise_outside_a_check_is_refused(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        solution_cell(f"def hp_loss(s, t):\n    {BEGIN}\n    return s\n    {END}", "hp_loss"),
        nbformat.v4.new_code_cell("print(hp_loss(1, 2))"),
    ]
    path = tmp_path / "demo.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="demo.ipynb, cell 2: calls hp_loss outside a check"):
        learner_notebook(path)


def test_without_nbgrader_the_learner_view_names_the_teach_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "nbgrader", None)  # `import nbgrader` now fails
    with pytest.raises(ModuleNotFoundError, match=r'pip install "kdteach\[teach\]"'):
        learner_view(nbformat.v4.new_notebook())


# --------------------------------------------------------------------------- the notebooks


def notebook_pairs():
    return [(p, EXERCISES_DIR / p.name) for p in solution_notebooks(SOLUTIONS_DIR)]


def exercise_order(nb) -> list[str]:
    return [m.group(1) for c in nb.cells if (m := CHECK_CALL.search(c.source))]


def test_the_notebooks_follow_the_lessons_and_hold_every_exercise_once():
    assert [p.stem for p in solution_notebooks(SOLUTIONS_DIR)] == list(LESSONS)
    paths = solution_notebooks(SOLUTIONS_DIR)
    order = [n for p in paths for n in exercise_order(nbformat.read(p, 4))]
    assert order == NAMES


@pytest.mark.parametrize("path", sorted(SOLUTIONS_DIR.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_structure(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    first = nb.cells[0].source
    assert first.startswith("# Exercises ")
    lesson = LESSONS[path.stem]
    assert f"**Follows lesson** `{lesson}`" in first
    assert (path.parents[1] / lesson).exists()
    assert re.search(r"\*\*Time\.\*\* Running the notebook takes about \d+ s on a 2-core CPU",
                     first)
    assert re.search(r"about \d+ minutes of your own work", first)
    assert "you will be able to" in first and re.search(r"^- ", first, re.M)
    assert nb.cells[-1].cell_type == "markdown" and "## Takeaways" in nb.cells[-1].source
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert CHECK_CALL.search(code[-2].source) and TEST_CALL.search(code[-1].source), (
        "the notebook ends with a check and its test")
    graded = [c for c in nb.cells if "nbgrader" in c.metadata]
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert len(cell.source.strip().splitlines()) <= 15, cell.source
        if cell.cell_type == "code" and BEGIN in cell.source:
            prose = nb.cells[index - 1]
            assert prose.cell_type == "markdown" and re.search(r"\$[^$]+\$", prose.source)
            name = re.search(r"^def (\w+)\(", cell.source, re.M).group(1)
            assert cell.metadata["nbgrader"] == solution_metadata(name)
            check, test = nb.cells[index + 1], nb.cells[index + 2]
            assert check.source == f'# NBVAL_CHECK_OUTPUT\nexercises.check("{name}", {name})'
            assert "nbgrader" not in check.metadata, "the learner's check stays an ordinary cell"
            assert test.source == TEST_SOURCE.format(name=name)
            meta = test.metadata["nbgrader"]
            assert (meta["grade"], meta["locked"], meta["solution"]) == (True, True, False)
            assert meta["grade_id"] == f"test_{name}" and meta["schema_version"] == 3
            assert meta["points"] in (1, 2, 3, 4, 5), "a few points each"
            # JupyterLab's Run All and nbval carry on past the test's AssertionError
            assert test.metadata["tags"] == ["raises-exception"]
    assert len(graded) == 2 * len(exercise_order(nb)), "only solutions and tests are graded"


# prose naming a place in the repository: a path in it, or a make target
REPOSITORY_POINTER = re.compile(r"`(?:notebooks|docs|kdteach|tests|benchmarks)/[^`]*`|`make \w+")


@pytest.mark.parametrize("path", sorted(SOLUTIONS_DIR.glob("*.ipynb")), ids=lambda p: p.stem)
def test_prose_about_the_repository_also_serves_a_pip_install(path):
    """Where the prose points into the repository, it also says what to do after `pip
    install kdteach`, where `python -m kdteach lessons DIR` writes the notebooks."""
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "markdown" and REPOSITORY_POINTER.search(cell.source):
            assert "pip install kdteach" in cell.source, cell.source
            assert "`python -m kdteach lessons DIR`" in cell.source, cell.source
    first = nbformat.read(path, as_version=4).cells[0].source
    for where in (f"`notebooks/exercises/{path.name}`", f"`notebooks/solutions/{path.name}`",
                  "`DIR/exercises/`", "`DIR/solutions/`", "`--solutions`"):
        assert where in first, f"the first cell names {where}"


@pytest.mark.parametrize("solution, learner", notebook_pairs(), ids=lambda p: p.stem)
def test_stored_verdicts(solution, learner):
    """The instructor notebooks were run and say "correct"; the learner's say "not attempted"."""
    for path, status in ((solution, "correct"), (learner, "not attempted")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            assert cell.execution_count is not None, f"{path.name} was not run"
            kinds = [(o.output_type, o.get("name")) for o in cell.outputs]
            assert ("error", None) not in kinds and ("stream", "stderr") not in kinds
            if match := CHECK_CALL.search(cell.source):
                (out,) = cell.outputs
                assert out.data["text/plain"].startswith(f"{match.group(1)}: {status}.", 2)
            if TEST_CALL.search(cell.source):
                assert cell.outputs == [], "a test passes in silence, and a stub's is not run"


def test_learner_notebooks_hide_the_solutions():
    for solution, learner in notebook_pairs():
        code = "\n".join(c.source for c in nbformat.read(learner, 4).cells if c.cell_type == "code")
        assert BEGIN not in code and END not in code
        for name in exercise_order(nbformat.read(solution, 4)):
            body = solution_source(name, SOLUTIONS_DIR).split('"""', 2)[-1].strip()
            assert body.splitlines()[0] not in code, f"{learner.name} shows {name}'s solution"


# --------------------------------------------------------------------------- solutions.json


def test_solutions_json_holds_every_solution_sorted_and_stable():
    text = PACKAGE_DATA.read_text(encoding="utf-8")
    data = json.loads(text)
    assert list(data) == sorted(NAMES)
    assert text == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    for name in NAMES:
        assert data[name] == solution_source(name, SOLUTIONS_DIR)
        assert BEGIN not in data[name] and END not in data[name]


def _copies(tmp_path) -> list[str]:
    """The tool's folder arguments, on copies of the committed learner notebooks and
    solutions.json (the instructor notebooks are only read)."""
    shutil.copytree(EXERCISES_DIR, tmp_path / "exercises")
    shutil.copy(PACKAGE_DATA, tmp_path / "solutions.json")
    return [
        "--solutions", str(SOLUTIONS_DIR),
        "--exercises", str(tmp_path / "exercises"),
        "--package-data", str(tmp_path / "solutions.json"),
    ]


def test_check_names_a_stale_solutions_json_and_writing_fixes_it(tmp_path, capsys):
    args = _copies(tmp_path)
    stale = tmp_path / "solutions.json"
    stale.write_text('{"hp_loss": "def hp_loss(s, t):\n    return s"}\n', encoding="utf-8")
    assert main(["--check", *args]) == 1
    out = capsys.readouterr().out
    assert out == f"{stale}: out of date\n", out
    assert "return s" in stale.read_text(encoding="utf-8"), "--check writes nothing"
    assert main(args) == 0
    assert capsys.readouterr().out == f"{stale}: written\n"
    assert stale.read_text(encoding="utf-8") == PACKAGE_DATA.read_text(encoding="utf-8")
    assert main(["--check", *args]) == 0


def test_check_names_a_stale_learner_notebook(tmp_path, capsys):
    args = _copies(tmp_path)
    learner = tmp_path / "exercises" / "03_choosing_weights.ipynb"
    learner.write_text(learner.read_text(encoding="utf-8") + " ", encoding="utf-8")
    assert main(["--check", *args]) == 1
    assert capsys.readouterr().out == f"{learner}: out of date\n"


def test_folders_default_to_the_current_folder_not_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["--check"]) == 0
    monkeypatch.chdir(tmp_path)  # no notebooks/solutions here
    with pytest.raises(FileNotFoundError, match="no instructor notebooks in notebooks/solutions"):
        main(["--check"])
