"""Pages everyone can read: the offline site and decks checked with axe-core in chromium.

The site (``make site``) and the decks (``make slides``) are built into a temporary folder
from the lessons and solutions as saved, and opened from ``file://``. axe-core (the copy
that ``axe-playwright-python`` ships) runs in each page of the site, and on every slide of
every deck as it is shown; no rule may find a *serious* or *critical* violation (axe's
two highest impacts: colour contrast, form controls without a name, images without a text
alternative, a page without a language, ...). Every figure must also carry a text
alternative of its own, not a generic word such as "image".
"""

from __future__ import annotations

from html.parser import HTMLParser

import nbformat
import pytest
from published import (
    LESSONS,
    SOLUTIONS,
    build_published,
    offline_page,
    open_deck,
    show_slide,
)

pytestmark = pytest.mark.browser

SERIOUS = ("serious", "critical")
PAGES = (["index.html"] + [f"{p.stem}.html" for p in LESSONS]
         + [f"solutions/{p.stem}.html" for p in SOLUTIONS])
GENERIC_ALT = {"", "image", "figure", "plot", "chart", "graph", "picture", "output",
               "no description has been provided for this image"}
MIN_ALT_WORDS = 5
MATHS_DONE = "() => !(window.MathJax && MathJax.Hub) || MathJax.Hub.queue.pending === 0"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    return build_published(tmp_path_factory.mktemp("published"))


def serious_violations(page, context=None) -> list[str]:
    """axe-core's serious and critical findings on ``page`` (in ``context``, a CSS selector,
    or the whole document), one line per rule."""
    from axe_playwright_python.base import AXE_SCRIPT

    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SCRIPT)
    results = page.evaluate(
        "async ([context]) => await axe.run(context ? {include: [[context]]} : document,"
        " {resultTypes: ['violations']})", [context])
    return [f"{v['id']} ({v['impact']}, {len(v['nodes'])} element(s), e.g. "
            f"{v['nodes'][0]['html'][:160]}): {v['help']}"
            for v in results["violations"] if v["impact"] in SERIOUS]


@pytest.mark.parametrize("name", PAGES)
def test_a_site_page_has_no_serious_accessibility_violation(browser, published, name):
    site, _ = published
    with offline_page(browser) as page:
        page.goto((site / name).as_uri())
        page.wait_for_function(MATHS_DONE)
        found = serious_violations(page)
        assert not page.remote, f"{name} asked the network for {page.remote}"
    assert not found, f"{name}:\n" + "\n".join(found)


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_every_slide_of_a_deck_has_no_serious_accessibility_violation(browser, published,
                                                                      lesson):
    _, slides = published
    deck = slides / f"{lesson.stem}.slides.html"
    found = []
    with offline_page(browser) as page:
        for h, v in open_deck(page, deck):
            show_slide(page, h, v)
            whole = (h, v) == (0, 0)  # the document's own rules (language, title) once
            found += [f"slide ({h}, {v}): {line}"
                      for line in serious_violations(page, None if whole else "section.present")]
        assert not page.remote, f"{deck.name} asked the network for {page.remote}"
    assert not found, f"{deck.name}:\n" + "\n".join(found)


class _Images(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.alts: list[str | None] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.alts.append(dict(attrs).get("alt"))


def image_alts(path) -> list[str | None]:
    parser = _Images()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser.alts


def saved_figures(notebook) -> int:
    """How many figures a notebook's outputs hold outside widgets (a widget's figures are
    drawn from its saved state instead)."""
    nb = nbformat.read(notebook, as_version=4)
    return sum(1 for cell in nb.cells for output in cell.get("outputs", [])
               if WIDGET_VIEW not in output.get("data", {})
               and any(m.startswith("image/") for m in output.get("data", {})))


def test_every_figure_has_a_text_alternative_of_its_own(published):
    site, slides = published
    pages = [site / name for name in PAGES] + sorted(slides.glob("*.slides.html"))
    bad, counted = [], 0
    for path in pages:
        for alt in image_alts(path):
            counted += 1
            text = (alt or "").strip()
            if text.lower().rstrip(".") in GENERIC_ALT or len(text.split()) < MIN_ALT_WORDS:
                bad.append(f"{path.name}: alt={alt!r}")
    for lesson in LESSONS:  # every saved figure is on the lesson's page and in its deck
        figures = saved_figures(lesson)
        assert len(image_alts(site / f"{lesson.stem}.html")) >= figures
        assert len(image_alts(slides / f"{lesson.stem}.slides.html")) >= figures
    assert counted >= sum(saved_figures(p) for p in LESSONS) > 0
    assert not bad, f"{len(bad)} figure(s) without a text of their own:\n" + "\n".join(bad)
