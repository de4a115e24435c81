"""What the browser tests of the published lessons share: the site and decks built into a
temporary folder, an offline page at the decks' frame size, and a walk over every slide.

Used by test_accessibility.py and test_slide_fit.py, with chromium from
:func:`lab_server.running_chromium`. The site is built with ``run_unexecuted=False``:
every page shows its notebook as saved, as the decks do, so no test here runs a notebook
or trains a model.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("*.ipynb"))
SOLUTIONS = sorted((NOTEBOOKS / "solutions").glob("*.ipynb"))
FRAME = {"width": 1280, "height": 720}  # the decks' 16:9 frame, shown at scale 1
LOCAL = ("file:", "data:", "blob:", "about:")


def build_published(folder: Path) -> tuple[Path, Path]:
    """The site and the decks of the lessons, built into ``folder``: ``(site, slides)``."""
    from kdteach.publish.site import build_site
    from kdteach.publish.slides import build_decks

    site, slides = folder / "site", folder / "slides"
    build_site(NOTEBOOKS, site, run_unexecuted=False)
    build_decks(LESSONS, slides)
    return site, slides


@contextmanager
def offline_page(browser):
    """A page at the decks' frame size whose requests may not leave the machine: each one
    that tries is refused and listed in ``page.remote``."""
    context = browser.new_context(viewport=FRAME)
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.remote = []

        def route(request_route):
            url = request_route.request.url
            if url.startswith(LOCAL):
                request_route.continue_()
            else:
                page.remote.append(url)
                request_route.abort()

        page.route("**/*", route)
        yield page
    finally:
        context.close()


SLIDE_FITTED = "() => Reveal.getCurrentSlide().dataset.kdFit !== undefined"


def open_deck(page, deck: Path) -> list[tuple[int, int]]:
    """Open ``deck`` and wait for reveal.js; returns every slide's ``(h, v)`` indices."""
    page.goto(deck.as_uri())
    page.wait_for_function("() => window.Reveal && Reveal.isReady()")
    indices = page.evaluate("() => Reveal.getSlides().map(s => Reveal.getIndices(s))")
    return [(i["h"], i.get("v") or 0) for i in indices]


def show_slide(page, h: int, v: int) -> None:
    """Go to slide ``(h, v)`` and wait until its maths is typeset and it is fitted to the
    frame (the deck's script then sets its ``data-kd-fit``)."""
    page.evaluate("([h, v]) => { const slide = Reveal.getSlide(h, v);"
                  " if (slide !== Reveal.getCurrentSlide()) {"
                  " delete slide.dataset.kdFit; Reveal.slide(h, v); } }", [h, v])
    page.wait_for_function(SLIDE_FITTED)
