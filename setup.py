"""One build step that pyproject.toml cannot declare: the course's notebooks in the wheel.

Everything else about the package is in pyproject.toml. The lessons, the learners'
exercise notebooks and the solved ones live in ``notebooks/`` (one copy, in the
repository); a built wheel carries them as package data under ``kdteach/lesson/course/``,
so ``pip install kdteach`` users get them with ``python -m kdteach lessons DIR``, with the
original notebook's protocol (``docs/original_protocol.md``) that the lessons refer to. An
editable install (``pip install -e .``, what ``make`` does) reads ``notebooks/`` in place.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

NOTEBOOKS = Path("notebooks")
COURSE_PATTERNS = ("*.ipynb", "exercises/*.ipynb", "solutions/*.ipynb")
COURSE_DOCS = ("docs/original_protocol.md",)  # the lessons quote the original's table from it
PACKAGED_AT = ("kdteach", "lesson", "course")


class BuildWithNotebooks(build_py):
    """``build_py``, then a copy of the course's notebooks into the built package."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib, *PACKAGED_AT)
        for pattern in COURSE_PATTERNS:
            for source in sorted(NOTEBOOKS.glob(pattern)):
                copy = target / source.relative_to(NOTEBOOKS)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, copy)
        for doc in COURSE_DOCS:
            (target / doc).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(doc, target / doc)


setup(cmdclass={"build_py": BuildWithNotebooks})
