"""The hub tests' class: a lecturer's shared cache, a JupyterHub, and three learners who run
lessons 00 and 01 at the same time.

The fixtures build it once for the module, in order, and take it all down again, pass or
fail:

1. ``lecturer``: ``python -m kdteach prepare --profile quick`` into a fresh folder, lesson 01
   run there by nbclient (the lecturer's own outputs), ``cache --check`` on it, and the
   folder made read-only (made writable again at the end).
2. ``hub``: JupyterHub on loopback (:func:`class_hub.running_hub`).
3. ``class_run``: a copy of the two lessons in each learner's home, each learner's server
   started through the hub's REST API, and in one thread per learner, at the same time,
   lesson 00 then lesson 01 run cell by cell in kernels of that server, over their
   websockets (:mod:`kernel_channels`); each kernel's memory is measured at the end.

``processes_of_this_run`` ends last: it fails the module if any process of the run (hub,
proxy, servers, kernels, the lecturer's kernel) is still alive after the others stopped.
The memory measured is printed at the end of the pytest run and written to
``build/hub/measured.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from class_hub import (
    COMPARED,
    LEARNERS,
    LESSONS,
    PASSWORD,
    ROOT,
    Memory,
    end_marked_processes,
    make_read_only,
    make_writable,
    process_memory,
    refuses_writes,
    running_hub,
    snapshot,
)
from kernel_channels import (
    CELL_TIMEOUT_S,
    CellRun,
    KernelChannels,
    code_cells,
    shut_down_kernel,
    start_kernel,
)

PREPARE_S = 600  # `prepare --profile quick` from an empty cache on a busy 2-core machine
MEASURED = ROOT / "build" / "hub" / "measured.json"

# what each learner's lesson 01 kernel reports about itself after the lesson
PROBE = """\
import json, os
from kdteach.protocol.cache import Cache
from kdteach.protocol.settings import get_settings
settings = get_settings()
print(json.dumps({"pid": os.getpid(), "folders": [str(f) for f in Cache().folders],
                  "profile": settings.profile, "device": str(settings.torch_device)}))
"""


def kdteach_environment(cache: Path | str, mark: str) -> dict[str, str]:
    """The environment of a lecturer's command: this one without Jupyter's, matplotlib's
    and kdteach's settings, then the lessons' (quick profile, CPU, one thread)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUPYTER", "MPLBACKEND", "KDTEACH_", "PYTEST"))}
    env.update({"KDTEACH_CACHE": str(cache), "KDTEACH_PROFILE": "quick",
                "KDTEACH_DEVICE": "cpu", "OMP_NUM_THREADS": "1", "KDTEACH_HUB_MARK": mark})
    return env


@pytest.fixture(scope="module")
def processes_of_this_run():
    """The mark every process of this run carries; at the very end, no such process may
    be left (those found are killed, and the module fails)."""
    mark = os.urandom(8).hex()
    yield mark
    left = end_marked_processes(mark)
    assert not left, "still running after the hub tests stopped everything:\n" + "\n".join(left)


@dataclass
class Lecturer:
    """The shared cache the lecturer filled, what it held before any learner ran, how it
    was made read-only, and lesson 01's outputs cell by cell in the lecturer's run."""

    cache: Path
    before: dict = field(repr=False)
    read_only_by: str
    refused_a_write: bool
    check_output: str = field(repr=False)
    outputs: dict[int, list[dict]] = field(repr=False)


def lecturer_run(lesson: Path, work: Path, env: dict) -> dict[int, list[dict]]:
    """The lecturer runs a lesson in a plain kernel (nbclient): ``cell index -> outputs``."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(lesson, as_version=4)
    NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(work)}}).execute(env=env)
    return {i: [dict(o) for o in cell.outputs] for i, cell in enumerate(notebook.cells)
            if cell.cell_type == "code"}


@pytest.fixture(scope="module")
def lecturer(tmp_path_factory, processes_of_this_run):
    """The lecturer's shared cache, filled, checked and read-only (writable again after)."""
    base = tmp_path_factory.mktemp("lecturer")
    cache = base / "shared-cache"
    env = kdteach_environment(cache, processes_of_this_run)
    kdteach = [sys.executable, "-m", "kdteach"]
    try:
        prepared = subprocess.run([*kdteach, "prepare", "--profile", "quick", "--quiet"],
                                  env=env, cwd=base, capture_output=True, text=True,
                                  timeout=PREPARE_S)
        assert prepared.returncode == 0, f"prepare failed:\n{prepared.stdout}{prepared.stderr}"
        shutil.copy(ROOT / "notebooks" / COMPARED, base)
        outputs = lecturer_run(base / COMPARED, base, env)
        read_only_by = make_read_only(cache)
        check = subprocess.run([*kdteach, "cache", "--check", "--profile", "quick"], env=env,
                               cwd=base, capture_output=True, text=True, timeout=300)
        assert check.returncode == 0, f"cache --check failed:\n{check.stdout}{check.stderr}"
        yield Lecturer(cache, snapshot(cache), read_only_by, refuses_writes(cache),
                       check.stdout, outputs)
    finally:
        make_writable(cache)


@pytest.fixture(scope="module")
def hub(lecturer, tmp_path_factory, processes_of_this_run):
    """JupyterHub for the learners, on the lecturer's shared cache."""
    run = tmp_path_factory.mktemp("hub")
    with running_hub(run, LEARNERS, lecturer.cache, PASSWORD, processes_of_this_run) as hub:
        yield hub


@dataclass
class LearnerRun:
    """What one learner's lessons showed (``lesson -> cells``), what their lesson 01 kernel
    reported about itself and was started with, the memory of each lesson's kernel and of
    their server at the end (both kernels still open), and the files in their own cache
    folder afterwards."""

    name: str
    lessons: dict[str, list[CellRun]] = field(default_factory=dict, repr=False)
    probe: dict = field(default_factory=dict)
    kernel_environment: dict = field(default_factory=dict)
    kernel_memory: dict[str, Memory] = field(default_factory=dict)
    server_memory: Memory = Memory(0, 0)
    own_cache_files: list[str] = field(default_factory=list)

    @property
    def total_memory(self) -> Memory:
        """The learner's server and kernels together."""
        return sum(self.kernel_memory.values(), self.server_memory)


def run_lessons(hub, learner: str) -> LearnerRun:
    """One learner: each lesson in a kernel of their own server, cell by cell, both kernels
    kept until the memory has been measured, then shut down."""
    server, result, kernels = hub.server_url(learner), LearnerRun(learner), {}
    try:
        for lesson in LESSONS:
            reply = hub.server_api(learner, "GET", f"/api/contents/{lesson}")
            reply.raise_for_status()
            kernels[lesson] = start_kernel(server, hub.token)
            with KernelChannels(server, hub.token, kernels[lesson], learner) as channels:
                channels.wait_ready()
                result.lessons[lesson] = [channels.run_cell(i, source)
                                          for i, source in code_cells(reply.json()["content"])]
                if lesson == COMPARED:
                    probe = channels.run_cell(-1, PROBE)
                    said = [o["text"] for o in probe.outputs if o.get("name") == "stdout"]
                    assert said, f"{learner}'s probe of the kernel failed: {probe.outputs}"
                    result.probe = json.loads(said[0])
        pid = result.probe["pid"]
        result.kernel_environment = _start_environment(pid)
        result.kernel_memory[COMPARED] = process_memory(pid)
        result.server_memory = process_memory(_server_pid(pid), with_children=False)
        for lesson, kernel_id in kernels.items():
            if lesson != COMPARED:
                result.kernel_memory[lesson] = process_memory(_sibling_kernel(pid, kernel_id))
    finally:
        for kernel_id in kernels.values():
            shut_down_kernel(server, hub.token, kernel_id)
    own = hub.home(learner) / "kdteach-cache"
    result.own_cache_files = sorted(p.name for p in own.iterdir()) if own.is_dir() else []
    return result


def _start_environment(pid: int) -> dict[str, str]:
    """The variables a kernel was started with that the class sets (ipykernel later sets
    its own ``MPLBACKEND``, the inline one, inside the kernel)."""
    import psutil

    env = psutil.Process(pid).environ()
    return {k: v for k, v in env.items()
            if k.startswith("KDTEACH_") or k in ("OMP_NUM_THREADS", "MPLBACKEND", "HOME",
                                                 "JUPYTERHUB_USER")}


def _server_pid(kernel_pid: int) -> int:
    """The learner's server: the parent of its kernels."""
    import psutil

    return psutil.Process(kernel_pid).ppid()


def _sibling_kernel(kernel_pid: int, kernel_id: str) -> int:
    """The pid of another kernel of the same server, found by its id (in the name of its
    connection file, on its command line)."""
    import psutil

    for child in psutil.Process(kernel_pid).parent().children():
        if any(kernel_id in arg for arg in child.cmdline()):
            return child.pid
    raise LookupError(f"no kernel {kernel_id} under the server")


@dataclass
class ClassRun:
    """Each learner's run, and how long the lessons took, all learners at once."""

    learners: dict[str, LearnerRun] = field(repr=False)
    seconds: float


@pytest.fixture(scope="module")
def class_run(hub, lecturer, pytestconfig):
    """The learners' homes with the lessons, their servers, and their lessons run at once."""
    for learner in LEARNERS:
        home = hub.home(learner)
        home.mkdir(parents=True)
        for lesson in LESSONS:
            shutil.copy(ROOT / "notebooks" / lesson, home / lesson)
    hub.start_servers(LEARNERS)
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(LEARNERS)) as pool:
        futures = {name: pool.submit(run_lessons, hub, name) for name in LEARNERS}
        runs = {name: future.result() for name, future in futures.items()}
    result = ClassRun(runs, time.monotonic() - start)
    record_memory(pytestconfig, result)
    return result


def record_memory(config, result: ClassRun) -> None:
    """Keep each learner's memory for the end of the run and for ``build/hub/measured.json``."""
    def mib(memory: Memory) -> dict[str, int]:
        return {"resident_mib": round(memory.resident / 2**20),
                "own_mib": round(memory.own / 2**20)}

    rows = {name: {"kernels": {k: mib(v) for k, v in run.kernel_memory.items()},
                   "server": mib(run.server_memory), "total": mib(run.total_memory)}
            for name, run in result.learners.items()}
    MEASURED.parent.mkdir(parents=True, exist_ok=True)
    MEASURED.write_text(json.dumps({"profile": "quick", "lessons": list(LESSONS),
                                    "learners_at_once": len(LEARNERS),
                                    "lessons_seconds": round(result.seconds, 1),
                                    "memory": rows}, indent=2) + "\n")
    lines = [f"{len(LEARNERS)} learners ran lessons 00 and 01 at once in {result.seconds:.0f} s;"
             " memory at the end, both kernels open (quick profile), resident (own):"]
    for name, row in rows.items():
        parts = [f"{k[:2]} kernel {v['resident_mib']} ({v['own_mib']}) MiB"
                 for k, v in sorted(row["kernels"].items())]
        parts.append(f"server {row['server']['resident_mib']} ({row['server']['own_mib']}) MiB")
        total = row["total"]
        lines.append(f"  {name}: {', '.join(parts)}; total {total['resident_mib']} "
                     f"({total['own_mib']}) MiB")
    lines.append(f"  (written to {MEASURED.relative_to(ROOT)})")
    config.stash.setdefault(_SUMMARY, []).extend(lines)


_SUMMARY = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter, config):
    lines = config.stash.get(_SUMMARY, [])
    if lines:
        terminalreporter.section("kdteach hub: memory per learner")
        for line in lines:
            terminalreporter.write_line(line)
