"""The course's notebooks as files: found in a clone, and copied into a learner's folder
without ever overwriting the learner's own edits."""

import json
from pathlib import Path

import pytest

from kdteach.lesson import course_files
from kdteach.lesson.course_files import MANIFEST, write_lessons
from kdteach.lesson.course_files import course_files as listed

ROOT = Path(__file__).resolve().parents[2]


def test_the_course_is_every_lesson_exercise_and_solution_of_the_repository():
    names = {name for _, name in listed(solutions=True)}
    repository = {p.relative_to(ROOT / "notebooks").as_posix()
                  for p in (ROOT / "notebooks").rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts}
    assert names == repository | {"docs/original_protocol.md"}
    assert not {n for _, n in listed()} & {n for n in names if n.startswith("solutions/")}


def test_a_new_folder_gets_lessons_and_exercises_but_no_solutions(tmp_path):
    done = write_lessons(tmp_path / "course")
    folder = tmp_path / "course"
    assert (folder / "00_setup.ipynb").read_bytes() == (
        ROOT / "notebooks" / "00_setup.ipynb").read_bytes()
    assert (folder / "exercises" / "01_distillation_loss.ipynb").is_file()
    assert (folder / "docs" / "original_protocol.md").is_file()
    assert not (folder / "solutions").exists()
    assert len(done.written) == len(listed()) and not done.kept and not done.unchanged
    manifest = json.loads((folder / MANIFEST).read_text())
    assert set(manifest) == set(done.written)


def test_writing_again_changes_nothing_and_keeps_what_the_learner_edited(tmp_path):
    write_lessons(tmp_path)
    edited = tmp_path / "01_standard_teacher.ipynb"
    edited.write_text(edited.read_text() + " ")
    again = write_lessons(tmp_path, solutions=True)
    assert again.kept == ["01_standard_teacher.ipynb"]
    assert edited.read_text().endswith(" ")  # the learner's edit survives
    solutions = {n for _, n in listed(True)} - {n for _, n in listed()}
    assert set(again.written) == solutions  # only the solutions were new
    assert "--force" in again.report() and "01_standard_teacher.ipynb" in again.report()
    forced = write_lessons(tmp_path, force=True)
    assert forced.written == ["01_standard_teacher.ipynb"] and not forced.kept
    assert not edited.read_text().endswith(" ")


def test_a_notebook_still_as_written_is_replaced_by_a_newer_version(tmp_path, monkeypatch):
    old = tmp_path / "old"
    old.mkdir()
    (old / "00_setup.ipynb").write_text("an older version of lesson 00")
    monkeypatch.setattr(course_files, "course_files", lambda solutions=False: [
        (old / "00_setup.ipynb", "00_setup.ipynb")])
    write_lessons(tmp_path / "learner")
    monkeypatch.undo()  # now this version's course
    upgraded = write_lessons(tmp_path / "learner")
    assert "00_setup.ipynb" in upgraded.written and not upgraded.kept


def test_a_file_where_the_folder_should_be_is_a_clear_error(tmp_path):
    target = tmp_path / "lessons"
    target.write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="give a folder"):
        write_lessons(target)
