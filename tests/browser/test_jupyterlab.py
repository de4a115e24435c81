"""What a learner sees, checked in a real browser: JupyterLab and a slide deck.

JupyterLab runs from this virtualenv on a free localhost port with a token, in a
temporary folder holding copies of the lessons, with fresh settings (the news toast
off) and its own cache, under the quick profile. Debian's chromium, driven by
playwright, runs two lessons and a deck, and a screenshot of each checked state is
saved in ``build/browser/``. Run with ``make test-browser`` (``make test`` does).
"""

from __future__ import annotations

import re
import shutil

import pytest
from lab_server import (
    ROOT,
    RUN_ALL_S,
    SHOTS,
    check_clean,
    open_and_run,
    open_notebook,
    running_lab,
    shot,
    start_run_all,
    wait_run_done,
    watched_page,
)

pytestmark = pytest.mark.browser

MSE = re.compile(r"test MSE (\d+\.\d{4})")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on the lessons' copies (:class:`lab_server.Lab`)."""
    home = tmp_path_factory.mktemp("lab")
    work = home / "notebooks"
    shutil.copytree(ROOT / "notebooks", work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    with running_lab(home, work) as server:
        yield server


@pytest.fixture
def page(browser, request):
    with watched_page(browser, request) as page:
        yield page


try:
    from playwright.sync_api import Error as PlaywrightError
except ImportError:  # reported by the browser fixture, which needs playwright
    PlaywrightError = Exception


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
