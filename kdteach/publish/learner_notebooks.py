"""The learner's exercise notebooks, generated from the instructor notebooks.

The instructor notebooks in ``notebooks/solutions/`` are the one source: each reference
solution sits inside its function between a ``# BEGIN SOLUTION`` and an ``# END SOLUTION``
line. The learner notebook of the same name in ``notebooks/exercises/`` is that notebook
with every such block replaced by a stub that raises ``NotImplementedError`` and each check
cell (``exercises.check("name", name)``) showing the verdict on an untouched stub; every other
cell keeps its source and its output.

    python -m kdteach.publish.learner_notebooks          # write notebooks/exercises/
    python -m kdteach.publish.learner_notebooks --check  # exit 1 if one is out of date

Reading a solution (:func:`solution_source`) needs only the standard library; writing the
learner notebooks needs ``nbformat`` (a development dependency).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from kdteach.exercises import not_attempted

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS_DIR = ROOT / "notebooks" / "solutions"
EXERCISES_DIR = ROOT / "notebooks" / "exercises"
BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
CHECK_CALL = re.compile(r'^exercises\.check\("(\w+)", (\w+)\)$', re.M)
_DEF = re.compile(r"^def (\w+)\(")


def solution_notebooks() -> list[Path]:
    paths = sorted(SOLUTIONS_DIR.glob("*.ipynb"))
    if not paths:
        raise FileNotFoundError(
            f"no instructor notebooks in {SOLUTIONS_DIR}: the solutions live in the kdteach "
            "repository's notebooks/solutions/, so work in a checkout of it "
            "(installed with `pip install -e .`)"
        )
    return paths


def _code_sources(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as fh:
        cells = json.load(fh)["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def solution_source(name: str) -> str:
    """The complete function ``name`` as the instructor notebook defines it, markers removed."""
    for path in solution_notebooks():
        for source in _code_sources(path):
            for node in ast.parse(source).body:
                if isinstance(node, ast.FunctionDef) and node.name == name:
                    lines = source.split("\n")[node.lineno - 1 : node.end_lineno]
                    return "\n".join(ln for ln in lines if ln.strip() not in (BEGIN, END))
    raise LookupError(f"no instructor notebook in {SOLUTIONS_DIR} defines {name}()")


def strip_solutions(source: str) -> str:
    """``source`` with each solution block replaced by a stub raising NotImplementedError."""
    out, function, inside = [], None, False
    for number, line in enumerate(source.split("\n"), start=1):
        marker = line.strip()
        if match := _DEF.match(line):
            function = match.group(1)
        if marker == BEGIN:
            if inside or function is None:
                raise ValueError(
                    f"line {number}: {BEGIN!r} must open a block inside a function's body, "
                    f"after its def line and before a matching {END!r}"
                )
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f'{indent}raise NotImplementedError("{function}: write your code here")')
        elif marker == END:
            if not inside:
                raise ValueError(f"line {number}: {END!r} without a {BEGIN!r} before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"a {BEGIN!r} block is never closed by {END!r}")
    return "\n".join(out)


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

    Solution blocks become stubs and each check cell shows the verdict on a stub; every
    other cell, and its output, stays as it is. A cell other than a check that calls an
    exercise function would show the solution's output, so it is refused.
    """
    import nbformat

    nb = nbformat.read(solution_path, as_version=4)
    defined = set()
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)  # run times of the instructor notebook
        learner_source = strip_solutions(cell.source)
        if learner_source != cell.source:
            defined.update(_defs(cell.source))
            cell.source = learner_source
            cell.outputs = []
        elif check := CHECK_CALL.search(cell.source):
            cell.outputs = [nbformat.from_dict(_stub_output(check.group(1)))]
        elif used := [n for n in sorted(defined) if re.search(rf"\b{n}\(", cell.source)]:
            raise ValueError(
                f"{solution_path.name}, cell {number}: calls {', '.join(used)} outside a check "
                "cell; in the learner notebook that raises NotImplementedError"
            )
    nbformat.validate(nb)
    return nb


def _defs(source: str) -> list[str]:
    return [m.group(1) for m in (_DEF.match(line) for line in source.split("\n")) if m]


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def build(check: bool = False) -> tuple[list[Path], list[Path]]:
    """Write each learner notebook (with ``check``, only compare).

    Returns the learner notebooks that differed from the generated ones, and those that
    have no instructor notebook (never deleted here: remove them by hand).
    """
    import nbformat

    sources = solution_notebooks()
    stale = []
    for solution_path in sources:
        target = EXERCISES_DIR / solution_path.name
        text = nbformat.writes(learner_notebook(solution_path)) + "\n"
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if text != current:
            stale.append(target)
            if not check:
                _atomic_write(target, text)
    names = {p.name for p in sources}
    orphans = sorted(p for p in EXERCISES_DIR.glob("*.ipynb") if p.name not in names)
    return stale, orphans


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kdteach.publish.learner_notebooks",
        description="Generate notebooks/exercises/ from the instructor notebooks.",
    )
    parser.add_argument(
        "--check", action="store_true", help="only report learner notebooks that are out of date"
    )
    args = parser.parse_args(argv)
    stale, orphans = build(check=args.check)
    for path in stale:
        print(f"{path.relative_to(ROOT)}: {'out of date' if args.check else 'written'}")
    for path in orphans:
        print(f"{path.relative_to(ROOT)}: no instructor notebook of this name; remove it")
    if args.check and stale:
        print("run `make exercises` to regenerate the learner notebooks", file=sys.stderr)
    return 1 if orphans or (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
