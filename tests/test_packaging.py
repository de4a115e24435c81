"""Consistency checks between the packaging files (pyproject, conda env, Makefile, CI, README)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kdteach"

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


def _project(path: Path) -> dict:
    tomllib = pytest.importorskip("tomllib")  # standard library from Python 3.11
    with path.open("rb") as fh:
        return tomllib.load(fh)["project"]


def extra_packages(project: dict, extra: str) -> set[str]:
    """The package names an extra installs, a self-reference such as ``kdteach[publish]``
    replaced by that extra's packages (pip installs them from the project itself)."""
    extras = project.get("optional-dependencies", {})
    assert extra in extras, f"pyproject.toml has no extra {extra!r}"
    names: set[str] = set()
    for spec in extras[extra]:
        name = _bare_name(spec)
        if name != _normalise(project["name"]):
            names.add(name)
            continue
        inner = re.search(r"\[([^\]]*)\]", spec)
        assert inner, f"{spec!r} in the {extra} extra installs the project itself, no extra"
        for other in inner.group(1).split(","):
            assert other.strip() != extra, f"the {extra} extra includes itself"
            names |= extra_packages(project, other.strip())
    return names


def pyproject_packages(path: Path) -> set[str]:
    project = _project(path)
    return {_bare_name(spec) for spec in project["dependencies"]} | extra_packages(project, "dev")


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


def test_the_dev_extra_holds_the_publish_extra_and_make_installs_it():
    project = _project(ROOT / "pyproject.toml")
    publish = extra_packages(project, "publish")
    assert {"nbconvert", "nbformat", "nbclient", "jinja2", "sphinx-revealjs",
            "jupyter-server-mathjax"} <= publish
    assert publish <= extra_packages(project, "dev")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\n$(STAMP):", 1)[1].split("\n\n", 1)[0]
    assert 'pip install -e ".[dev]"' in recipe, "make must install the dev extra"


# ---------------------------------------------------------------- what each part imports

# The layers of kdteach, by folder: the learner's parts, then the publishing tools.
LEARNER_LAYERS = ("core", "protocol", "lesson", "exercises")
PUBLISHING = ("nbconvert", "nbformat", "nbclient", "jinja2")  # kdteach[publish], not a learner


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_under(folder: Path) -> list[str]:
    return sorted(module_name(p) for p in folder.rglob("*.py"))


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_names(path: Path) -> set[str]:
    """Every module ``path`` imports, at its top or inside a function: ``from a import b``
    counts as ``a.b`` when that is a module of kdteach, else as ``a``; relative imports are
    resolved against the file's package."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base)
    return found


def kdteach_imports(path: Path) -> set[str]:
    return {n for n in imported_names(path) if n == "kdteach" or n.startswith("kdteach.")}


def third_party_imports(paths) -> dict[str, set[str]]:
    """The distributions (pip names) whose modules ``paths`` import, each with the files."""
    distributions = packages_distributions()
    local = {p.stem for p in (ROOT / "tests").rglob("*.py")}
    found: dict[str, set[str]] = {}
    for path in paths:
        for name in imported_names(path):
            top = name.partition(".")[0]
            if top in sys.stdlib_module_names or top == "kdteach" or top in local:
                continue
            for dist in distributions.get(top, [f"<no installed distribution: {top}>"]):
                found.setdefault(_normalise(dist), set()).add(str(path.relative_to(ROOT)))
    return found


def test_each_part_declares_the_packages_it_imports():
    project = _project(ROOT / "pyproject.toml")
    runtime = {_bare_name(spec) for spec in project["dependencies"]}
    learner = [p for layer in LEARNER_LAYERS for p in (PACKAGE / layer).rglob("*.py")]
    learner += [PACKAGE / "__init__.py", PACKAGE / "__main__.py"]
    for what, paths, declared in (
        ("the learner's modules (pip install kdteach)", learner, runtime),
        ("kdteach.publish (pip install kdteach[publish], and kdteach[teach] for nbgrader)",
         (PACKAGE / "publish").rglob("*.py"),
         runtime | extra_packages(project, "publish") | extra_packages(project, "teach")),
        ("the tests (make installs .[dev])", (ROOT / "tests").rglob("*.py"),
         runtime | extra_packages(project, "dev")),
    ):
        undeclared = {d: sorted(f) for d, f in third_party_imports(paths).items()
                      if d not in declared}
        assert not undeclared, f"{what} import packages pyproject.toml does not give them: " \
                               f"{undeclared}"


def test_nothing_outside_publish_imports_publish():
    """The rule: kdteach.publish may import anything; nothing else imports kdteach.publish."""
    found = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "publish" not in path.relative_to(PACKAGE).parts[:1]
        for name in sorted(kdteach_imports(path))
        if name == "kdteach.publish" or name.startswith("kdteach.publish.")
    ]
    assert not found, "only kdteach.publish may import kdteach.publish:\n" + "\n".join(found)


# Each layer may import itself and what its rule names, nothing else of kdteach.
LAYER_RULES = [
    pytest.param("core", ("kdteach.core",), id="core imports only core"),
    pytest.param("exercises", ("kdteach.exercises", "kdteach.core", "kdteach.protocol.names"),
                 id="exercises imports only core and protocol.names"),
    pytest.param("protocol", ("kdteach.protocol", "kdteach.core"),
                 id="protocol imports only core and protocol"),
    pytest.param("lesson", ("kdteach.lesson", "kdteach.core", "kdteach.protocol"),
                 id="lesson imports only core, protocol and lesson"),
]


@pytest.mark.parametrize("layer, allowed", LAYER_RULES)
def test_layers_import_only_the_layers_below_them(layer, allowed):
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files, f"kdteach/{layer} holds no module"
    broken = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in sorted(kdteach_imports(path))
        if not any(name == a or name.startswith(f"{a}.") for a in allowed)
    ]
    assert not broken, (f"kdteach/{layer} may import only {', '.join(allowed)}:\n"
                        + "\n".join(broken))


# ---------------------------------------------------------------- without the publish extra

# Run first in a fresh interpreter: the modules named in argv[1] cannot be imported, as if
# they were not installed. (torch imports none of them when it is imported.)
_BLOCKER = """
import sys

BLOCKED = set(sys.argv[1].split(","))
early = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
assert not early, f"imported before the blocker: {early}"


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None


sys.meta_path.insert(0, Blocker())
"""


def run_without(blocked, body: str, modules) -> dict:
    """Run ``body`` in a fresh interpreter where ``blocked`` cannot be imported, with
    ``MODULES`` set to ``modules``; returns the JSON it prints last."""
    script = _BLOCKER + f"MODULES = {list(modules)!r}\n" + textwrap.dedent(body)
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script, ",".join(blocked)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


_IMPORT_EACH = """
import importlib, json

failed = {}
for name in MODULES:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
publish = sorted(m for m in sys.modules if m.startswith("kdteach.publish"))
print(json.dumps({"failed": failed, "publish": publish}))
"""


_WALK_AND_IMPORT = """
import importlib, json, pkgutil

failed = {}


def load(name):
    try:
        return importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"


walked = ["kdteach", "kdteach.__main__"]
for name in list(walked):
    load(name)
for layer in MODULES:
    walked.append(layer)
    package = load(layer)
    if package is not None:
        for info in pkgutil.walk_packages(package.__path__, layer + ".",
                                          onerror=lambda n: failed.setdefault(n, "walk")):
            walked.append(info.name)
            load(info.name)
publish = sorted(m for m in sys.modules if m.startswith("kdteach.publish"))
print(json.dumps({"walked": walked, "failed": failed, "publish": publish}))
"""


def test_a_learner_imports_everything_without_the_publish_extra():
    """kdteach, kdteach.__main__ and every module of the learner's layers (walked with
    pkgutil) import with nbconvert, nbformat, nbclient and jinja2 missing."""
    layers = [f"kdteach.{layer}" for layer in LEARNER_LAYERS]
    found = run_without(PUBLISHING, _WALK_AND_IMPORT, layers)
    assert found["failed"] == {}, f"these need {', '.join(PUBLISHING)}: {found['failed']}"
    on_disk = ["kdteach", "kdteach.__main__"] + [
        name for layer in LEARNER_LAYERS for name in modules_under(PACKAGE / layer)]
    assert sorted(found["walked"]) == sorted(on_disk), "the walk missed some modules"
    assert found["publish"] == [], "importing the learner's modules loads kdteach.publish"


_IMPORT_EACH_AND_EXECUTE = _IMPORT_EACH.replace("publish = sorted", """try:
    importlib.import_module("kdteach.publish.site").execute(None, ".")  # imports nbclient
except Exception as exc:
    failed["kdteach.publish.site.execute"] = f"{type(exc).__name__}: {exc}"
publish = sorted""")


@pytest.mark.parametrize("missing", PUBLISHING)
def test_a_publishing_tool_without_the_extra_says_what_to_install(missing):
    found = run_without([missing], _IMPORT_EACH_AND_EXECUTE, modules_under(PACKAGE / "publish"))
    failed = found["failed"]
    assert failed, f"every publishing tool imports without {missing}: is it blocked?"
    unhelpful = {m: e for m, e in failed.items() if 'pip install "kdteach[publish]"' not in e}
    assert not unhelpful, f"without {missing}, these do not say what to install: {unhelpful}"
    assert all(missing in e for e in failed.values()), failed


# ---------------------------------------------------------------- what pip gets


DEV_TOOLS = ("pytest", "nbval", "jupyterlab", "ruff", "playwright", "nbconvert", "nbformat",
             "nbclient", "jinja2", "sphinx-revealjs")


def test_pip_install_pulls_no_dev_tools():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[ ;]", dep, maxsplit=1)[0].lower()
             for dep in project["dependencies"]}
    assert not names & set(DEV_TOOLS)
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]  # PEP 639


@pytest.fixture(scope="module")
def distributions(tmp_path_factory):
    """The sdist and the wheel, built from a copy of the tree (the tree stays as it is)."""
    import shutil

    src = tmp_path_factory.mktemp("src") / "kdteach"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "artifacts", "results", "build", "dist", "*.egg-info", "__pycache__",
        "slides", "site"))
    out = tmp_path_factory.mktemp("dist")
    for kind in ("sdist", "wheel"):  # one process each: setuptools keeps state between them
        script = f"import sys, setuptools.build_meta as b; b.build_{kind}(sys.argv[1])"
        run = subprocess.run([sys.executable, "-c", script, str(out)], cwd=src,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
    return next(out.glob("*.tar.gz")), next(out.glob("*.whl"))


def test_the_wheel_carries_the_course_the_solutions_and_the_license_not_the_tests(
        distributions):
    import zipfile

    names = zipfile.ZipFile(distributions[1]).namelist()
    assert "kdteach/exercises/solutions.json" in names
    assert "kdteach/lesson/training_times.json" in names
    course = {n.removeprefix("kdteach/lesson/course/") for n in names
              if n.startswith("kdteach/lesson/course/")}
    repository = {p.relative_to(ROOT / "notebooks").as_posix()
                  for p in (ROOT / "notebooks").rglob("*.ipynb")}
    assert course == repository | {"docs/original_protocol.md"}
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert not [n for n in names if n.startswith("tests/")]


def test_a_learner_runs_a_lesson_and_an_exercise_from_the_wheel_alone(distributions, tmp_path):
    """The wheel in a new virtualenv outside the repository (its dependencies read from this
    one's packages, after its own), ``python -m kdteach lessons``, then lesson 00 and the
    first exercise under nbval with the quick profile, the cache in XDG_CACHE_HOME."""
    import sysconfig

    venv, learner = tmp_path / "venv", tmp_path / "learner"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['purelib'])"], capture_output=True, text=True, check=True)
    Path(purelib.stdout.strip(), "_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                              "--no-deps", "--no-index", "--quiet", str(distributions[1])],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    learner.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KDTEACH_", "PYTHON", "JUPYTER", "VIRTUAL_ENV"))}
    env.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "xdg"), KDTEACH_PROFILE="quick",
               KDTEACH_DEVICE="cpu", OMP_NUM_THREADS="1", MPLBACKEND="Agg")

    def learner_runs(*args, timeout=120):
        done = subprocess.run([str(python), *args], cwd=learner, env=env, capture_output=True,
                              text=True, timeout=timeout)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    where = learner_runs("-c", "import kdteach; print(kdteach.__file__)")
    assert where.startswith(str(venv)), where  # the wheel's kdteach, not the repository's
    assert "wrote 12 files" in learner_runs("-m", "kdteach", "lessons", "course")
    assert "def hp_loss" in learner_runs(
        "-c", "from kdteach import exercises; print(exercises.solution('hp_loss'))")
    learner_runs("-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
                 "-q", "course/00_setup.ipynb", "course/exercises/01_distillation_loss.ipynb",
                 timeout=600)
    checked = subprocess.run([str(python), "-m", "kdteach", "cache", "--check"], cwd=learner,
                             env=env, capture_output=True, text=True, timeout=120)
    assert f"cache ({tmp_path / 'xdg' / 'kdteach'}): empty for the quick profile" in (
        checked.stdout)


def test_the_sdist_runs_its_own_tests(distributions, tmp_path):
    import tarfile

    with tarfile.open(distributions[0]) as archive:
        archive.extractall(tmp_path, filter="data")
    (unpacked,) = tmp_path.iterdir()
    for needed in ("tests/conftest.py", "tests/protocol/tiny_protocol.py", "Makefile",
                   "notebooks/01_standard_teacher.ipynb", "kdteach/exercises/solutions.json"):
        assert (unpacked / needed).is_file(), needed
    env = {**os.environ, "PYTHONPATH": str(unpacked), "KDTEACH_DEVICE": "cpu",
           "OMP_NUM_THREADS": "1", "KDTEACH_CACHE": str(tmp_path / "cache")}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/protocol/test_stages.py", "tests/exercises/test_exercise_api.py"],
        cwd=unpacked, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert str(unpacked) in subprocess.run(  # the tests ran against the unpacked package
        [sys.executable, "-c", "import kdteach; print(kdteach.__file__)"], cwd=unpacked,
        env=env, capture_output=True, text=True).stdout


@pytest.mark.parametrize("tool, args", [("kdteach.publish.slides", ["--help"]),
                                        ("kdteach.publish.site", ["--help"])])
def test_a_publishing_command_without_the_extra_fails_in_one_line(tool, args):
    script = _BLOCKER + textwrap.dedent(f"""
        import runpy
        sys.argv = [{tool!r}, *{args!r}]
        runpy.run_module({tool!r}, run_name="__main__")
    """)
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script, "nbformat,nbconvert,jinja2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert 'pip install "kdteach[publish]"' in lines[0]
