"""A lesson presented live: lesson 03 as a RISE slideshow in JupyterLab, its widgets
driven from the slides, checked in chromium.

JupyterLab serves a copy of lesson 03 with its own Jupyter folders, settings and kdteach
cache under the quick profile (:mod:`lab_server`), and finds the extensions as ``make lab``
does: the virtualenv's (jupyterlab-rise among them) and the repository's ``jupyter/``
folder, which holds kdteach-rise-widgets (without it the widgets cannot draw in RISE).
The RISE theme is ``white``, the one that needs no web fonts. The test runs every cell
in JupyterLab, opens the slideshow with the notebook's RISE button, pages to the
retrain-by-hand slide and runs its cell from the slideshow, pages on to the slide of the
retrain explorer, drags its hard-weight slider and presses Retrain there. Screenshots go
to ``build/browser/``. Run with ``make test-browser``.
"""

from __future__ import annotations

import re
import shutil

import pytest
from lab_server import (
    ROOT,
    WATCH_PROGRESS,
    check_clean,
    open_notebook,
    running_lab,
    shot,
    start_run_all,
    wait_run_done,
    watched_page,
    write_json,
)

pytestmark = pytest.mark.browser

LESSON = "03_grid_search.ipynb"
RISE_THEME = "white"  # reveal.js's white theme ships its fonts; "simple" asks Google for its
MSE = re.compile(r"test MSE \d+\.\d{4}")
CURRENT_SLIDE = ".reveal .slides section.present:not(.stack)"  # the innermost slide shown
MAX_SLIDES = 40  # lesson 03 has fewer slides and subslides than this
SLIDE_S = 0.6  # time for reveal.js to move to the next slide
RETRAIN_S = 60  # a Retrain click answers at once from the prepared grid; a margin for load

# What RISE's slideshow page logs as errors whatever the notebook holds: (what the message
# says, where the logging script is, why it is harmless). Any other error fails the test.
RISE_NOISE = [
    (r"/lab/extensions/@jupyter-notebook/lab-extension/|/lab/extensions/@jupyter/nbgrader/",
     "", "Notebook 7's and nbgrader's JupyterLab extensions are built for JupyterLab 4.6 and "
         "cannot load in RISE's older JupyterLab core; a slideshow needs neither"),
    (r"^RangeError: Maximum call stack size exceeded$", "/static/rise/",
     "the design tokens of RISE's own bundled toolkit"),
    (r"^Refused to apply style from '[^']*/files/(rise|03_grid_search)\.css'", "",
     "RISE tries a rise.css and a <notebook>.css beside the notebook; the lessons have none"),
]


def is_rise_noise(text: str, source: str) -> bool:
    return any(re.search(pattern, text) and where in source for pattern, where, _ in RISE_NOISE)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a copy of lesson 03, with RISE's theme set and the repository's
    extensions on JUPYTER_PATH, as ``make lab`` has them."""
    home = tmp_path_factory.mktemp("live-slides")
    work = home / "notebooks"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / LESSON, work)
    write_json(home / "settings" / "jupyterlab-rise" / "plugin.jupyterlab-settings",
               {"theme": RISE_THEME})
    with running_lab(home, work, env={"JUPYTER_PATH": str(ROOT / "jupyter")}) as server:
        yield server


@pytest.fixture
def page(browser, request):
    with watched_page(browser, request, width=1600, height=1000) as page:
        yield page


def open_slideshow(page):
    """Select the lesson's first cell (RISE starts on the selected cell's slide), press the
    notebook's RISE button, and wait for the first slide in the panel it opens; returns the
    slideshow's frame and its page-level frame object."""
    page.evaluate("() => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = 0; }")
    page.locator(".jp-NotebookPanel-toolbar [data-jp-item-name='RISE-button'] jp-button").click()
    slides = page.frame_locator("iframe[src*='/rise/']")
    slides.locator(CURRENT_SLIDE).wait_for(timeout=90_000)
    (frame,) = [f for f in page.frames if "/rise/" in f.url]
    return slides, frame


def page_to(page, slides, shows: str):
    """Press Space (reveal.js's next) until the current slide shows ``shows``."""
    current = slides.locator(CURRENT_SLIDE)
    for _ in range(MAX_SLIDES):
        if shows in current.inner_text():
            return current
        page.keyboard.press("Space")
        page.wait_for_timeout(SLIDE_S * 1000)
    raise AssertionError(f"no slide shows {shows!r} within {MAX_SLIDES} slides")


def run_from_the_slide(page, slides, frame, slide):
    """Shift+Enter (RISE's run) on the slide's code cell, once RISE has selected it;
    returns the cell, after its new execution count shows."""
    section = slide.get_attribute("id")  # the slide's own id: RISE moves on after the run
    cell = slides.locator(f"section#{section} .jp-CodeCell").first
    before = cell.locator(".jp-InputPrompt").inner_text()
    slides.locator(f"section#{section} .jp-CodeCell.jp-mod-active").wait_for()
    frame.evaluate(WATCH_PROGRESS)
    page.keyboard.press("Shift+Enter")
    frame.wait_for_function(
        "([el, old]) => { const p = el.textContent.trim();"
        " return /\\[\\d+\\]/.test(p) && p !== old; }",
        arg=[cell.locator(".jp-InputPrompt").element_handle(), before.strip()],
        timeout=RETRAIN_S * 1000)
    return cell


def drag_right(page, handle, pixels: int):
    box = handle.bounding_box()  # in the page's coordinates, frame or not
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + pixels, y, steps=8)
    page.mouse.up()


def retrain_and_read(frame, panel, button, old: str = "") -> str:
    """Press Retrain and return the "test MSE …" it then shows (other than ``old``)."""
    button.click()
    frame.wait_for_function(
        "([el, old]) => { const m = el.innerText.match(/test MSE \\d+\\.\\d{4}/);"
        " return m && m[0] !== old; }",
        arg=[panel.element_handle(), old], timeout=RETRAIN_S * 1000)
    return MSE.search(panel.inner_text()).group(0)


def test_lesson_03_presents_live_with_working_widgets(page, lab):
    open_notebook(page, lab, LESSON)
    start_run_all(page)
    wait_run_done(page)
    check_clean(page)  # the lesson ran cleanly in JupyterLab, before the slideshow

    slides, frame = open_slideshow(page)
    panel_frame = page.locator("iframe[src*='/rise/']")
    assert slides.locator(".reveal .slides section").count() >= 20  # every slide is there
    assert slides.locator(CURRENT_SLIDE).get_attribute("id") == "slide-0-0"  # the title
    assert slides.get_by_text("Error displaying widget").count() == 0  # no bar left behind

    # RISE's own run: the retrain-by-hand cell, run from its slide, trains with a progress
    # bar drawn as a widget in the slide, and prints its result there
    by_hand = page_to(page, slides, "retrain_student(exp")
    cell = run_from_the_slide(page, slides, frame, by_hand)
    assert "retrained by hand" in cell.inner_text()
    assert frame.evaluate("() => window.__kdteach_bars") >= 1, "no progress bar in the slide"
    assert frame.evaluate("() => window.__kdteach_text_bars") == 0, "a bar showed as text"

    # the retrain explorer's slide: the panel is drawn as widgets, not as its text fallback
    slide = page_to(page, slides, "retrain_explorer(exp)")
    panel = slide.locator(".widget-vbox").filter(
        has=slides.get_by_role("button", name="Retrain")).last
    panel.wait_for()
    assert "An interactive panel" not in slide.inner_text()
    assert panel.locator(".noUi-handle").count() == 3  # hard, L_HP and epochs
    button = panel.get_by_role("button", name="Retrain")
    first = retrain_and_read(frame, panel, button)
    assert "Looked up" in panel.inner_text()  # from the grid the lesson prepared
    shot(page, "live_slides-explorer", panel_frame)

    # drag the hard weight: the kernel moves L_HP to 1 - hard, Retrain shows another student
    hard, hp = (panel.locator(".widget-slider").nth(i) for i in (0, 1))
    hard_before = hard.locator(".widget-readout").inner_text()
    hp_before = hp.locator(".widget-readout").inner_text()
    drag_right(page, hard.locator(".noUi-handle"), 40)
    frame.wait_for_function("([el, old]) => el.innerText.trim() !== old",
                            arg=[hp.locator(".widget-readout").element_handle(), hp_before])
    hard_now = float(hard.locator(".widget-readout").inner_text())
    assert hard_now != float(hard_before)
    assert float(hp.locator(".widget-readout").inner_text()) == pytest.approx(1 - hard_now)
    second = retrain_and_read(frame, panel, button, old=first)
    assert second != first
    assert f"hard {hard_now:g}" in panel.inner_text()
    assert panel.locator("img").count() >= 1  # the retrained student's figure
    shot(page, "live_slides-after-slider", panel_frame)

    # nothing failed to draw, nothing asked the network, and the only console errors are
    # the slideshow page's own (RISE_NOISE)
    assert slides.get_by_text("Error displaying widget").count() == 0
    console = page.console
    assert not console.remote, f"requests to the network: {console.remote}"
    unexplained = [text for text, source in zip(console.errors, console.error_sources)
                   if not is_rise_noise(text, source)]
    assert not unexplained, "console errors:\n" + "\n".join(unexplained)
