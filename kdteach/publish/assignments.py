"""The exercises as an nbgrader course: one assignment per exercise notebook, autograded.

    python -m kdteach.publish.assignments --course DIR [--solutions DIR] [--course-id ID]

builds, in the folder ``DIR``, what nbgrader works on:

- ``source/<assignment>/<assignment>.ipynb``: a copy of each solved exercise notebook, which
  is an nbgrader source notebook as it stands: its solutions are marked, and under each
  check a locked test cell (``exercises.assert_correct``) is worth a few points. The copies
  are rewritten on every run: edit the solved notebooks, not ``source/``;
- ``nbgrader_config.py``, unless ``DIR`` has one: the course id and kdteach's options of
  nbgrader's preprocessors (:data:`~kdteach.publish.learner_notebooks.NBGRADER_OPTIONS`),
  so that the released notebooks show what kdteach's learner notebooks show. A config
  already there is the lecturer's own and is kept as it is;
- ``release/<assignment>/``: ``nbgrader generate_assignment`` run on each assignment, and
  the gradebook ``gradebook.db``. The course is then ready for ``nbgrader
  release_assignment``, or for the formgrader.

One assignment per exercise notebook (``01_distillation_loss`` … ``05_jacobian_matching``),
not one assignment holding all five, because each notebook follows one lesson: a course
releases, collects and grades each set after its lesson, with its own deadline, and a
learner's feedback on one set does not wait for the last lesson.

The solved notebooks default to the course's own: ``notebooks/solutions/`` in a clone of
the repository, the packaged copy after ``pip install "kdteach[teach]"``. Bad input prints
one line and exits with code 2; a failed nbgrader command prints nbgrader's last line and
exits with code 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from kdteach.publish import missing_extra
from kdteach.publish.learner_notebooks import NBGRADER_OPTIONS, TEACH

CONFIG = "nbgrader_config.py"
COURSE_ID = "kdteach"
CELL_TIMEOUT_S = 120  # one cell of an autograded notebook; nbgrader's default is 30 s
_COURSE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception): ")
EXIT_FAILED, EXIT_USAGE = 1, 2


class BadInput(ValueError):
    """The command's input cannot make a course: the message says what to change."""


class NbgraderFailed(RuntimeError):
    """An nbgrader command failed: the message holds its last line."""


def nbgrader_installed() -> bool:
    """Whether this Python can run nbgrader (without importing it: that takes seconds)."""
    return importlib.util.find_spec("nbgrader") is not None


def default_solutions() -> Path:
    """The folder of the course's solved exercise notebooks: the clone's or the installed
    package's (where ``python -m kdteach lessons DIR --solutions`` copies them from)."""
    from kdteach.lesson.course_files import course_files

    try:
        files = course_files(solutions=True)
    except FileNotFoundError as err:
        raise BadInput(f"{err}; or pass --solutions") from None
    solved = [path for path, name in files if name.startswith("solutions/")]
    if not solved:
        raise BadInput("this installation of kdteach holds no solved exercise notebooks: "
                       "pass --solutions")
    return solved[0].parent


def graded_cells(path: Path) -> dict[str, float]:
    """{grade_id: points} of the autograded test cells of the notebook at ``path``."""
    try:
        cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise BadInput(f"{path} is not a readable notebook ({err})") from None
    tests = {}
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            tests[meta.get("grade_id", "")] = float(meta.get("points", 0))
    return tests


def source_notebooks(solutions: Path) -> list[Path]:
    """The solved notebooks in ``solutions``, each checked to hold an autograded test."""
    solutions = Path(solutions)
    if not solutions.is_dir():
        raise BadInput(f"{solutions} is not a folder of solved exercise notebooks")
    paths = sorted(solutions.glob("*.ipynb"))
    if not paths:
        raise BadInput(f"{solutions} holds no notebook (*.ipynb)")
    for path in paths:
        if not graded_cells(path):
            raise BadInput(
                f"{path} has no autograded test cell (nbgrader metadata grade: true, with "
                "points): it is not an nbgrader source notebook"
            )
    return paths


def config_text(course_id: str) -> str:
    """The text of a new course's nbgrader_config.py."""
    lines = [
        '"""nbgrader\'s settings for the kdteach exercises, written by',
        "python -m kdteach.publish.assignments; run nbgrader from this folder.",
        "",
        "The ClearSolutions options make the released notebooks show the stub that kdteach's",
        'learner notebooks show; keep them. Everything else is yours to change."""',
        "",
        "c = get_config()  # noqa: F821 (nbgrader defines get_config)",
        "",
        f"c.CourseDirectory.course_id = {course_id!r}",
    ]
    for name, options in NBGRADER_OPTIONS.items():
        lines += [f"c.{name}.{option} = {value!r}" for option, value in options.items()]
    lines += [
        "# each check runs the learner's function on many random cases: give a cell time",
        f"c.Execute.timeout = {CELL_TIMEOUT_S}",
    ]
    return "\n".join(lines) + "\n"


def nbgrader_environment() -> dict[str, str]:
    """This process's environment, with this Python's scripts folder first on PATH: nbgrader
    runs the ``alembic`` command installed beside it when it creates a gradebook, also when
    the virtual environment was never activated."""
    scripts = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": os.pathsep.join([scripts, os.environ.get("PATH", "")])}


def generate_assignment(course: Path, assignment: str) -> None:
    """``nbgrader generate_assignment <assignment> --force``, run in the folder ``course``
    (nbgrader reads its nbgrader_config.py there); NbgraderFailed if it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force"],
        cwd=course, env=nbgrader_environment(), capture_output=True, text=True,
    )
    if done.returncode != 0:
        said = last_error(done.stderr + done.stdout)
        raise NbgraderFailed(f"nbgrader generate_assignment {assignment} failed: {said}")


def last_error(log: str) -> str:
    """The line of an nbgrader log that says what failed: the last exception in it (nbgrader
    logs a traceback, then a line that points back at it), else its last line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if _EXCEPTION.match(line)]
    return (errors or lines or ["no message"])[-1]


def build_course(course: Path, solutions: Path | None = None,
                 course_id: str = COURSE_ID) -> list[str]:
    """Write the nbgrader course folder ``course`` and generate every assignment's release;
    returns the assignments and prints what it did. BadInput or NbgraderFailed otherwise."""
    if not nbgrader_installed():
        missing = ModuleNotFoundError("No module named 'nbgrader'", name="nbgrader")
        raise missing_extra(missing, extra=TEACH)
    if not _COURSE_ID.fullmatch(course_id):
        raise BadInput(f"--course-id {course_id!r}: use letters, digits, '_', '-' and '.', "
                       "starting with a letter or a digit")
    course = Path(course).expanduser()
    if course.exists() and not course.is_dir():
        raise BadInput(f"{course} is a file: give a folder for the course")
    notebooks = source_notebooks(solutions if solutions is not None else default_solutions())
    course.mkdir(parents=True, exist_ok=True)
    config = course / CONFIG
    if config.exists():
        print(f"{config}: kept (yours: never overwritten)")
        if "ClearSolutions.code_stub" not in config.read_text(encoding="utf-8"):
            print(f"{config}: sets no ClearSolutions.code_stub, so the released stubs are "
                  "nbgrader's own, not those of kdteach's learner notebooks")
    else:
        config.write_text(config_text(course_id), encoding="utf-8")
        print(f"{config}: written")
    assignments = []
    for path in notebooks:
        target = course / "source" / path.stem / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        generate_assignment(course, path.stem)
        assignments.append(path.stem)
        print(f"{course / 'release' / path.stem}: generated from {target}")
    return assignments


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kdteach.publish.assignments",
        description="Build an nbgrader course folder from the solved exercise notebooks: one "
        "assignment per notebook, generated into release/.",
    )
    parser.add_argument("--course", type=Path, required=True,
                        help="the course folder to build (created if missing)")
    parser.add_argument("--solutions", type=Path, default=None,
                        help="the solved exercise notebooks (default: the course's own)")
    parser.add_argument("--course-id", default=COURSE_ID,
                        help=f"nbgrader's course id, for a new {CONFIG} (default: {COURSE_ID})")
    args = parser.parse_args(argv)
    try:
        assignments = build_course(args.course, args.solutions, args.course_id)
    except (BadInput, ModuleNotFoundError) as err:
        print(f"kdteach: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except NbgraderFailed as err:
        print(f"kdteach: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{args.course}: {len(assignments)} assignments ready; from that folder, "
          f"`nbgrader release_assignment {assignments[0]}` releases the first")
    return 0


if __name__ == "__main__":
    sys.exit(main())
