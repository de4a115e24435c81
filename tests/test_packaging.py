"""Consistency checks between the packaging files (pyproject, conda env, Makefile, CI, README)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# conda-forge names that differ from the PyPI names used in pyproject.toml
CONDA_TO_PYPI = {"pytorch": "torch"}
# conda entries that are tooling, not package dependencies
CONDA_IGNORED = {"python", "pip"}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _bare_name(spec: str) -> str:
    """Strip version specifiers, extras and markers from a requirement string."""
    match = _NAME_RE.match(spec.strip())
    assert match, f"cannot read a package name from {spec!r}"
    return _normalise(match.group(0))


def conda_packages(path: Path) -> set[str]:
    """Read the dependency names from a simple environment.yml without needing PyYAML."""
    names: set[str] = set()
    in_deps = False
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line.startswith((" ", "\t")):
            in_deps = line.strip() == "dependencies:"
            continue
        if not in_deps:
            continue
        item = line.strip()
        if not item.startswith("- "):
            continue
        entry = item[2:].strip()
        if entry.endswith(":") or entry.startswith("-"):
            # "- pip:" opens the pip sub-list; "- -e ." installs the project itself
            continue
        name = _bare_name(entry)
        if name in CONDA_IGNORED:
            continue
        names.add(CONDA_TO_PYPI.get(name, name))
    return names


def pyproject_packages(path: Path) -> set[str]:
    tomllib = pytest.importorskip("tomllib")  # standard library from Python 3.11
    with path.open("rb") as fh:
        project = tomllib.load(fh)["project"]
    specs = list(project["dependencies"])
    specs += project.get("optional-dependencies", {}).get("dev", [])
    return {_bare_name(spec) for spec in specs}


def test_conda_environment_matches_pyproject():
    conda = conda_packages(ROOT / "environment.yml")
    pypi = pyproject_packages(ROOT / "pyproject.toml")
    assert "torch" in pypi
    assert conda == pypi, (
        f"only in environment.yml: {sorted(conda - pypi)}; "
        f"only in pyproject.toml: {sorted(pypi - conda)}"
    )


def test_environment_installs_project_editable():
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    assert "- -e ." in lines


def test_ci_pins_torch_and_readme_documents_entry_points():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [
        line.strip()
        for line in ci.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert "set -euo pipefail" in commands
    make_calls = [c for c in commands if c.startswith("make ")]
    assert make_calls, ".ci/run must call make"
    assert all(c.split()[1] == "test" for c in make_calls)
    assert any("TORCH_SPEC=torch==2.13.0" in c.split() for c in make_calls)

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make test" in readme
    assert "make reproduce" in readme


def test_makefile_default_torch_is_unpinned():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"^TORCH_SPEC\s*\?=\s*(.*?)\s*$", makefile, flags=re.MULTILINE)
    assert match, "Makefile must define TORCH_SPEC ?= ..."
    assert match.group(1) == "torch"
