"""The learner's exercise notebooks and the package's solutions, generated from the
instructor notebooks.

The instructor notebooks (``notebooks/solutions/``) are the one source, and valid nbgrader
source notebooks: each reference solution sits inside its function between a
``# BEGIN SOLUTION`` and an ``# END SOLUTION`` line, in a cell that nbgrader's metadata
marks as a solution cell (its ``grade_id`` is the function's name); under the function's
interactive check cell (``exercises.check("name", name)``) a locked, graded test cell calls
``exercises.assert_correct("name", name)``. This tool writes two things from them:

- the learner notebook of the same name in ``notebooks/exercises/``: the cells' sources are
  nbgrader's learner view (:func:`learner_view`, the same preprocessors and settings as
  ``nbgrader generate_assignment``), so every solution block is a stub that raises
  ``NotImplementedError``; unlike nbgrader's release, which clears every output, each cell
  keeps the output of the instructor's run (a self-study learner reads them before running
  anything), except the solution cells, and each check cell shows the verdict on an
  untouched stub;
- the package data file ``kdteach/exercises/solutions.json``: {function name: its complete
  source, markers removed}, which ``exercises.solution(name)`` reads.

    python -m kdteach.publish.learner_notebooks          # write both
    python -m kdteach.publish.learner_notebooks --check  # exit 1 if one is out of date

The folders come from ``--solutions``, ``--exercises`` and ``--package-data``; the defaults
are relative to the current folder, the repository root when ``make exercises`` runs it.
Reading the solutions needs only the standard library; writing the learner notebooks needs
``nbformat`` and nbgrader: ``pip install "kdteach[teach]"`` (the ``dev`` extra holds it).
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import re
import sys
from pathlib import Path

from kdteach.exercises import names, not_attempted
from kdteach.protocol.files import write_text_atomic
from kdteach.publish import missing_extra

SOLUTIONS_DIR = Path("notebooks/solutions")
EXERCISES_DIR = Path("notebooks/exercises")
PACKAGE_DATA = Path("kdteach/exercises/solutions.json")
TEACH = "kdteach[teach]"  # the extra that installs nbgrader
BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
MARKER_WORDS = {BEGIN: "BEGIN SOLUTION", END: "END SOLUTION"}  # a line holding them is a marker
STUB = 'raise NotImplementedError("replace this line with your code")'
CHECK_CALL = re.compile(r'^exercises\.check\("(\w+)", (\w+)\)$', re.M)
TEST_CALL = re.compile(r'^exercises\.assert_correct\("(\w+)", (\w+)\)$', re.M)
_DEF = re.compile(r"^def (\w+)\(")

# kdteach's options of nbgrader's preprocessors: the learner view uses them, and
# kdteach.publish.assignments writes them into a course's nbgrader_config.py
NBGRADER_OPTIONS = {
    "ClearSolutions": {
        "code_stub": {"python": STUB},
        "begin_solution_delimeter": BEGIN,  # sic: nbgrader's spelling
        "end_solution_delimeter": END,
    },
}
# the preprocessors of `nbgrader generate_assignment` that change what a learner sees, in
# its order; the others clear outputs, compute checksums or fill the gradebook
LEARNER_VIEW = ("LockCells", "ClearSolutions", "ClearHiddenTests", "ClearMarkScheme")


def solution_notebooks(solutions: Path = SOLUTIONS_DIR) -> list[Path]:
    """The instructor notebooks in ``solutions``, sorted by name."""
    paths = sorted(Path(solutions).glob("*.ipynb"))
    if not paths:
        raise FileNotFoundError(
            f"no instructor notebooks in {solutions}: the solutions live in the kdteach "
            "repository's notebooks/solutions/; run this from a checkout's root or pass "
            "--solutions"
        )
    return paths


def _code_sources(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as fh:
        cells = json.load(fh)["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def solution_sources(solutions: Path = SOLUTIONS_DIR) -> dict[str, str]:
    """{name: complete source, markers removed} of every function that holds a solution block."""
    found: dict[str, str] = {}
    for path in solution_notebooks(solutions):
        for source in _code_sources(path):
            for node in ast.parse(source).body:
                if not isinstance(node, ast.FunctionDef):
                    continue
                lines = source.split("\n")[node.lineno - 1 : node.end_lineno]
                if not any(ln.strip() == BEGIN for ln in lines):
                    continue
                if node.name in found:
                    raise ValueError(f"{path.name}: a second solution of {node.name}()")
                found[node.name] = "\n".join(ln for ln in lines if ln.strip() not in (BEGIN, END))
    return found


def solution_source(name: str, solutions: Path = SOLUTIONS_DIR) -> str:
    """The complete function ``name`` as the instructor notebook defines it, markers removed."""
    sources = solution_sources(solutions)
    if name not in sources:
        raise LookupError(f"no instructor notebook in {solutions} defines {name}()")
    return sources[name]


def solutions_json(solutions: Path = SOLUTIONS_DIR) -> str:
    """The text of the package data file: every exercise's solution, sorted by name."""
    sources = solution_sources(solutions)
    if missing := [n for n in names() if n not in sources]:
        raise LookupError(f"no instructor notebook in {solutions} solves {', '.join(missing)}")
    return json.dumps(sources, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def check_markers(source: str) -> None:
    """ValueError unless every solution block of a cell's ``source`` lies in a function's
    body: a ``# BEGIN SOLUTION`` line, then an ``# END SOLUTION`` line, each a line of its
    own (nbgrader takes any line that holds the words for a marker), never nested, inside
    the same ``def``. The learner view replaces each block by the stub, and solutions.json
    holds the function around it."""
    try:
        statements = ast.parse(source).body
    except SyntaxError as err:
        raise ValueError(f"line {err.lineno}: the cell is not valid Python ({err.msg})") from None
    opened = None
    for number, line in enumerate(source.split("\n"), start=1):
        marker = next((m for m, words in MARKER_WORDS.items() if words in line), None)
        if marker is None:
            continue
        if line.strip() != marker:
            raise ValueError(f"line {number}: {marker!r} must stand alone on its line")
        # the top-level statement the line belongs to: the last one that starts before it
        inside = next((n for n in reversed(statements) if n.lineno < number), None)
        if marker == BEGIN:
            in_body = isinstance(inside, ast.FunctionDef) and number <= inside.end_lineno
            if opened is not None or not in_body:
                raise ValueError(
                    f"line {number}: {BEGIN!r} must open a block inside a function's body, "
                    f"after its def line and before a matching {END!r}"
                )
            opened = inside
        elif opened is None:
            raise ValueError(f"line {number}: {END!r} without a {BEGIN!r} before it")
        elif inside is not opened:
            raise ValueError(f"line {number}: {END!r} must close its block inside the same def")
        else:
            opened = None
    if opened is not None:
        raise ValueError(f"a {BEGIN!r} block is never closed by {END!r}")


def _holds_solution(cell) -> bool:
    return cell.cell_type == "code" and any(w in cell.source for w in MARKER_WORDS.values())


def learner_view(nb):
    """nbgrader's learner view of the notebook ``nb`` (a changed copy; ``nb`` stays as it
    was): what ``nbgrader generate_assignment`` does to the cells' sources and locks, with
    kdteach's options (:data:`NBGRADER_OPTIONS`), and nothing else: the outputs stay."""
    try:
        from nbgrader import preprocessors
    except ImportError as exc:
        raise missing_extra(exc, __name__, extra=TEACH) from exc
    view, resources = copy.deepcopy(nb), {}
    for name in LEARNER_VIEW:
        step = getattr(preprocessors, name)(**NBGRADER_OPTIONS.get(name, {}))
        view, resources = step.preprocess(view, resources)
    return view


def _stub_output(name: str) -> dict:
    result = not_attempted(name)
    return {
        "output_type": "execute_result",
        "execution_count": None,
        "metadata": {},
        "data": {
            "text/plain": repr(result),
            "text/html": result._repr_html_(),
            "text/markdown": result._repr_markdown_(),
        },
    }


def learner_notebook(solution_path: Path):
    """The learner's version of one instructor notebook (an ``nbformat`` notebook).

    The sources are nbgrader's learner view (:func:`learner_view`); the solution cells lose
    their outputs, each check cell shows the verdict on a stub, and every other cell keeps
    its output. A cell holding a solution block must be an nbgrader solution cell, with its
    blocks inside a function (:func:`check_markers`). A cell other than a check or a test
    that calls an exercise function would show the solution's output, so it is refused.
    """
    import nbformat

    solution_path = Path(solution_path)
    nb = nbformat.read(solution_path, as_version=4)
    for number, cell in enumerate(nb.cells, start=1):
        if not _holds_solution(cell):
            continue
        where = f"{solution_path.name}, cell {number}"
        try:
            check_markers(cell.source)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        if not cell.metadata.get("nbgrader", {}).get("solution"):
            raise ValueError(
                f"{where}: holds a solution block, but its nbgrader metadata does not make it "
                "a solution cell (solution: true, with the function's name as grade_id)"
            )
    learner = learner_view(nb)
    defined = set()
    for number, (cell, source) in enumerate(zip(learner.cells, nb.cells), start=1):
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)  # run times of the instructor notebook
        if _holds_solution(source):
            defined.update(_defs(source.source))
            cell.outputs = []
        elif check := CHECK_CALL.search(cell.source):
            cell.outputs = [nbformat.from_dict(_stub_output(check.group(1)))]
        elif TEST_CALL.search(cell.source):
            continue
        elif used := [n for n in sorted(defined) if re.search(rf"\b{n}\(", cell.source)]:
            raise ValueError(
                f"{solution_path.name}, cell {number}: calls {', '.join(used)} outside a check "
                "cell; in the learner notebook that raises NotImplementedError"
            )
    nbformat.validate(learner)
    return learner


def _defs(source: str) -> list[str]:
    return [m.group(1) for m in (_DEF.match(line) for line in source.split("\n")) if m]


def build(
    check: bool = False,
    solutions: Path = SOLUTIONS_DIR,
    exercises: Path = EXERCISES_DIR,
    package_data: Path = PACKAGE_DATA,
) -> tuple[list[Path], list[Path]]:
    """Write each learner notebook and the solutions file (with ``check``, only compare).

    Returns the files that differed from the generated ones, and the learner notebooks that
    have no instructor notebook (never deleted here: remove them by hand).
    """
    import nbformat

    solutions, exercises, package_data = Path(solutions), Path(exercises), Path(package_data)
    sources = solution_notebooks(solutions)
    wanted = [
        (exercises / path.name, nbformat.writes(learner_notebook(path)) + "\n")
        for path in sources
    ]
    wanted.append((package_data, solutions_json(solutions)))
    stale = []
    for target, text in wanted:
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if text != current:
            stale.append(target)
            if not check:
                target.parent.mkdir(parents=True, exist_ok=True)
                write_text_atomic(target, text)
    notebook_names = {p.name for p in sources}
    orphans = sorted(p for p in exercises.glob("*.ipynb") if p.name not in notebook_names)
    return stale, orphans


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kdteach.publish.learner_notebooks",
        description="Generate the learner notebooks and the package's solutions.json from "
        "the instructor notebooks.",
    )
    parser.add_argument(
        "--check", action="store_true", help="only report the files that are out of date"
    )
    parser.add_argument(
        "--solutions", type=Path, default=SOLUTIONS_DIR,
        help=f"the instructor notebooks (default: {SOLUTIONS_DIR})",
    )
    parser.add_argument(
        "--exercises", type=Path, default=EXERCISES_DIR,
        help=f"the learner notebooks to write (default: {EXERCISES_DIR})",
    )
    parser.add_argument(
        "--package-data", type=Path, default=PACKAGE_DATA,
        help=f"the solutions file to write (default: {PACKAGE_DATA})",
    )
    args = parser.parse_args(argv)
    stale, orphans = build(
        check=args.check,
        solutions=args.solutions,
        exercises=args.exercises,
        package_data=args.package_data,
    )
    for path in stale:
        print(f"{path}: {'out of date' if args.check else 'written'}")
    for path in orphans:
        print(f"{path}: no instructor notebook of this name; remove it")
    if args.check and stale:
        print("run `make exercises` to regenerate them", file=sys.stderr)
    return 1 if orphans or (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
