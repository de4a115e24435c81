"""The exercises stand on the core and the model names only: importing or using them loads
no experiment, cache, lesson or publishing module, and a solution needs no repository."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from kdteach import exercises

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "kdteach" / "exercises"
FORBIDDEN = ("kdteach.protocol.experiment", "kdteach.protocol.cache", "kdteach.lesson",
             "kdteach.publish")
ALLOWED = ("kdteach.core", "kdteach.protocol.names", "kdteach.exercises")


def _modules_after(code: str) -> list[str]:
    """The modules loaded in a fresh interpreter after ``code``."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(done.stdout.splitlines()[-1])


def _forbidden(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]


def test_importing_the_exercises_loads_no_experiment_cache_lesson_or_publish():
    modules = _modules_after("import kdteach.exercises")
    assert "kdteach.exercises" in modules
    assert not _forbidden(modules)


def test_using_the_exercises_loads_none_of_them_either():
    modules = _modules_after(
        "from kdteach import exercises\n"
        "exercises.check('hp_loss', lambda s, t: ((s - t) ** 2).mean())\n"
        "exercises.hint('hp_loss'), exercises.solution('hp_loss'), exercises.grid_example()"
    )
    assert not _forbidden(modules)


def _kdteach_imports(path: Path) -> list[str]:
    """Every kdteach module a source file imports (``from kdteach import x`` as kdteach.x)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "kdteach":
                found += [f"kdteach.{a.name}" for a in node.names]
            else:
                found.append(node.module)
    return [m for m in found if m == "kdteach" or m.startswith("kdteach.")]


def test_the_exercises_import_only_the_core_and_the_names():
    paths = sorted(PACKAGE.glob("*.py"))
    for path in paths:
        for module in _kdteach_imports(path):
            assert any(module == a or module.startswith(a + ".") for a in ALLOWED), (
                f"{path.name} imports {module}: the exercises may import only "
                f"{', '.join(ALLOWED)}"
            )
    assert len(paths) > 1, "the exercises are a package of modules"


def test_no_module_finds_the_repository_from_its_own_file():
    for path in [*PACKAGE.glob("*.py"), ROOT / "kdteach" / "publish" / "learner_notebooks.py"]:
        assert "__file__" not in path.read_text(encoding="utf-8"), path


def test_solutions_come_from_the_package_without_a_repository(tmp_path):
    """A copy of the package alone, away from any checkout, still gives every solution."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "kdteach", site / "kdteach",
                    ignore=shutil.ignore_patterns("__pycache__"))
    script = (
        "import json\nfrom kdteach import exercises\n"
        "print(json.dumps([exercises.__file__, "
        "{n: str(exercises.solution(n)) for n in exercises.names()}]))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    where, solutions = json.loads(done.stdout.splitlines()[-1])
    assert Path(where).is_relative_to(site), where
    assert solutions == {n: str(exercises.solution(n)) for n in exercises.names()}
