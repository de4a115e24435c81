"""How long the whole course takes a learner: every lesson notebook run from an empty cache.

Runs the lessons (``notebooks/0*.ipynb``, 00 to 05 in order) one after another, as a learner
would, with nbclient: each on a copy in a temporary folder (the committed notebooks are only
read), in a fresh kernel, with one new, empty cache folder (``KDTEACH_CACHE``) shared by all
the lessons of the run, the chosen profile (``KDTEACH_PROFILE``), the CPU
(``KDTEACH_DEVICE=cpu``) and one thread (``OMP_NUM_THREADS=1``). ``MPLBACKEND`` is removed
from the kernel's environment so that figures are drawn inline, as in a learner's kernel.

It records each lesson's wall-clock seconds (kernel start and shutdown included) and each
code cell's, from the timing nbclient writes into the cell's metadata (``execution``:
``iopub.execute_input`` to ``shell.execute_reply``). A cell *trains* when it took longer
than ``--threshold`` seconds or showed a tqdm progress bar (on stderr, or as the text of the
widget ``tqdm.auto`` draws in a kernel with ipywidgets).

In the same run, after the lessons, ``python -m kdteach reproduce --no-cache --quiet`` with
the same profile on the CPU is timed as a fresh process, and the report gives the ratio of
the course's total to it. Before and after every lesson and the reproduce process, the
script reads how much CPU time other processes used (as ``make bench`` does, with the
helpers of ``original_protocol.py``) and prints a WARNING line for each part they slowed.

    python benchmarks/course.py                      # full profile: the README's figures
    python benchmarks/course.py --profile quick      # a fast check
    python benchmarks/course.py --profile quick --only 00 01 --json course.json
    python benchmarks/course.py --keep-cache artifacts   # and keep the cache it filled

``--keep-cache DIR`` moves the cache the lessons filled to DIR afterwards (DIR must not
exist yet), so that ``make notebooks`` can re-execute the lessons from it without
training them again.

``--runs``, ``--epochs-teacher`` and ``--epochs-student`` change the reproduce process only
(the lessons always run the profile): they exist for smoke tests, and with them the ratio is
not the profile's.
"""

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from kdteach.protocol.settings import PROFILES

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TRAINING_THRESHOLD_S = 5.0
# a tqdm bar: "desc:  40%|████      | 480/1200 [00:03<00:05, 130.2it/s]"
PROGRESS_BAR = re.compile(r"\d+%\|.*\|\s*\d+/\d+")
REPRODUCE_OVERRIDES = ("runs", "epochs_teacher", "epochs_student")


def _original_protocol():
    path = Path(__file__).with_name("original_protocol.py")
    spec = importlib.util.spec_from_file_location("original_protocol", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _original_protocol()


@dataclass
class CellTiming:
    """One code cell of a lesson: its position among all the notebook's cells (from 0), its
    seconds (``None`` when nbclient recorded no timing), its first non-blank source line and
    whether it showed a progress bar."""

    index: int
    seconds: float | None
    first_line: str
    progress_bar: bool


@dataclass
class LessonTiming:
    """One lesson: its notebook's name, its wall-clock seconds (kernel start to shutdown),
    its code cells and the load other processes put on the machine meanwhile."""

    name: str
    seconds: float
    cells: list[CellTiming] = field(default_factory=list)
    load: dict = field(default_factory=dict)

    @property
    def cell_seconds(self) -> float:
        """The sum of the cells' own seconds (the lesson's time without kernel start-up)."""
        return sum(c.seconds for c in self.cells if c.seconds is not None)


# ------------------------------------------------------------------ what to run, and how


def lesson_paths(notebooks: Path = NOTEBOOKS, only: list[str] | None = None) -> list[Path]:
    """The lesson notebooks in lesson order; with ``only``, those whose names start with one
    of its prefixes (``["00", "03"]``), still in lesson order."""
    paths = sorted(notebooks.glob("0*.ipynb"))
    if not only:
        return paths
    unknown = [p for p in only if not any(path.name.startswith(p) for path in paths)]
    if unknown:
        raise ValueError(f"no lesson in {notebooks} starts with {', '.join(unknown)}; "
                         f"the lessons are {', '.join(p.stem for p in paths)}")
    return [path for path in paths if any(path.name.startswith(p) for p in only)]


def lesson_environment(profile: str, cache: Path, base: dict | None = None) -> dict:
    """The environment of every lesson's kernel and of the reproduce process: ``base``
    (default: this process's) with the profile, the cache folder, the CPU and one thread,
    and without ``MPLBACKEND`` (a learner's kernel draws figures inline)."""
    env = dict(os.environ if base is None else base)
    env.pop("MPLBACKEND", None)
    env.update({"KDTEACH_PROFILE": profile, "KDTEACH_CACHE": str(cache),
                "KDTEACH_DEVICE": "cpu", "OMP_NUM_THREADS": "1"})
    return env


# ------------------------------------------------------------------ reading executed cells


def cell_seconds(cell) -> float | None:
    """A code cell's seconds from the timing nbclient records in its metadata, from the
    kernel's start of execution to its reply; ``None`` without that timing."""
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def shows_progress_bar(cell) -> bool:
    """Whether a code cell's outputs show a tqdm progress bar: on stderr, or as the text of
    the widget that ``tqdm.auto`` draws when ipywidgets is installed."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            text = output.get("text", "")
        elif output.get("output_type") in ("display_data", "update_display_data"):
            text = output.get("data", {}).get("text/plain", "")
        else:
            continue
        if PROGRESS_BAR.search("".join(text) if isinstance(text, list) else text):
            return True
    return False


def first_line(source: str) -> str:
    """The first non-blank line of a cell's source that is not an nbval marker
    (``# NBVAL_CHECK_OUTPUT`` says nothing about what the cell does)."""
    lines = (line.strip() for line in source.splitlines())
    return next((line for line in lines if line and not line.startswith("# NBVAL_")), "")


def cell_timings(nb) -> list[CellTiming]:
    """The timing of every code cell of an executed notebook."""
    return [CellTiming(index=i, seconds=cell_seconds(cell), first_line=first_line(cell.source),
                       progress_bar=shows_progress_bar(cell))
            for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]


def trains(cell: CellTiming, threshold: float = TRAINING_THRESHOLD_S) -> bool:
    """A cell trains when it showed a progress bar or took longer than ``threshold``."""
    return cell.progress_bar or (cell.seconds is not None and cell.seconds > threshold)


def training_cells(lessons: list[LessonTiming],
                   threshold: float = TRAINING_THRESHOLD_S) -> list[dict]:
    """The cells that train, over all lessons, slowest first: lesson, cell index, seconds,
    whether a progress bar showed, first source line."""
    rows = [{"lesson": lesson.name, "cell": cell.index, "seconds": cell.seconds,
             "progress_bar": cell.progress_bar, "first_line": cell.first_line}
            for lesson in lessons for cell in lesson.cells if trains(cell, threshold)]
    return sorted(rows, key=lambda row: -(row["seconds"] or 0.0))


# ------------------------------------------------------------------ running


def run_lesson(path: Path, env: dict, workdir: Path, timeout: float | None = None,
               read_stat=bench.read_proc_stat) -> LessonTiming:
    """Execute a copy of the lesson at ``path`` in ``workdir`` in a fresh kernel with
    ``env``; ``timeout`` limits each cell (``None``: no limit). The committed notebook is
    only copied."""
    copy = workdir / path.name
    shutil.copyfile(path, copy)
    nb = nbformat.read(copy, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=True,
                            resources={"metadata": {"path": str(workdir)}})
    before = bench.snapshot(read_stat)
    client.execute(env=env, cwd=str(workdir))
    after = bench.snapshot(read_stat)
    return LessonTiming(name=path.stem, seconds=after.wall - before.wall,
                        cells=cell_timings(nb), load=bench.other_load(before, after))


def reproduce_command(profile: str, out: Path, overrides: dict | None = None) -> list[str]:
    """``python -m kdteach reproduce`` from scratch on the CPU, quiet, with ``overrides``
    (runs, epochs_teacher, epochs_student) where given."""
    command = [sys.executable, "-m", "kdteach", "reproduce", "--no-cache", "--quiet",
               "--profile", profile, "--device", "cpu", "--out", str(out)]
    for name, value in (overrides or {}).items():
        if value is not None:
            command += [f"--{name.replace('_', '-')}", str(value)]
    return command


def run_reproduce(command: list[str], env: dict, read_stat=bench.read_proc_stat) -> dict:
    """Wall-clock seconds of the reproduce process, spawn to exit, and the other load."""
    before = bench.snapshot(read_stat)
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    after = bench.snapshot(read_stat)
    return {"command": command[1:], "seconds": after.wall - before.wall,
            "load": bench.other_load(before, after)}


# ------------------------------------------------------------------ the report


def format_lessons(lessons: list[LessonTiming], threshold: float) -> str:
    lines = [f"{'lesson':<28} {'seconds':>9} {'in cells':>9} {'cells':>6} {'training':>9}"]
    for lesson in lessons:
        n_training = sum(trains(c, threshold) for c in lesson.cells)
        lines.append(f"{lesson.name:<28} {lesson.seconds:>9.1f} {lesson.cell_seconds:>9.1f} "
                     f"{len(lesson.cells):>6} {n_training:>9}")
    total = sum(lesson.seconds for lesson in lessons)
    lines.append(f"{'total':<28} {total:>9.1f} "
                 f"{sum(lesson.cell_seconds for lesson in lessons):>9.1f}")
    return "\n".join(lines)


def format_training_cells(rows: list[dict], threshold: float) -> str:
    head = (f"cells that train (over {threshold:g} s or a progress bar), slowest first; "
            "cell = position in the notebook, counting every cell from 0:")
    if not rows:
        return head + "\n  none"
    lines = [head]
    for row in rows:
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.1f}"
        bar = " (bar)" if row["progress_bar"] else ""
        lines.append(f"  {row['lesson']:<28} cell {row['cell']:>3} {seconds:>8} s{bar:<6} "
                     f"{row['first_line'][:70]}")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", choices=PROFILES, default="full",
                   help="the profile of the lessons and of reproduce (default full)")
    p.add_argument("--only", nargs="+", metavar="NN",
                   help="run only the lessons whose names start with these (e.g. 00 01), "
                        "in lesson order, sharing the cache")
    p.add_argument("--json", type=Path, help="also write everything as JSON to this file")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds a cell may run (default: no limit)")
    p.add_argument("--keep-cache", type=Path, metavar="DIR",
                   help="move the cache the lessons filled to DIR afterwards (a new folder)")
    p.add_argument("--threshold", type=float, default=TRAINING_THRESHOLD_S,
                   help="a cell slower than this many seconds trains (default %(default)s)")
    for name in REPRODUCE_OVERRIDES:
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=None,
                       help="passed to reproduce only, for smoke tests (the ratio is then "
                            "not the profile's)")
    args = p.parse_args(argv)
    try:
        args.lessons = lesson_paths(NOTEBOOKS, args.only)
    except ValueError as e:
        p.error(str(e))
    if args.keep_cache is not None and args.keep_cache.exists():
        p.error(f"--keep-cache {args.keep_cache} exists already: name a new folder")
    return args


def main(argv=None, read_stat=bench.read_proc_stat) -> dict:
    args = parse_args(argv)
    overrides = {name: getattr(args, name) for name in REPRODUCE_OVERRIDES
                 if getattr(args, name) is not None}
    info = bench.machine_info()
    load_before = bench.load_average()
    print(f"course benchmark: {len(args.lessons)} lesson(s) "
          f"({', '.join(p.stem[:2] for p in args.lessons)}) from an empty cache, "
          f"profile {args.profile}, then `python -m kdteach reproduce --no-cache`"
          + (f" with {overrides}" if overrides else ""))
    print(f"machine: {info['cpu_model']}, {info['cpu_count']} CPUs ({info['cpus_usable']} "
          f"usable); torch {info['torch']}, Python {info['python']}")
    print("threads: every lesson kernel and the reproduce process with OMP_NUM_THREADS=1, "
          "KDTEACH_DEVICE=cpu")
    print(f"load average (1/5/15 min) before: {load_before}", flush=True)
    lessons = []
    with tempfile.TemporaryDirectory(prefix="kdteach-course-") as folder:
        folder = Path(folder)
        env = lesson_environment(args.profile, folder / "cache")
        (folder / "lessons").mkdir()
        for path in args.lessons:
            print(f"  running {path.stem}", flush=True)
            lesson = run_lesson(path, env, folder / "lessons", args.timeout, read_stat)
            print(f"  {path.stem}: {lesson.seconds:.1f} s", flush=True)
            lessons.append(lesson)
        print("  running python -m kdteach reproduce", flush=True)
        reproduce = run_reproduce(reproduce_command(args.profile, folder / "reproduce",
                                                    overrides), env, read_stat)
        print(f"  reproduce: {reproduce['seconds']:.1f} s", flush=True)
        if args.keep_cache is not None:
            (folder / "cache").mkdir(exist_ok=True)  # a lesson that trained nothing: empty
            shutil.move(str(folder / "cache"), str(args.keep_cache))
            print(f"  the lessons' cache is kept in {args.keep_cache}", flush=True)
    load_after = bench.load_average()
    total = sum(lesson.seconds for lesson in lessons)
    rows = training_cells(lessons, args.threshold)
    ratio = total / reproduce["seconds"]
    print()
    print(format_lessons(lessons, args.threshold))
    print()
    print(format_training_cells(rows, args.threshold))
    print()
    print(f"the course: {total:.1f} s; python -m kdteach reproduce: {reproduce['seconds']:.1f} s; "
          f"course/reproduce {ratio:.1f}×" + (" (reproduce with overrides)" if overrides else ""))
    print(f"load average (1/5/15 min) before {load_before}, after {load_after}")
    loads = {f"lesson {lesson.name}": lesson.load for lesson in lessons}
    loads["the reproduce process"] = reproduce["load"]
    warnings = bench.load_warnings(loads)
    for line in warnings:
        print(line)
    out = {
        "settings": {"profile": args.profile, "only": args.only, "timeout": args.timeout,
                     "threshold": args.threshold, "reproduce_overrides": overrides},
        "machine": {**info, "load_before": load_before, "load_after": load_after},
        "lessons": [{**asdict(lesson), "cell_seconds": lesson.cell_seconds}
                    for lesson in lessons],
        "training_cells": rows,
        "total_s": total,
        "reproduce": reproduce,
        "course_over_reproduce": ratio,
        "load_warnings": warnings,
    }
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
        print(f"written to {args.json}")
    return out


if __name__ == "__main__":
    main()
