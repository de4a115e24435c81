"""Slide metadata by rules, and reveal.js decks that load nothing from the network."""

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from kdteach.publish import slides
from kdteach.publish.offline_html import STATIC, convert, remote_urls

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def lesson_like():
    return new_notebook(cells=[
        new_markdown_cell("# 07 · A lesson\n\nWhat it covers, with $x^2$."),  # slide
        new_markdown_cell("## 1. First idea\n\nProse."),  # slide
        new_code_cell("# extra code: the plot style\nplots.use_style()"),  # skip
        new_code_cell("run()"),  # subslide (code)
        new_code_cell("table()"),  # subslide (code)
        new_markdown_cell("More prose about the table."),  # subslide (markdown after code)
        new_markdown_cell("And a second paragraph."),  # - (markdown after markdown)
        new_code_cell("fig()"),  # subslide
        new_markdown_cell("### A detail\n\nText."),  # subslide
        new_code_cell("detail()"),  # subslide
        new_markdown_cell("Closing words.\n\n## Takeaways\n\n- one\n\n## Try it\n\n1. a\n2. b"),
    ])


EXPECTED = ["slide", "slide", "skip", "subslide", "subslide", "subslide", "-", "subslide",
            "subslide", "subslide", "slide"]


def test_rules_give_each_cell_its_slide_type():
    assert slides.slide_types(lesson_like()) == EXPECTED


def test_a_heading_after_code_and_raw_cells():
    nb = new_notebook(cells=[new_code_cell("x = 1"), new_markdown_cell("## Next"),
                             nbformat.v4.new_raw_cell("raw"), new_code_cell("y = 2")])
    assert slides.slide_types(nb) == ["slide", "slide", "skip", "subslide"]


def test_tag_writes_the_rules_and_check_finds_departures():
    nb = lesson_like()
    assert len(slides.problems(nb)) == len(nb.cells)  # nothing tagged yet
    assert slides.tag(nb) == len(nb.cells)
    assert slides.current_types(nb) == EXPECTED and slides.problems(nb) == []
    assert slides.tag(nb) == 0  # idempotent
    nb.cells[4].metadata["slideshow"]["slide_type"] = "fragment"
    (problem,) = slides.problems(nb)
    assert "cell 4" in problem and "'fragment'" in problem and "'subslide'" in problem


def test_tag_files_rewrites_only_changed_notebooks(tmp_path):
    path = tmp_path / "lesson.ipynb"
    nbformat.write(lesson_like(), path)
    assert slides.tag_files([path]) == {path: len(EXPECTED)}
    before = path.read_bytes()
    path.touch()
    assert slides.tag_files([path]) == {path: 0}
    assert path.read_bytes() == before and not list(tmp_path.glob(".*"))
    assert slides.current_types(nbformat.read(path, as_version=4)) == EXPECTED


def test_command_line_check_and_tag(tmp_path, capsys):
    path = tmp_path / "lesson.ipynb"
    nbformat.write(lesson_like(), path)
    assert slides.main(["check", str(path)]) == 1
    assert "break the slide rules" in capsys.readouterr().out
    assert slides.main(["tag", str(path)]) == 0
    assert slides.main(["check", str(path)]) == 0
    assert slides.main(["check", str(tmp_path / "missing.ipynb")]) == 2
    assert "no notebook at" in capsys.readouterr().err


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_every_lesson_carries_slide_metadata_by_the_rules(path):
    nb = nbformat.read(path, as_version=4)
    bad = slides.problems(nb)
    assert not bad, (f"{len(bad)} cell(s) of {path.name} break the slide rules; run "
                     f"python -m kdteach.publish.slides tag notebooks/*.ipynb\n" + "\n".join(bad))


def test_lessons_exist():
    assert len(LESSONS) >= 5


def test_lesson_decks_build_with_no_remote_script_or_style(tmp_path, check_offline):
    decks = slides.build_decks(LESSONS, tmp_path / "slides")
    assert [d.name for d in decks] == [f"{p.stem}.slides.html" for p in LESSONS]
    for deck, lesson in zip(decks, LESSONS):
        check_offline(deck)
        text = deck.read_text(encoding="utf-8")
        title = nbformat.read(lesson, as_version=4).cells[0].source.splitlines()[0][2:]
        assert title.split("·")[-1].strip().split("(")[0].strip() in text
        assert f"{STATIC}/revealjs/dist/reveal.js" in text and "MathJax.js" in text
        assert "application/vnd.jupyter.widget-view+json" not in text  # drawn, not scripted
    assert (tmp_path / "slides" / STATIC / "revealjs" / "plugin" / "notes" / "notes.js").is_file()


def test_nbconverts_own_template_would_fetch_from_the_network():
    from nbconvert import SlidesExporter

    nb = lesson_like()
    body, _ = SlidesExporter().from_notebook_node(nb)
    urls = remote_urls(body)
    assert any("reveal.js" in u for u in urls) and any("mathjax" in u.lower() for u in urls)
    assert remote_urls(convert(nb, "slides", "lesson")) == []


def test_build_refuses_untagged_notebooks_and_mermaid(tmp_path):
    path = tmp_path / "lesson.ipynb"
    nbformat.write(lesson_like(), path)
    with pytest.raises(ValueError, match="break the slide rules.*kdteach.publish.slides tag"):
        slides.build_decks([path], tmp_path / "out")
    nb = lesson_like()
    nb.cells.insert(1, new_markdown_cell("```mermaid\ngraph TD; A-->B\n```"))
    slides.tag(nb)
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="mermaid diagram cannot be drawn offline"):
        slides.build_decks([path], tmp_path / "out")
    with pytest.raises(ValueError, match="no notebooks"):
        slides.build_decks([], tmp_path / "out")


def test_a_failed_write_leaves_the_notebook_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "lesson.ipynb"
    nbformat.write(lesson_like(), path)
    before = path.read_bytes()

    def half_then_full_disk(nb, fp, **kwargs):
        Path(fp).write_text('{"cells": [', encoding="utf-8")
        raise OSError("no space left on device")

    monkeypatch.setattr(nbformat, "write", half_then_full_disk)
    with pytest.raises(OSError, match="no space left"):
        slides.tag_files([path])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["lesson.ipynb"]  # no temporary left


def test_a_failed_deck_write_leaves_no_deck_and_no_temporary(tmp_path, monkeypatch):
    from kdteach.publish import offline_html

    nb = lesson_like()
    slides.tag(nb)
    path = tmp_path / "lesson.ipynb"
    nbformat.write(nb, path)
    monkeypatch.setattr(offline_html, "copy_assets", lambda out, reveal: None)
    monkeypatch.setattr(offline_html, "convert", lambda nb, kind, name: "<p>\udc80</p>")
    out = tmp_path / "out"
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate cannot be written as UTF-8
        slides.build_decks([path], out)
    assert list(out.iterdir()) == []


def test_a_deck_cuts_markdown_before_its_inner_headings():
    assert slides.heading_parts("## Takeaways\n\n- one\n\n## Try it\n\n1. a") == [
        "## Takeaways\n\n- one", "## Try it\n\n1. a"]
    fenced = "Text.\n\n```python\n# a comment, not a heading\n```\n\n### Detail\n\nMore."
    assert slides.heading_parts(fenced) == ["Text.\n\n```python\n# a comment, not a heading\n```",
                                            "### Detail\n\nMore."]
    assert slides.heading_parts("# Title only\n\nprose") == ["# Title only\n\nprose"]


def printed_then_figure():
    cell = new_code_cell("print(test)\nfig = plots.mse_by_model(part1)", execution_count=3)
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="mean MSE 0.3\n"),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=",
                                                     "text/plain": "<Figure>"}),
    ]
    return cell


def test_deck_cells_give_try_it_and_a_figure_after_a_printout_their_own_sub_slides():
    nb = lesson_like()
    nb.cells.insert(8, printed_then_figure())
    slides.tag(nb)
    before = nbformat.writes(nb)
    deck = slides.deck_cells(nb)
    assert nbformat.writes(nb) == before  # the notebook is left as it was
    kinds = slides.current_types(deck)
    assert len(deck.cells) == len(nb.cells) + 3
    code, figures = deck.cells[8], deck.cells[9]
    assert [o.output_type for o in code.outputs] == ["stream"]
    assert [o.output_type for o in figures.outputs] == ["display_data"]
    assert kinds[9] == "subslide" and figures.metadata["transient"]["remove_source"]
    assert "Every model's test MSE" in figures.outputs[0].metadata["image/png"]["alt"]
    closing, takeaways, try_it = (c.source for c in deck.cells[-3:])
    assert (closing, takeaways, try_it) == ("Closing words.", "## Takeaways\n\n- one",
                                            "## Try it\n\n1. a\n2. b")
    assert kinds[-3:] == ["slide", "subslide", "subslide"]
    html_text = convert(deck, "slides", "lesson")
    sections = html_text.split("<section")[1:]
    (try_it_slide,) = [part for part in sections if ">Try it<" in part]
    assert "Takeaways" not in try_it_slide
    (figure_slide,) = [part for part in sections if "data:image/png" in part]
    assert "print(test)" not in figure_slide and html_text.count("mse_by_model") == 1


def test_a_deck_fits_its_slides_in_the_browser_and_sizes_figures_to_the_frame():
    from kdteach.publish import offline_html

    html_text = convert(lesson_like(), "slides", "lesson")
    assert "function kdFitSlide(slide)" in html_text and "dataset.kdFit" in html_text
    assert f"max-height: {offline_html.FIGURE_MAX_HEIGHT}px" in html_text
    assert 0.5 < offline_html.MIN_FIGURE_SHARE < 1 and 0.7 <= offline_html.MIN_ZOOM < 1
