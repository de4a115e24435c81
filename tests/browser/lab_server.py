"""What the browser tests share: a JupyterLab server and Debian's chromium, both started
for a test module and always stopped, and the page helpers that drive a lesson.

:func:`running_lab` serves copies of some lessons from this virtualenv on a free
localhost port with a token, with fresh settings (the news toast off), its own Jupyter
folders and its own kdteach cache, under the quick profile. :func:`running_chromium`
launches chromium through playwright (never ``playwright install``). :class:`Console`
records what a page logs and refuses every request that would leave this machine.
Screenshots go to ``build/browser/``, which holds this run's screenshots only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "browser"
CHROMIUM = os.environ.get("KDTEACH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LOCAL = ("http://127.0.0.1", "http://localhost", "ws://127.0.0.1", "ws://localhost", "data:",
         "blob:", "file:", "about:")
LAB_START_S = 90  # from the server process to its first answer, on a busy 2-core machine
RUN_ALL_S = 240  # the slowest notebook on a busy 2-core machine, with an empty cache


# ---------------------------------------------------------------- the JupyterLab server


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab: where it answers, its token, and the folder it serves."""

    base: str
    token: str
    root: Path

    def url(self, path: str) -> str:
        """``path`` on this server (it starts with ``/``), with the token."""
        return f"{self.base}{path}{'&' if '?' in path else '?'}token={self.token}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def lab_environment(home: Path) -> dict[str, str]:
    """This process's environment without its Jupyter and matplotlib choices, with Jupyter
    folders, settings and a kdteach cache of its own under ``home``, and the quick profile
    on one CPU thread."""
    settings = home / "settings"
    notification = "@jupyterlab/apputils-extension/notification.jupyterlab-settings"
    write_json(settings / notification, {"fetchNews": "false", "checkForUpdates": False})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "MPLBACKEND"))}
    env.update({
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "KDTEACH_PROFILE": "quick", "KDTEACH_DEVICE": "cpu",
        "KDTEACH_CACHE": str(home / "cache"), "OMP_NUM_THREADS": "1",
    })
    return env


@contextlib.contextmanager
def running_lab(home: Path, root: Path, env: dict[str, str] | None = None) -> Iterator[Lab]:
    """JupyterLab serving ``root``, with everything it writes under ``home`` and ``env``
    added to :func:`lab_environment`; stopped, with its kernels, when the block ends,
    whatever happened in it. Its log is ``home/jupyterlab.log``."""
    env = {**lab_environment(home), **(env or {})}
    port, token = free_port(), os.urandom(12).hex()
    log_path = home / "jupyterlab.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
             "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
             *(["--allow-root"] if os.geteuid() == 0 else [])],  # CI runs as root
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            lab = Lab(f"http://127.0.0.1:{port}", token, root)
            _wait_until_answering(lab, server, log_path)
            yield lab
        finally:
            stop(server)


def _wait_until_answering(lab: Lab, server: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + LAB_START_S
    while True:
        try:
            with urllib.request.urlopen(lab.url("/api/status"), timeout=5):
                return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("JupyterLab did not start:\n" + log_path.read_text()
                                   ) from None
            time.sleep(0.5)


def stop(server: subprocess.Popen) -> None:
    """End the server and the kernels it started (its own process group)."""
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            break
        try:
            server.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue


# ---------------------------------------------------------------- chromium and its pages

_shots_emptied = False


def screenshot_folder() -> Path:
    """``build/browser/``, emptied the first time a test process asks for it, so that it
    holds this run's screenshots only, from every test module."""
    global _shots_emptied
    if not _shots_emptied:
        shutil.rmtree(SHOTS, ignore_errors=True)
        _shots_emptied = True
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


@contextlib.contextmanager
def running_chromium():
    """Debian's chromium, headless, through playwright; closed when the block ends."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no chromium at {CHROMIUM}: apt-get install -y chromium (make test-browser "
                    f"installs it), or set KDTEACH_CHROMIUM")
    screenshot_folder()
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


class Console:
    """Everything the page (and its frames) logs, every uncaught error, and every request
    that tried to leave this machine (those are refused). ``error_sources`` holds, for
    each of ``errors``, the address of the script that logged it ("" if unknown)."""

    def __init__(self, page):
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.error_sources: list[str] = []
        self.remote: list[str] = []
        page.on("console", self._message)
        page.on("pageerror", self._uncaught)
        page.route("**/*", self._route)

    def _message(self, msg):
        self.lines.append(f"[{msg.type}] {msg.text}")
        if msg.type == "error":
            self.errors.append(msg.text)
            self.error_sources.append((msg.location or {}).get("url", ""))

    def _uncaught(self, exc):
        self.errors.append(f"uncaught: {exc}")
        self.error_sources.append("")

    def _route(self, route):
        url = route.request.url
        if url.startswith(LOCAL):
            route.continue_()
        else:
            self.remote.append(url)
            route.abort()

    def dump(self) -> str:
        return "\n".join(self.lines[-200:]) or "(the console is empty)"


@contextlib.contextmanager
def watched_page(browser, request, width: int = 1400, height: int = 1000):
    """A page in a fresh browser context, its :class:`Console` as ``page.console``; if the
    test failed, a screenshot of the page and its console are kept."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.console = Console(page)
    try:
        yield page
        if getattr(request.node, "failed", False):
            page.screenshot(path=str(screenshot_folder() / f"{request.node.name}-failure.png"))
            print(f"\n--- browser console of {request.node.name} ---\n{page.console.dump()}")
    finally:
        context.close()


def shot(page, name: str, locator=None) -> Path:
    path = screenshot_folder() / f"{name}.png"
    (locator or page).screenshot(path=str(path))
    return path


# ---------------------------------------------------------------- a lesson in the lab


def open_notebook(page, lab: Lab, notebook: str):
    """Open a lesson alone in JupyterLab and wait until its kernel is idle."""
    page.goto(lab.url(f"/lab/tree/{notebook}?reset"))
    page.wait_for_function(
        "(name) => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " return w && w.context && w.context.path === name && w.sessionContext.session"
        " && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.status === 'idle'; }",
        arg=notebook, timeout=90_000)
    news = page.get_by_role("button", name="No")  # the news question, if it was asked
    if news.count():
        news.first.click()


# Progress bars close when their loop ends (leave=False), so a watcher counts the most
# that were ever shown at once, and whether one ever showed as plain text instead.
WATCH_PROGRESS = """() => {
  window.__kdteach_bars = 0; window.__kdteach_text_bars = 0;
  new MutationObserver(() => {
    const n = document.querySelectorAll('.jp-OutputArea-output .widget-hprogress').length;
    window.__kdteach_bars = Math.max(window.__kdteach_bars, n);
    const text = Array.from(document.querySelectorAll('.jp-OutputArea-output pre'))
      .filter(e => /^(HBox|FloatProgress)\\(/.test(e.textContent)).length;
    window.__kdteach_text_bars = Math.max(window.__kdteach_text_bars, text);
  }).observe(document.body, {childList: true, subtree: true});
}"""


def start_run_all(page):
    """Clear every output and run every cell (returns at once)."""
    page.evaluate(WATCH_PROGRESS)
    page.evaluate(
        "() => { window.__kdteach_done = null; const app = window.jupyterapp;"
        " app.shell.activateById(app.shell.currentWidget.id);"
        " app.commands.execute('notebook:clear-all-cell-outputs')"
        ".then(() => app.commands.execute('notebook:run-all-cells'))"
        ".then(() => { window.__kdteach_done = 'ok'; },"
        " (e) => { window.__kdteach_done = 'failed: ' + e; }); }")


def wait_run_done(page):
    """Wait until every code cell shows an execution count of this run."""
    page.wait_for_function("() => window.__kdteach_done !== null", timeout=RUN_ALL_S * 1000)
    assert page.evaluate("() => window.__kdteach_done") == "ok"
    page.wait_for_function(
        "() => { const p = Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt'));"
        " return p.length > 0 && p.every(e => /\\[\\d+\\]/.test(e.textContent)); }",
        timeout=RUN_ALL_S * 1000)


def open_and_run(page, lab: Lab, notebook: str):
    open_notebook(page, lab, notebook)
    start_run_all(page)
    wait_run_done(page)


def check_clean(page):
    """No widget failed to show, no cell raised, the console has no error and nothing
    asked the network."""
    console = page.console
    assert page.get_by_text("Error displaying widget").count() == 0
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                        ).filter(has_text="Traceback").count() == 0, "a cell raised an error"
    assert not console.errors, "console errors:\n" + "\n".join(console.errors)
    assert not console.remote, f"requests to the network: {console.remote}"
