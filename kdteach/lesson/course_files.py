"""The course's notebooks as files: where they are, and a learner's own copy of them.

The course is the lesson notebooks (``00_setup.ipynb`` … ``05_going_further.ipynb``, with
the full profile's outputs), the learners' exercise notebooks (``exercises/``), the solved
ones (``solutions/``, for lecturers and self-study) and the original notebook's protocol
(``docs/original_protocol.md``, which the lessons quote). A wheel carries them under
``kdteach/lesson/course/``; in a clone of the repository they are its ``notebooks/`` and
``docs/`` folders, which an editable install reads in place. :func:`course_files` finds
them.

:func:`write_lessons` (``python -m kdteach lessons DIR``) copies them into a folder of the
learner's. It never overwrites a notebook the learner has changed: a manifest in the
folder, ``.kdteach-lessons.json``, records what was written, so a notebook still as it was
written is replaced by this version's, and one that differs from both is kept (unless
``force``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from kdteach.protocol.files import write_atomic, write_text_atomic

PACKAGED = Path(__file__).with_name("course")  # in a wheel
CLONE = Path(__file__).resolve().parents[2]  # a clone's root (an editable install)
MANIFEST = ".kdteach-lessons.json"
PARTS = {"lessons": "*.ipynb", "exercises": "exercises/*.ipynb",
         "solutions": "solutions/*.ipynb"}
DOCS = ("docs/original_protocol.md",)


def course_folders() -> tuple[Path, Path]:
    """``(notebooks, docs root)``: the wheel's copy, else the clone's ``notebooks/`` and
    root; FileNotFoundError if neither is there (a package built without them)."""
    if (PACKAGED / "00_setup.ipynb").is_file():
        return PACKAGED, PACKAGED
    if (CLONE / "notebooks" / "00_setup.ipynb").is_file():
        return CLONE / "notebooks", CLONE
    raise FileNotFoundError(
        f"the course's notebooks are missing from this installation (looked in {PACKAGED} "
        f"and {CLONE / 'notebooks'}): reinstall kdteach from its wheel or sdist")


def course_files(solutions: bool = False) -> list[tuple[Path, str]]:
    """The course's files as ``(where it is, its name in a learner's folder)``: lessons,
    exercises, then (with ``solutions``) the solved exercises, then the docs."""
    notebooks, docs_root = course_folders()
    parts = ["lessons", "exercises"] + (["solutions"] if solutions else [])
    found = [(path, path.relative_to(notebooks).as_posix())
             for part in parts for path in sorted(notebooks.glob(PARTS[part]))]
    return found + [(docs_root / doc, doc) for doc in DOCS if (docs_root / doc).is_file()]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_manifest(folder: Path) -> dict[str, str]:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


@dataclass
class LessonsWritten:
    """What :func:`write_lessons` did, one list of relative paths per outcome."""

    folder: Path
    written: list[str] = field(default_factory=list)    # new, or replaced (unchanged since)
    unchanged: list[str] = field(default_factory=list)  # already this version's
    kept: list[str] = field(default_factory=list)       # changed by the learner: left alone

    def report(self) -> str:
        lines = [f"{self.folder}: wrote {len(self.written)} files, "
                 f"{len(self.unchanged)} already up to date"]
        if self.kept:
            lines.append(f"kept {len(self.kept)} you have changed (--force replaces them): "
                         + ", ".join(self.kept))
        lines.append(f"open them with:  jupyter lab {self.folder}")
        return "\n".join(lines)


def write_lessons(folder, solutions: bool = False, force: bool = False) -> LessonsWritten:
    """Copy the course (:func:`course_files`; the solved exercises only with ``solutions``)
    into ``folder``, keeping every file there that the learner has changed unless
    ``force``. Each file is written atomically; the manifest last."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file: give a folder for the notebooks")
    manifest = _read_manifest(folder)
    done = LessonsWritten(folder)
    for source, name in course_files(solutions):
        data = source.read_bytes()
        target = folder / name
        if target.is_file():
            present = _digest(target.read_bytes())
            if present == _digest(data):
                done.unchanged.append(name)
                manifest[name] = present
                continue
            if present != manifest.get(name) and not force:
                done.kept.append(name)
                continue
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, lambda tmp, data=data: Path(tmp).write_bytes(data))
        manifest[name] = _digest(data)
        done.written.append(name)
    write_text_atomic(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return done
