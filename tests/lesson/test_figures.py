"""Talk-size figures: every registered figure, 16:9, large fonts, PNG and SVG."""

import re
import struct
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from kdteach import __main__ as cli
from kdteach.lesson import figures as talk_figures
from kdteach.protocol.experiment import Experiment
from kdteach.protocol.settings import get_settings

matplotlib.use("Agg")

TINY = ["--profile", "quick", "--runs", "2", "--epochs-teacher", "2", "--epochs-student", "2"]
NAMES = [f.name for f in talk_figures.FIGURES]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def exp(cache):
    settings = get_settings("quick", device="cpu", n_runs=2, epochs_teacher=2, epochs_student=2)
    return Experiment(settings, cache=cache, progress=False)


def small_texts(fig: Figure, min_pt: float = talk_figures.MIN_FONT_PT) -> list[str]:
    """Visible texts of ``fig`` set smaller than ``min_pt`` points, as ``'text' (size)``."""
    found = []
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text().strip() and text.get_fontsize() < min_pt:
            found.append(f"{text.get_text()!r} ({text.get_fontsize():.1f} pt)")
    return found


def overflow_inches(fig: Figure) -> float:
    """How far (inches) what ``fig`` draws reaches past its edges: 0 when nothing is cut."""
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())
    edge = fig.bbox_inches
    return max(0.0, edge.x0 - drawn.x0, drawn.x1 - edge.x1, edge.y0 - drawn.y0,
               drawn.y1 - edge.y1)


def png_size(path):
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", header[16:24])


def svg_size(path):
    head = path.read_text(encoding="utf-8")[:2000]
    match = re.search(r'<svg[^>]*width="([\d.]+)pt"[^>]*height="([\d.]+)pt"', head)
    assert match, f"{path.name} has no width and height in points"
    return float(match.group(1)), float(match.group(2))


def test_the_registry_covers_every_lesson_with_unique_names():
    assert len(set(NAMES)) == len(NAMES)
    lessons = sorted(p.stem[:2] for p in Path(__file__).resolve().parents[2].glob(
        "notebooks/0*.ipynb"))
    assert {name[:2] for name in NAMES} == set(lessons)
    assert all(re.fullmatch(r"[0-9]{2}_[a-z0-9_]+", name) for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_figure_is_16_9_with_talk_fonts_and_nothing_cut_off(exp, name):
    (entry,) = talk_figures.by_name([name])
    fig = talk_figures.draw(entry, exp)
    try:
        width, height = fig.get_size_inches()
        assert width / height == pytest.approx(16 / 9, rel=1e-3)
        assert width >= 13
        small = small_texts(fig)
        assert not small, f"texts under {talk_figures.MIN_FONT_PT} pt: {small[:5]}"
        assert overflow_inches(fig) < 0.01, "something is drawn past the edge"
    finally:
        plt.close(fig)


def test_small_texts_and_overflow_can_fail():
    fig, ax = plt.subplots(figsize=talk_figures.TALK_SIZE)
    ax.set_title("tiny", fontsize=8)
    ax.text(1.5, 0.5, "far to the right of the figure", transform=fig.transFigure, fontsize=20)
    try:
        assert small_texts(fig) == ["'tiny' (8.0 pt)"]
        assert overflow_inches(fig) > 1
    finally:
        plt.close(fig)


def test_command_line_writes_every_figure_as_png_and_svg(exp, cache, tmp_path, monkeypatch,
                                                          capsys):
    exp.run("gradient_regularisation")  # every stage in the cache: the command trains nothing
    exp.run("three_way_search_jac")  # lesson 05's optional check too, so its figure is drawn
    monkeypatch.setenv("KDTEACH_CACHE", str(cache))
    monkeypatch.setenv("KDTEACH_DEVICE", "cpu")
    out = tmp_path / "talk"
    assert cli.main(["figures", *TINY, "--out", str(out), "--quiet"]) == 0
    assert f"wrote {2 * len(NAMES)} files" in capsys.readouterr().out
    for name in NAMES:
        w, h = png_size(out / f"{name}.png")
        assert (w, h) == (2000, 1125), name  # 13.33 x 7.5 in at 150 dpi
        w, h = svg_size(out / f"{name}.svg")
        assert w / h == pytest.approx(16 / 9, rel=1e-3), name
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{n}.{fmt}" for n in NAMES for fmt in ("png", "svg"))  # no temporary files left


def test_command_line_only_and_bad_names(cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KDTEACH_CACHE", str(cache))
    monkeypatch.setenv("KDTEACH_DEVICE", "cpu")
    out = tmp_path / "one"
    assert cli.main(["figures", *TINY, "--out", str(out), "--quiet", "--only",
                     "00_target_slices"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["00_target_slices.png",
                                                     "00_target_slices.svg"]
    assert cli.main(["figures", *TINY, "--out", str(out), "--only", "99_nothing"]) == 2
    err = capsys.readouterr().err
    assert "no figure named 99_nothing" in err and "00_target_slices" in err
    with pytest.raises(ValueError, match="formats must be among png, svg"):
        talk_figures.write_figures(None, out, formats=("gif",))


def test_an_optional_checks_figure_is_drawn_only_when_cached_or_asked(tmp_path, monkeypatch,
                                                                      capsys):
    settings = get_settings("quick", device="cpu", n_runs=2, epochs_teacher=2, epochs_student=2)
    (check,) = talk_figures.by_name(["05_three_way_search"])
    (plain,) = talk_figures.by_name(["00_target_slices"])
    assert check.check == "three_way_search_jac" and plain.check is None
    empty = Experiment(settings, cache=tmp_path / "cache", progress=False)
    assert plain.wanted(empty, asked=False) and check.wanted(empty, asked=True)
    assert not check.wanted(empty, asked=False) and not list(tmp_path.glob("cache/*.pt"))

    monkeypatch.setattr(talk_figures, "FIGURES", [plain, check])
    written = talk_figures.write_figures(empty, tmp_path / "direct", progress=False)
    assert written.left_out == [check]  # what the command then names as left out
    assert [p.name for p in written.paths] == ["00_target_slices.png", "00_target_slices.svg"]
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KDTEACH_DEVICE", "cpu")
    assert cli.main(["figures", *TINY, "--out", str(tmp_path / "a"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "left out 05_three_way_search: the optional check three_way_search_jac" in printed
    assert "wrote 2 files (1 figures" in printed
    assert sorted(p.stem for p in (tmp_path / "a").iterdir()) == ["00_target_slices"] * 2
    assert cli.main(["figures", *TINY, "--out", str(tmp_path / "b"), "--quiet",
                     "--with-checks"]) == 0
    assert "wrote 4 files (2 figures" in capsys.readouterr().out
    assert check.wanted(Experiment(settings, cache=tmp_path / "cache", progress=False),
                        asked=False)  # now in the cache: drawn without asking
