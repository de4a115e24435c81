"""What the hub tests start and stop: a JupyterHub on loopback for a class, the learners'
servers, a read-only shared folder, and the check that nothing they started lives on.

:func:`running_hub` starts JupyterHub from this virtualenv with ``jupyterhub_config.py``
beside this module, on free 127.0.0.1 ports, behind configurable-http-proxy from npm
(``make test-hub`` installs it into ``build/hub/``), and always stops it (its log is then
copied to ``build/hub/jupyterhub.log``). :class:`Hub` talks
to it through its REST API with the test's service token. Every process of a run carries
``KDTEACH_HUB_MARK=<mark>`` in its environment: :func:`end_marked_processes` finds and ends
whatever is left of a run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("jupyterhub_config.py")
PROXY = Path(os.environ.get("KDTEACH_HUB_PROXY")
             or ROOT / "build" / "hub" / "node_modules" / ".bin" / "configurable-http-proxy")
LOG_COPY = ROOT / "build" / "hub" / "jupyterhub.log"  # the last run's hub log
MARK = "KDTEACH_HUB_MARK"
LEARNERS = ("ada", "alan", "grace")
LESSONS = ("00_setup.ipynb", "01_standard_teacher.ipynb")
COMPARED = "01_standard_teacher.ipynb"  # the lesson whose numbers learners and lecturer share
PASSWORD = "distil-the-teacher"  # the class's password (8 characters at least)
HUB_START_S = 120  # from the hub process to its API's first answer, on a busy 2-core machine
SERVER_START_S = 180  # the three learners' servers starting at once


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the hub


@dataclass(frozen=True)
class Hub:
    """A running hub: its public URL (through the proxy), the test's token, where each
    learner's home is, and its log file."""

    url: str
    token: str
    homes: Path
    log: Path

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        """A request to the hub's REST API (``path`` after ``/hub/api``) with the token."""
        return requests.request(method, f"{self.url}/hub/api{path}",
                                headers={"Authorization": f"token {self.token}"},
                                timeout=60, **kwargs)

    def server_url(self, learner: str) -> str:
        return f"{self.url}/user/{learner}"

    def server_api(self, learner: str, method: str, path: str, **kwargs) -> requests.Response:
        """A request to a learner's own server (``path`` after ``/user/<learner>``), through
        the proxy, with the token."""
        return requests.request(method, f"{self.server_url(learner)}{path}",
                                headers={"Authorization": f"token {self.token}"},
                                timeout=60, **kwargs)

    def home(self, learner: str) -> Path:
        return self.homes / learner

    def start_servers(self, learners) -> None:
        """Start each learner's server and wait until every one is ready."""
        for name in learners:
            reply = self.api("POST", f"/users/{name}/server")
            if reply.status_code not in (201, 202):
                raise RuntimeError(f"the hub did not start {name}'s server: {reply.status_code} "
                                   f"{reply.text}\n{self.log_tail()}")
        deadline = time.monotonic() + SERVER_START_S
        waiting = list(learners)
        while waiting:
            model = self.api("GET", f"/users/{waiting[0]}").json()
            server = model.get("servers", {}).get("")
            if server and server.get("ready"):
                waiting.pop(0)
                continue
            if time.monotonic() > deadline:
                raise RuntimeError(f"{waiting} not ready after {SERVER_START_S} s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.5)

    def stop_servers(self, learners) -> None:
        """Ask the hub to stop each learner's server and wait (up to a minute) until it has:
        the servers end their kernels as they stop."""
        for name in learners:
            with contextlib.suppress(requests.RequestException):
                self.api("DELETE", f"/users/{name}/server")
        deadline = time.monotonic() + 60
        for name in learners:
            while time.monotonic() < deadline:
                try:
                    if not self.api("GET", f"/users/{name}").json().get("servers"):
                        break
                except requests.RequestException:
                    return  # the hub is gone: stopping it ends the servers
                time.sleep(0.5)

    def log_tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return "--- the end of the hub's log ---\n" + "\n".join(text)


def hub_environment(**values: str) -> dict[str, str]:
    """This process's environment without Jupyter's, matplotlib's and kdteach's settings,
    plus ``KDTEACH_HUB_<NAME>`` for each value, for ``jupyterhub_config.py``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUPYTER", "MPLBACKEND", "KDTEACH_", "PYTEST"))}
    env.update({f"KDTEACH_HUB_{name.upper()}": str(value) for name, value in values.items()})
    return env


@contextlib.contextmanager
def running_hub(run: Path, learners, shared_cache: Path, password: str,
                mark: str) -> Iterator[Hub]:
    """A JupyterHub for ``learners`` (their homes in ``run/home``), stopped on exit with
    every server and kernel it started, pass or fail."""
    if not PROXY.is_file():
        raise FileNotFoundError(
            f"no configurable-http-proxy at {PROXY}: `make test-hub` installs it from npm "
            "(or set KDTEACH_HUB_PROXY)")
    port, token = free_port(), os.urandom(16).hex()
    env = hub_environment(run_dir=run, learners=" ".join(learners), python=sys.executable,
                          port=port, api_port=free_port(), proxy_api_port=free_port(),
                          proxy=PROXY, shared_cache=shared_cache, password=password,
                          token=token, mark=mark)
    env[MARK] = mark  # the hub itself and the proxy it starts
    log_path = run / "jupyterhub.log"
    hub = Hub(f"http://127.0.0.1:{port}", token, run / "home", log_path)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(CONFIG)],
            cwd=run, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_until_up(hub, process)
            commands = [" ".join(p.cmdline()) for p in marked_processes(mark)]
            if not (any("jupyterhub" in c for c in commands)
                    and any("configurable-http-proxy" in c for c in commands)):
                raise RuntimeError(f"the hub and its proxy should carry {MARK}: {commands}")
            yield hub
        finally:
            try:
                hub.stop_servers(learners)
            finally:
                stop_process_group(process)
                LOG_COPY.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(log_path, LOG_COPY)  # for a look after a failure


def _wait_until_up(hub: Hub, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + HUB_START_S
    while True:
        try:
            if hub.api("GET", "/").ok:
                return
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"JupyterHub did not start:\n{hub.log_tail()}")
        time.sleep(0.5)


def stop_process_group(process: subprocess.Popen) -> None:
    """End a process started with ``start_new_session=True`` and its group: SIGTERM (the
    hub then stops its servers and its proxy), then SIGKILL after 30 s."""
    for sig, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue


# ---------------------------------------------------------------- processes and memory


def marked_processes(mark: str) -> list[psutil.Process]:
    """The processes whose environment holds ``KDTEACH_HUB_MARK=<mark>``."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get(MARK) == mark:
                found.append(process)
    return found


def end_marked_processes(mark: str) -> list[str]:
    """Kill whatever is left of a run; return what was left (``pid command``), if any."""
    left = marked_processes(mark)
    described = []
    for process in left:
        with contextlib.suppress(psutil.Error):
            described.append(f"{process.pid} {' '.join(process.cmdline())[:160]}")
            process.kill()
    psutil.wait_procs(left, timeout=10)
    return described


@dataclass(frozen=True)
class Memory:
    """Memory in bytes: ``resident`` (RSS: every page in RAM, the shared libraries too, as
    ``top`` shows it) and ``own`` (USS: the pages no other process shares, what ending the
    process gives back)."""

    resident: int
    own: int

    def __add__(self, other: Memory) -> Memory:
        return Memory(self.resident + other.resident, self.own + other.own)


def process_memory(pid: int, with_children: bool = True) -> Memory:
    """The memory of a process and (unless ``with_children=False``) all its descendants."""
    root = psutil.Process(pid)
    total = Memory(0, 0)
    for process in [root, *(root.children(recursive=True) if with_children else [])]:
        with contextlib.suppress(psutil.Error):
            info = process.memory_full_info()
            total += Memory(info.rss, info.uss)
    return total


# ---------------------------------------------------------------- the shared folder


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """``relative path -> (size, mtime in ns)`` of a folder, itself and everything in it."""
    found = {".": (0, folder.stat().st_mtime_ns)}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        size = 0 if stat.S_ISDIR(info.st_mode) else info.st_size
        found[str(path.relative_to(folder))] = (size, info.st_mtime_ns)
    return found


def make_read_only(folder: Path) -> str:
    """Make ``folder`` and everything in it unwritable for this user and say how: as root,
    whom no permission stops, with the immutable attribute (``chattr +i``); otherwise by
    removing every write bit. :func:`make_writable` undoes it."""
    if os.geteuid() == 0:
        if not shutil.which("chattr"):
            raise RuntimeError("as root, the test needs chattr (Debian's e2fsprogs) to make "
                               "the shared cache read-only")
        done = subprocess.run(["chattr", "-R", "+i", str(folder)], capture_output=True,
                              text=True)
        if done.returncode:
            raise RuntimeError(f"chattr +i failed on {folder} (does this file system keep "
                               f"the immutable attribute?): {done.stderr.strip()}")
        return "immutable (chattr +i)"
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return "no write permission (chmod a-w)"


def make_writable(folder: Path) -> None:
    """Undo :func:`make_read_only` (it is harmless on a folder that is writable)."""
    if not folder.exists():
        return
    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "-R", "-i", str(folder)], check=False, capture_output=True)
    for path in [folder, *folder.rglob("*")]:
        with contextlib.suppress(OSError):
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def refuses_writes(folder: Path) -> bool:
    """Whether creating a file in ``folder`` and changing a file in it both fail."""
    probe = folder / ".kdteach-write-probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        pass
    else:
        probe.unlink()
        return False
    for path in folder.rglob("*.pt"):
        try:
            with path.open("ab"):
                return False
        except OSError:
            return True
    return True
