"""The static site: a page per lesson and solution, an index, nothing from the network."""

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from kdteach.publish import site
from kdteach.publish.offline_html import STATIC

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def opening(title, time="Quick profile: seconds."):
    return new_markdown_cell(
        f"# {title}\n\nWhat the lesson is about.\n\n**After it you will be able to**\n"
        f"- do one thing with $x$;\n- do another.\n\n**Time.** {time}\n\n*Series:* ..."
    )


def executed(title):
    cell = new_code_cell("print(6 * 7)", execution_count=1)
    cell.outputs = [new_output("stream", name="stdout", text="42\n")]
    return new_notebook(cells=[opening(title), cell])


def test_describe_reads_the_opening_cell():
    title, summary, goals, time = site.describe(executed("01 · First"), "x")
    assert title == "01 · First" and summary == "What the lesson is about."
    assert goals == ["do one thing with $x$;", "do another."]
    assert time == "Quick profile: seconds."


def test_describe_explains_what_is_missing():
    nb = new_notebook(cells=[new_markdown_cell("# Title\n\nNo time given.")])
    with pytest.raises(ValueError, match=r"\*\*Time\.\*\*"):
        site.describe(nb, "lesson.ipynb")
    with pytest.raises(ValueError, match="must start with the title"):
        site.describe(new_notebook(cells=[new_markdown_cell("no title")]), "lesson.ipynb")


def test_site_pages_index_and_an_unexecuted_solution(tmp_path, check_offline):
    folder = tmp_path / "notebooks"
    (folder / "solutions").mkdir(parents=True)
    nbformat.write(executed("01 · First"), folder / "01_first.ipynb")
    nbformat.write(executed("00 · Zero"), folder / "00_zero.ipynb")
    solution = new_notebook(cells=[opening("01 · First, solved"), new_code_cell("print(6 * 9)")])
    nbformat.write(solution, folder / "solutions" / "01_first_solution.ipynb")
    written = site.build_site(folder, tmp_path / "site")
    out = tmp_path / "site"
    assert [p.relative_to(out).as_posix() for p in written] == [
        "index.html", "00_zero.html", "01_first.html", "solutions/01_first_solution.html"
    ]
    index = (out / "index.html").read_text(encoding="utf-8")
    assert index.index('href="00_zero.html"') < index.index('href="01_first.html"')
    assert "do one thing with $x$;" in index and "Quick profile: seconds." in index
    assert 'href="solutions/01_first_solution.html"' in index
    assert "<pre>54" in (out / "solutions" / "01_first_solution.html").read_text()  # executed
    assert "<pre>42" in (out / "00_zero.html").read_text()
    for page in written:
        check_offline(page)
    # the notebook on disk is left as it was
    assert nbformat.read(folder / "solutions" / "01_first_solution.ipynb",
                         as_version=4).cells[1].outputs == []


def test_site_index_lists_every_lesson_in_order(tmp_path, check_offline):
    written = site.build_site(ROOT / "notebooks", tmp_path / "site", run_unexecuted=False)
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    positions = [index.index(f'href="{p.stem}.html"') for p in LESSONS]
    assert positions == sorted(positions)
    for lesson in LESSONS:
        title, _, goals, time = site.describe(nbformat.read(lesson, as_version=4), lesson.name)
        assert title.split("(")[0].strip() in index
        assert goals, f"{lesson.name} lists no learning goals"
    assert index.count("<strong>Time.</strong>") == len(LESSONS)
    assert (tmp_path / "site" / STATIC / "mathjax" / "MathJax.js").is_file()
    for page in written:
        check_offline(page)


def test_site_needs_lessons(tmp_path):
    with pytest.raises(ValueError, match="no lesson notebooks"):
        site.build_site(tmp_path, tmp_path / "site")
    assert site.main(["--notebooks", str(tmp_path), "--out", str(tmp_path / "s")]) == 2


def test_a_failed_page_write_leaves_no_page_and_no_temporary(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(executed("00 · Zero"), folder / "00_zero.ipynb")
    monkeypatch.setattr(site, "copy_assets", lambda out, reveal: None)
    monkeypatch.setattr(site, "convert", lambda nb, kind, name, static: "<p>\udc80</p>")
    out = tmp_path / "site"
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate cannot be written as UTF-8
        site.build_site(folder, out)
    assert list(out.iterdir()) == []


def test_the_offline_check_finds_what_a_page_or_its_style_sheets_fetch(tmp_path,
                                                                      check_offline):
    page = tmp_path / "page.html"
    (tmp_path / "local.css").write_text('@import "more.css";', encoding="utf-8")
    (tmp_path / "more.css").write_text("body { color: black; }", encoding="utf-8")
    page.write_text('<link rel="stylesheet" href="local.css">', encoding="utf-8")
    check_offline(page)  # everything local: passes
    for css, html_text in (
        ('@import url("https://cdn.example.org/x.css");', None),  # a sheet pulls one in
        (None, '<script src="https://cdn.example.org/x.js"></script>'),  # a remote script
        (None, '<link rel="stylesheet" href="missing.css">'),  # a local sheet not there
    ):
        if css:
            (tmp_path / "more.css").write_text(css, encoding="utf-8")
        if html_text:
            page.write_text(html_text, encoding="utf-8")
        with pytest.raises(AssertionError):
            check_offline(page)


def test_no_execute_shows_a_notebook_as_saved(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    unrun = new_notebook(cells=[opening("00 · Zero"), new_code_cell("print(6 * 9)")])
    nbformat.write(unrun, folder / "00_zero.ipynb")
    assert site.main(["--notebooks", str(folder), "--out", str(tmp_path / "s"),
                      "--no-execute"]) == 0
    page = (tmp_path / "s" / "00_zero.html").read_text(encoding="utf-8")
    assert "print" in page and "<pre>54" not in page
