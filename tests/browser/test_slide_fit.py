"""Every slide of every offline deck fits its 1280×720 frame: nothing on it scrolls.

Each lesson's deck is built into a temporary folder and opened in chromium at 1280×720;
every slide is shown in turn (``Reveal.slide(h, v)``), and once its maths is typeset and
the deck's script has fitted it (``data-kd-fit``), the height of what it holds (the
``scrollHeight`` of its ``<section>``) must not exceed the frame's 720 px.
"""

from __future__ import annotations

import base64
import io

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from published import LESSONS, offline_page, open_deck, show_slide

pytestmark = pytest.mark.browser

MEASURE = """() => {
  const slide = Reveal.getCurrentSlide();
  return {height: slide.scrollHeight, frame: Reveal.getConfig().height,
          fit: slide.dataset.kdFit, start: slide.innerText.trim().slice(0, 60)};
}"""


@pytest.fixture(scope="module")
def decks(tmp_path_factory):
    from kdteach.publish.slides import build_decks

    return build_decks(LESSONS, tmp_path_factory.mktemp("decks"))


def measure_slides(page, deck) -> list[dict]:
    """Every slide of ``deck``, shown and fitted: its indices, height, frame and fit."""
    measured = []
    for h, v in open_deck(page, deck):
        show_slide(page, h, v)
        measured.append({"h": h, "v": v, **page.evaluate(MEASURE)})
    return measured


def too_tall(measured: list[dict]) -> list[str]:
    return [f"slide ({m['h']}, {m['v']}): {m['height']} px of {m['frame']} "
            f"(fitted: {m['fit']}), starting {m['start']!r}"
            for m in measured if m["height"] > m["frame"]]


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_every_slide_of_a_lesson_deck_fits_the_frame(browser, decks, lesson):
    (deck,) = [d for d in decks if d.name.startswith(lesson.stem + ".")]
    with offline_page(browser) as page:
        measured = measure_slides(page, deck)
        assert not page.remote, f"the deck asked the network for {page.remote}"
    assert measured and all(m["frame"] == 720 for m in measured)
    fitted = [f"({m['h']}, {m['v']}) {m['fit']}" for m in measured if m["fit"] != "none"]
    print(f"\n{deck.name}: {len(measured)} slides, fitted in the browser: "
          f"{', '.join(fitted) or 'none'}")
    problems = too_tall(measured)
    assert not problems, (f"{len(problems)} slide(s) of {deck.name} scroll; split them by a "
                          f"rule of kdteach.publish.slides:\n" + "\n".join(problems))


def tall_png() -> str:
    """A 3:5 figure, taller than any slide, as base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 10), dpi=100)
    ax.plot([0, 1], [0, 1])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def test_the_fit_shrinks_a_figure_and_names_a_slide_it_cannot_fit(browser, tmp_path):
    from kdteach.publish.slides import build_decks, tag

    figure = new_code_cell("\n".join(f"step_{i} = {i}" for i in range(14)) + "\nfig = draw()",
                           execution_count=1)
    figure.outputs = [new_output("display_data", data={"image/png": tall_png(),
                                                        "text/plain": "<Figure>"})]
    nb = new_notebook(cells=[
        new_markdown_cell("# A deck\n\nOne slide that fits."),
        new_markdown_cell("## A figure under a long cell"),
        figure,
        new_markdown_cell("## Far too long\n\n" + "\n".join(f"- point {i}" for i in range(60))),
    ])
    tag(nb)
    path = tmp_path / "deck.ipynb"
    nbformat.write(nb, path)
    (deck,) = build_decks([path], tmp_path / "slides")
    with offline_page(browser) as page:
        measured = {(m["h"], m["v"]): m for m in measure_slides(page, deck)}
    assert measured[(0, 0)]["fit"] == "none"
    shrunk = measured[(1, 1)]  # the figure's sub-slide
    assert shrunk["fit"].startswith("figures ") and shrunk["height"] <= 720
    (problem,) = too_tall(list(measured.values()))  # sixty points cannot fit
    assert problem.startswith("slide (2, 0)") and "zoom 0.75" in problem
