"""kdteach.publish.assignments and exercises.assert_correct: the exercises as an nbgrader
course, built, generated, autograded and given feedback by the real nbgrader (its command
line, run by this Python) in a temporary folder with a gradebook of its own."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import types
import warnings
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from kdteach import exercises
from kdteach.publish import assignments
from kdteach.publish.assignments import (
    CONFIG,
    config_text,
    graded_cells,
    last_error,
    main,
    nbgrader_environment,
)
from kdteach.publish.learner_notebooks import NBGRADER_OPTIONS, STUB

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS_DIR = ROOT / "notebooks" / "solutions"
EXERCISES_DIR = ROOT / "notebooks" / "exercises"
ASSIGNMENTS = [path.stem for path in sorted(SOLUTIONS_DIR.glob("*.ipynb"))]
FIRST = "01_distillation_loss"

# Bob's answers in the first set: two typical mistakes that the checkers name, and one
# right answer, so that autograde gives him part of the points.
MISTAKES = {
    "hp_loss": "def hp_loss(student_pred, teacher_pred):\n"
               "    return ((student_pred - teacher_pred) ** 2).sum()",
    "weighted_loss": "def weighted_loss(student_pred, y, teacher_pred, hard, hp):\n"
                     "    return hp * F.mse_loss(student_pred, y) + hard * F.mse_loss("
                     "student_pred, teacher_pred)",
}
NAMED = {
    "test_hp_loss": "adds the squared differences up instead of averaging them",
    "test_weighted_loss": "swaps the weights",
}


# --------------------------------------------------------------------------- assert_correct


def right_hp_loss(s, t):
    return ((s - t) ** 2).mean()


def test_assert_correct_passes_a_right_answer_in_silence(capsys):
    assert exercises.assert_correct("hp_loss", right_hp_loss) is None
    assert capsys.readouterr() == ("", "")


def test_assert_correct_holds_back_what_a_right_answer_prints_and_warns(capsys):
    """nbgrader fails a test cell with any output on stderr: a right answer that prints
    or warns must still pass, and show nothing."""

    def noisy(s, t):
        print("debugging")
        print("on stderr", file=sys.stderr)
        warnings.warn("a warning of the learner's", UserWarning, stacklevel=1)
        return ((s - t) ** 2).mean()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning that got out would raise, and fail the check
        exercises.assert_correct("hp_loss", noisy)
    assert capsys.readouterr() == ("", "")


def test_assert_correct_raises_the_verdict_that_names_the_mistake():
    with pytest.raises(AssertionError, match="✘ hp_loss: incorrect. `hp_loss` adds the squared"):
        exercises.assert_correct("hp_loss", lambda s, t: ((s - t) ** 2).sum())


def test_assert_correct_fails_an_untouched_stub():
    def stub(s, t):
        raise NotImplementedError("replace this line with your code")

    with pytest.raises(AssertionError, match="hp_loss: not attempted"):
        exercises.assert_correct("hp_loss", stub)


# --------------------------------------------------------------------------- the command


def test_the_config_sets_kdteachs_options_of_nbgrader():
    """nbgrader_config.py, run as nbgrader runs it, sets the course id and every option
    the learner view uses."""

    class Config:
        def __init__(self):
            self.sections = {}

        def __getattr__(self, name):
            return self.sections.setdefault(name, types.SimpleNamespace())

    config = Config()
    exec(config_text("ml-101"), {"get_config": lambda: config})
    assert config.sections["CourseDirectory"].course_id == "ml-101"
    for name, options in NBGRADER_OPTIONS.items():
        assert vars(config.sections[name]) == options
    assert config.sections["Execute"].timeout > 30, "more than nbgrader's default"


def test_last_error_is_the_exception_nbgrader_logged():
    log = ("[GenerateAssignmentApp | ERROR] Traceback (most recent call last):\n"
           '    File "x.py", line 1\n'
           "nbgrader.nbgraderformat.common.ValidationError: grade_id is empty\n"
           "[GenerateAssignmentApp | ERROR] Please see the the above traceback for details\n")
    assert last_error(log) == "nbgrader.nbgraderformat.common.ValidationError: grade_id is empty"
    assert last_error("one line\nthe last line\n") == "the last line"


def notebook_without_tests(folder: Path) -> Path:
    """A folder with one solved notebook whose test cells lost their nbgrader metadata."""
    nb = nbformat.read(SOLUTIONS_DIR / f"{FIRST}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            del cell.metadata["nbgrader"]
    folder.mkdir()
    nbformat.write(nb, folder / f"{FIRST}.ipynb")
    return folder


@pytest.mark.parametrize("case", ["a file", "no folder", "empty", "no tests", "course id"])
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, capsys):
    course, solutions, extra = tmp_path / "course", SOLUTIONS_DIR, []
    expected = {
        "a file": "is a file: give a folder for the course",
        "no folder": "is not a folder of solved exercise notebooks",
        "empty": "holds no notebook (*.ipynb)",
        "no tests": "has no autograded test cell",
        "course id": "--course-id 'my course': use letters, digits",
    }[case]
    if case == "a file":
        course.write_text("not a folder", encoding="utf-8")
    elif case == "no folder":
        solutions = tmp_path / "missing"
    elif case == "empty":
        (solutions := tmp_path / "empty").mkdir()
    elif case == "no tests":
        solutions = notebook_without_tests(tmp_path / "solutions")
    else:
        extra = ["--course-id", "my course"]
    code = main(["--course", str(course), "--solutions", str(solutions), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("kdteach: error: ") and err.count("\n") == 1, err
    assert expected in err, err
    assert not (course.is_dir() and any(course.iterdir())), "nothing written"


def test_without_nbgrader_the_command_names_the_teach_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(assignments, "nbgrader_installed", lambda: False)
    assert main(["--course", str(tmp_path / "course"), "--solutions", str(SOLUTIONS_DIR)]) == 2
    err = capsys.readouterr().err
    assert 'pip install "kdteach[teach]"' in err and err.count("\n") == 1, err


def test_a_rerun_keeps_the_lecturers_config_and_rewrites_the_sources(tmp_path, capsys,
                                                                      monkeypatch):
    """Without --solutions, the course's own solved notebooks (the clone's, here)."""
    generated = []
    monkeypatch.setattr(assignments, "generate_assignment",
                        lambda course, name: generated.append(name))
    course = tmp_path / "course"
    course.mkdir()
    (course / CONFIG).write_text("c = get_config()  # the lecturer's\n", encoding="utf-8")
    stale = course / "source" / FIRST / f"{FIRST}.ipynb"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}", encoding="utf-8")
    assert main(["--course", str(course)]) == 0
    assert (course / CONFIG).read_text(encoding="utf-8") == "c = get_config()  # the lecturer's\n"
    out = capsys.readouterr().out
    assert f"{course / CONFIG}: kept" in out
    assert "sets no ClearSolutions.code_stub" in out, "the lecturer hears what that changes"
    assert generated == ASSIGNMENTS
    for name in ASSIGNMENTS:
        copy = course / "source" / name / f"{name}.ipynb"
        assert copy.read_bytes() == (SOLUTIONS_DIR / f"{name}.ipynb").read_bytes()


def test_a_failing_nbgrader_is_one_line_and_exit_1(tmp_path, capsys):
    """Test cells with an empty grade_id: nbgrader refuses them, and its reason is the line."""
    nb = nbformat.read(SOLUTIONS_DIR / f"{FIRST}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.metadata["nbgrader"]["grade_id"] = ""
    (solutions := tmp_path / "solutions").mkdir()
    nbformat.write(nb, solutions / f"{FIRST}.ipynb")
    code = main(["--course", str(tmp_path / "course"), "--solutions", str(solutions)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"kdteach: error: nbgrader generate_assignment {FIRST} failed: ")
    assert "ValidationError" in err and "nbgrader metadata" in err, err
    assert err.count("\n") == 1, err


# --------------------------------------------------------------------------- with nbgrader


def nbgrader(course: Path, env: dict, *args: str) -> None:
    """One nbgrader command, run in the course folder as a lecturer runs it."""
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"nbgrader {' '.join(args)}:\n{done.stderr[-3000:]}"


def submit(course: Path, student: str, assignment: str, answers: dict[str, str]) -> None:
    """The released notebook with ``answers`` ({grade_id: source}) in its solution cells,
    where nbgrader's collect would put it."""
    name = f"{assignment}.ipynb"
    nb = nbformat.read(course / "release" / assignment / name, as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    target = course / "submitted" / student / assignment / name
    target.parent.mkdir(parents=True)
    nbformat.write(nb, target)


def solutions_of(assignment: str) -> dict[str, str]:
    nb = nbformat.read(SOLUTIONS_DIR / f"{assignment}.ipynb", as_version=4)
    return {c.metadata.nbgrader.grade_id: c.source for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course built by the command; Alice submits every solution, Bob the first set with
    two mistakes; both autograded, and Bob's feedback generated."""
    base = tmp_path_factory.mktemp("nbgrader")
    folder = base / "course"
    env = {**nbgrader_environment(), "KDTEACH_PROFILE": "quick", "KDTEACH_DEVICE": "cpu",
           "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "KDTEACH_CACHE": str(base / "cache"),
           "JUPYTER_CONFIG_DIR": str(base / "jupyter")}  # no nbgrader_config.py of the user's
    with pytest.MonkeyPatch.context() as patch:
        for key in ("JUPYTER_CONFIG_DIR", "KDTEACH_CACHE"):
            patch.setenv(key, env[key])
        assert main(["--course", str(folder), "--solutions", str(SOLUTIONS_DIR),
                     "--course-id", "kdteach-test"]) == 0
    for assignment in ASSIGNMENTS:
        submit(folder, "alice", assignment, solutions_of(assignment))
    submit(folder, "bob", FIRST, {**solutions_of(FIRST), **MISTAKES})
    nbgrader(folder, env, "autograde", "*", "--create")  # every submission of every set
    nbgrader(folder, env, "generate_feedback", FIRST, "--student", "bob")
    yield folder
    shutil.rmtree(base, ignore_errors=True)


def test_the_course_folder_is_ready_for_release(course):
    for name in ASSIGNMENTS:
        assert (course / "source" / name / f"{name}.ipynb").is_file()
        assert (course / "release" / name / f"{name}.ipynb").is_file()
    assert "c.CourseDirectory.course_id = 'kdteach-test'" in (course / CONFIG).read_text()
    assert (course / "gradebook.db").is_file()


def comparable(cell) -> tuple:
    """A cell's type, source and metadata, without what nbgrader adds to the release only
    (the checksums it grades by, and the cell type it records)."""
    metadata = json.loads(json.dumps(cell.metadata))
    for key in ("checksum", "cell_type"):
        metadata.get("nbgrader", {}).pop(key, None)
    return cell.cell_type, cell.source, metadata


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_the_release_shows_what_the_learner_notebook_shows(course, name):
    """nbgrader's generate_assignment and kdteach's learner notebooks: one learner view."""
    released = nbformat.read(course / "release" / name / f"{name}.ipynb", as_version=4)
    learner = nbformat.read(EXERCISES_DIR / f"{name}.ipynb", as_version=4)
    assert [comparable(c) for c in released.cells] == [comparable(c) for c in learner.cells]
    assert STUB in "\n".join(c.source for c in released.cells)
    assert not any(c.get("outputs") for c in released.cells), "the release has no outputs"


def test_the_solutions_get_full_marks(course):
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for name in ASSIGNMENTS:
            points = sum(graded_cells(SOLUTIONS_DIR / f"{name}.ipynb").values())
            submission = gradebook.find_submission(name, "alice")
            assert points > 0 and submission.max_score == points
            assert submission.score == points, name


def feedback_of_test_cells(page: str) -> dict[str, str]:
    """{grade_id: the text of each test cell on a feedback page}: the page cut at each
    test cell's anchor, tags removed, up to the next cell's prompt."""
    parts = re.split(r'<a name="(test_\w+)"></a>', page)[1:]
    texts = [html.unescape(re.sub(r"<[^>]+>", "", part)) for part in parts[1::2]]
    return {grade_id: re.split(r"In\s*\[\d*\]:", text)[0]
            for grade_id, text in zip(parts[::2], texts)}


def test_typical_mistakes_get_part_of_the_points_and_are_named(course):
    tests = graded_cells(SOLUTIONS_DIR / f"{FIRST}.ipynb")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(FIRST, "bob")
        assert submission.max_score == sum(tests.values())
        assert submission.score == tests["test_paired_t_test"], "the right answer's points"
        for grade_id in NAMED:
            assert gradebook.find_grade(grade_id, FIRST, FIRST, "bob").score == 0
    graded = nbformat.read(course / "autograded" / "bob" / FIRST / f"{FIRST}.ipynb", 4)
    errors = {c.metadata.nbgrader.grade_id: [o.evalue for o in c.outputs
                                             if o.output_type == "error"]
              for c in graded.cells if c.metadata.get("nbgrader", {}).get("grade")}
    assert errors["test_paired_t_test"] == []
    page = (course / "feedback" / "bob" / FIRST / f"{FIRST}.html").read_text(encoding="utf-8")
    feedback = feedback_of_test_cells(page)
    assert set(feedback) == set(tests)
    for grade_id, mistake in NAMED.items():
        (error,) = errors[grade_id]
        assert mistake in error and error.startswith("✘ ")
        assert f"Score: 0.0 / {tests[grade_id]:.1f}" in feedback[grade_id]
        assert "AssertionError: ✘" in feedback[grade_id] and mistake in feedback[grade_id]
    assert "✘" not in feedback["test_paired_t_test"]
