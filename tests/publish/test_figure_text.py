"""Every figure of a page or deck gets a text alternative found in its notebook."""

import re

from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from kdteach.publish import figure_text as ft
from kdteach.publish.offline_html import READABLE_COLOURS, convert

PNG = "iVBORw0KGgo="


def figure_cell(source, **metadata):
    cell = new_code_cell(source, execution_count=1)
    cell.outputs = [new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"},
                               metadata=metadata)]
    return cell


def lesson(*cells):
    return new_notebook(cells=[new_markdown_cell("## 4. Look at the pairs\n\nSome prose."),
                               *cells])


def test_the_drawing_function_says_what_the_figure_shows():
    nb = lesson(figure_cell("fig = plots.mse_by_model(part1)"))
    assert ft.figure_text(nb, 1) == (
        "Figure of “4. Look at the pairs”: Every model's test MSE per run: a box per model, "
        "a dot per run, grey lines join runs.")


def test_a_title_given_in_the_call_and_an_introducing_sentence_are_kept():
    nb = lesson(new_markdown_cell("The teacher memorises, and the curves show it:"),
                figure_cell('fig = plots.learning_curves(c, [T], title="Teacher: train and test")'))
    text = ft.figure_text(nb, 2)
    assert text.startswith("Figure of “4. Look at the pairs”: The teacher memorises, and the "
                           "curves show it. “Teacher: train and test”. Training loss against")


def test_what_the_author_wrote_comes_first():
    nb = lesson(figure_cell("# figure: the five runs, one dot each\nfig = plots.mse_by_model(p)"))
    assert ft.figure_text(nb, 1) == "the five runs, one dot each"
    nb = lesson(figure_cell("fig = plots.mse_by_model(p)", **{"image/png": {"alt": "Mine."}}))
    ft.FigureTextPreprocessor().preprocess(nb, {})
    assert nb.cells[1].outputs[0].metadata["image/png"]["alt"] == "Mine."


def test_without_a_known_function_the_prose_above_speaks_for_the_figure():
    nb = new_notebook(cells=[
        new_markdown_cell("## Noise\n\nThe labels carry noise of size $\\sigma_{y}$. It is "
                          "small.\n\n⏱ *This cell trains for 2 s.*"),
        figure_cell("fig = my_own_drawing(data)"),
    ])
    assert ft.figure_text(nb, 1) == "Figure of “Noise”: It is small."
    alone = new_notebook(cells=[figure_cell("fig = my_own_drawing(data)")])
    assert ft.figure_text(alone, 0) == "Figure drawn by fig = my_own_drawing(data)"


def test_markdown_and_maths_read_as_plain_words():
    assert ft._plain("**Bold** and *it* with $L_{HP}$ and `code` [link](x.html)") == (
        "Bold and it with L_HP and code link")
    assert ft._sentences("One, e.g. two. Three? Four") == ["One, e.g. two.", "Three?", "Four"]


def test_docstrings_are_read_from_the_lesson_sources_without_importing_them():
    functions = ft.drawing_functions()
    assert functions["plots"]["paired_differences"].startswith("The one figure for paired")
    assert functions["widgets"]["run_selector"].startswith("A dropdown of runs")
    assert "_" not in "".join(name[0] for docs in functions.values() for name in docs)


def test_a_page_gives_each_figure_its_text_and_never_a_generic_one():
    page = convert(lesson(figure_cell("fig = plots.mse_by_model(part1)")), "page", "lesson")
    (alt,) = re.findall(r'<img[^>]*alt="([^"]*)"', page)
    assert alt.startswith("Figure of “4. Look at the pairs”: Every model")
    assert "No description has been provided" not in page


def wcag_contrast(a: str, b: str) -> float:
    def luminance(hex_colour):
        channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_page_colours_have_wcag_contrast_on_a_code_cell():
    colours = {k: v for k, v in READABLE_COLOURS.items() if v.startswith("#")}
    assert len(colours) >= 10
    for name, colour in colours.items():
        assert wcag_contrast(colour, "#f5f5f5") >= 4.5, name  # a code cell's background
    assert READABLE_COLOURS["--jp-cell-prompt-not-active-opacity"] == "1"
    assert wcag_contrast("#408080", "#f5f5f5") < 4.5  # nbconvert's comment colour did not
    page = convert(lesson(), "page", "lesson")
    assert "--jp-mirror-editor-comment-color: #367373;" in page
