"""What a learner sees, checked in a real browser: JupyterLab and a slide deck.

JupyterLab runs from this virtualenv on a free localhost port with a token, in a
temporary folder holding copies of the lessons, with fresh settings (the news toast
off) and its own cache, under the quick profile. Debian's chromium, driven by
playwright, runs two lessons and a deck, and a screenshot of each checked state is
saved in ``build/browser/``. Run with ``make test-browser`` (``make test`` does).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "browser"
CHROMIUM = os.environ.get("KDTEACH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LOCAL = ("http://127.0.0.1", "http://localhost", "ws://127.0.0.1", "ws://localhost", "data:",
         "blob:", "file:", "about:")
MSE = re.compile(r"test MSE (\d+\.\d{4})")
RUN_ALL_S = 240  # the slowest notebook on a busy 2-core machine, with an empty cache


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on the lessons' copies: ``(base_url, token)``."""
    home = tmp_path_factory.mktemp("lab")
    work = home / "notebooks"
    shutil.copytree(ROOT / "notebooks", work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = home / "settings"
    notification = "@jupyterlab/apputils-extension/notification.jupyterlab-settings"
    _write_json(settings / notification, {"fetchNews": "false", "checkForUpdates": False})
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
    port, token = _free_port(), os.urandom(12).hex()
    log = (home / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
         *(["--allow-root"] if os.geteuid() == 0 else [])],  # CI runs as root
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n"
                                       + (home / "jupyterlab.log").read_text()) from None
                time.sleep(0.5)
        yield base, token
    finally:
        _stop(server)
        log.close()


def _stop(server: subprocess.Popen) -> None:
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


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no chromium at {CHROMIUM}: apt-get install -y chromium (make test-browser "
                    f"installs it), or set KDTEACH_CHROMIUM")
    shutil.rmtree(SHOTS, ignore_errors=True)  # this run's screenshots only
    SHOTS.mkdir(parents=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


class Console:
    """Everything the page logs, every uncaught error, and every request that tried to
    leave this machine (those are refused)."""

    def __init__(self, page):
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.remote: list[str] = []
        page.on("console", self._message)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.route("**/*", self._route)

    def _message(self, msg):
        self.lines.append(f"[{msg.type}] {msg.text}")
        if msg.type == "error":
            self.errors.append(msg.text)

    def _route(self, route):
        url = route.request.url
        if url.startswith(LOCAL):
            route.continue_()
        else:
            self.remote.append(url)
            route.abort()

    def dump(self) -> str:
        return "\n".join(self.lines[-200:]) or "(the console is empty)"


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    console = Console(page)
    page.console = console
    yield page
    failed = getattr(request.node, "failed", False)
    if failed:
        page.screenshot(path=str(SHOTS / f"{request.node.name}-failure.png"))
        print(f"\n--- browser console of {request.node.name} ---\n{console.dump()}")
    context.close()


try:
    from playwright.sync_api import Error as PlaywrightError
except ImportError:  # reported by the browser fixture, which needs playwright
    PlaywrightError = Exception


def shot(page, name: str, locator=None) -> Path:
    path = SHOTS / f"{name}.png"
    (locator or page).screenshot(path=str(path))
    return path


def open_notebook(page, lab, notebook: str):
    """Open a lesson alone in JupyterLab and wait until its kernel is idle."""
    base, token = lab
    page.goto(f"{base}/lab/tree/{notebook}?reset&token={token}")
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


def open_and_run(page, lab, notebook: str):
    open_notebook(page, lab, notebook)
    start_run_all(page)
    wait_run_done(page)


def check_clean(page):
    console = page.console
    assert page.get_by_text("Error displaying widget").count() == 0
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                        ).filter(has_text="Traceback").count() == 0, "a cell raised an error"
    assert not console.errors, "console errors:\n" + "\n".join(console.errors)
    assert not console.remote, f"requests to the network: {console.remote}"


def test_setup_notebook_runs_and_its_widgets_render(page, lab):
    open_and_run(page, lab, "00_setup.ipynb")
    assert page.get_by_text("profile: quick").count() >= 1, "ran with the quick profile"
    outputs = page.locator(".jp-OutputArea-output")
    explorer = outputs.filter(has=page.locator(".widget-slider")).last
    explorer.scroll_into_view_if_needed()
    assert explorer.locator(".noUi-handle").count() >= 2  # feature and noise sliders
    assert explorer.locator("img").count() >= 1  # its figure
    assert outputs.filter(has_text="All good").count() + outputs.filter(has_text="FIX:").count()
    shot(page, "00_setup-run")
    check_clean(page)


def mse_text(panel) -> str:
    match = MSE.search(panel.inner_text())
    return match.group(0) if match else ""


def test_grid_search_progress_bars_and_live_retrain(page, lab):
    open_notebook(page, lab, "03_grid_search.ipynb")
    start_run_all(page)
    bar = page.locator(".jp-OutputArea-output .widget-hprogress").first
    bar.wait_for(state="attached", timeout=RUN_ALL_S * 1000)
    try:  # the bar closes when its loop ends: catch it while it lasts, else the whole page
        cell = bar.locator("xpath=ancestor::div[contains(@class, 'jp-Cell')][1]")
        cell.screenshot(path=str(SHOTS / "03_grid_search-progress.png"), timeout=5000)
    except PlaywrightError:
        shot(page, "03_grid_search-progress")
    wait_run_done(page)
    assert page.get_by_text("profile quick").count() >= 1, "ran with the quick profile"
    assert page.evaluate("() => window.__kdteach_bars") >= 1, "progress bars render as widgets"
    assert page.evaluate("() => window.__kdteach_text_bars") == 0, "a bar showed as text"

    panel = page.locator(".widget-vbox").filter(
        has=page.get_by_role("button", name="Retrain")).last
    panel.scroll_into_view_if_needed()
    button = panel.get_by_role("button", name="Retrain")
    button.click()
    page.wait_for_function("(el) => /test MSE \\d+\\.\\d{4}/.test(el.innerText)",
                           arg=panel.element_handle(), timeout=120_000)
    first = mse_text(panel)
    shot(page, "03_retrain-first", panel)

    hard = panel.locator(".widget-slider").first
    readout = hard.locator(".widget-readout")
    before = readout.inner_text()
    handle = hard.locator(".noUi-handle").first
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 60, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    page.wait_for_function("([el, old]) => el.innerText.trim() !== old",
                           arg=[readout.element_handle(), before])
    assert readout.inner_text() != before, "dragging the slider should change the hard weight"

    button.click()
    page.wait_for_function(
        "([el, old]) => { const m = el.innerText.match(/test MSE \\d+\\.\\d{4}/);"
        " return m && m[0] !== old; }",
        arg=[panel.element_handle(), first], timeout=120_000)
    second = mse_text(panel)
    assert second and second != first
    shot(page, "03_retrain-after-slider", panel)
    check_clean(page)


# MathJax has typeset the formulas of the slide on screen, and each takes up room.
SHOWN_MATHS = """() => {
  if (!(window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0)) return false;
  const maths = Array.from(document.querySelectorAll("section.present .MathJax"));
  return maths.length > 0 && maths.every(m => m.getBoundingClientRect().width > 0);
}"""


def test_a_deck_renders_offline_with_typeset_maths(page, tmp_path):
    from kdteach.publish.slides import build_decks

    lesson = ROOT / "notebooks" / "01_standard_teacher.ipynb"
    (deck,) = build_decks([lesson], tmp_path / "slides")
    page.goto(deck.as_uri())
    title = page.locator(".reveal .slides section.present h1").first
    title.wait_for(state="visible")
    assert "distilling from a standard teacher" in title.inner_text().lower()  # CSS capitals
    page.wait_for_function(SHOWN_MATHS)
    shot(page, "slides-title")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(SHOWN_MATHS)
    assert page.locator("section.present .MathJax_Display").count() >= 1  # a display formula
    shot(page, "slides-maths")
    assert not page.console.remote, f"the deck asked the network for {page.console.remote}"
    assert not [e for e in page.console.errors if e.startswith("uncaught")], page.console.dump()
