"""Slide decks from the lesson notebooks: the slide metadata, by rules, and the reveal.js decks.

Every cell carries ``metadata.slideshow.slide_type``, assigned by these rules (cells are
read in order; a *skipped* cell is not shown and is ignored when looking back):

=====================================================  ==============
cell                                                   slide type
=====================================================  ==============
code cell whose source starts with ``# extra code``    ``skip``
the first cell (the title)                             ``slide``
markdown starting with ``# `` or ``## ``               ``slide``
the last cell, when it holds Takeaways or Try it       ``slide``
markdown starting with ``### ``                        ``subslide``
other markdown right after markdown                    ``-`` (same slide)
other markdown right after code                        ``subslide``
any other code cell                                    ``subslide``
=====================================================  ==============

So each heading opens a slide (reveal.js shows slides left to right), and each code cell
with its output, a table or a figure, gets a sub-slide of its own below the prose that
introduces it: a slide holds no more than fits on the screen.

Two more rules apply when a deck is built, to the deck only (the notebook and its
metadata stay as they are; :func:`deck_cells`):

=====================================================  ==============================
what a cell holds                                      in the deck
=====================================================  ==============================
markdown with a heading (``#`` to ``####``) that is    cut before that heading; the
not on its first line                                  part from it on: ``subslide``
code whose output shows text or a table above its      cut before that figure; the
first figure                                           figures, without the code:
                                                       ``subslide``
=====================================================  ==============================

So the closing cell's *Takeaways* and its *Try it* each get a sub-slide, and a figure is
never squeezed under a long printout. What no rule can measure, how tall a figure, a
table or typeset maths ends up, is fitted to the 1280×720 frame in the browser
(:mod:`kdteach.publish.offline_html`: figures shrink first, then the whole slide).

``python -m kdteach.publish.slides tag notebooks/*.ipynb`` writes the metadata in place (only
where it differs); ``check`` lists the cells that do not follow the rules; ``build``
writes one deck per notebook (see :func:`build_decks`). ``make slides`` runs ``build``.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

from kdteach.protocol.files import write_atomic, write_text_atomic
from kdteach.publish import missing_extra

try:
    import nbformat
except ImportError as exc:
    raise missing_extra(exc, __name__) from exc

EXTRA_CODE = "# extra code"
CLOSING_HEADINGS = ("## Takeaways", "## Try it")
INNER_HEADING = re.compile(r"^#{1,4} ")


def _first_line(cell) -> str:
    return cell.source.lstrip("\n").split("\n", 1)[0]


def _is_extra_code(cell) -> bool:
    return cell.cell_type == "code" and cell.source.startswith(EXTRA_CODE)


def _is_closing(cell) -> bool:
    return cell.cell_type == "markdown" and any(h in cell.source for h in CLOSING_HEADINGS)


def slide_types(nb) -> list[str]:
    """The slide type of every cell of ``nb``, by the rules of this module."""
    types = []
    previous = None  # the last cell that is shown
    last = len(nb.cells) - 1
    for index, cell in enumerate(nb.cells):
        first = _first_line(cell)
        if _is_extra_code(cell):
            types.append("skip")
            continue
        if cell.cell_type not in ("markdown", "code"):  # raw cells never show
            types.append("skip")
            continue
        if previous is None or (index == last and _is_closing(cell)):
            kind = "slide"
        elif cell.cell_type == "markdown":
            if first.startswith(("# ", "## ")):
                kind = "slide"
            elif first.startswith("### "):
                kind = "subslide"
            else:
                kind = "-" if previous.cell_type == "markdown" else "subslide"
        else:
            kind = "subslide"
        types.append(kind)
        previous = cell
    return types


def current_types(nb) -> list[str | None]:
    return [cell.metadata.get("slideshow", {}).get("slide_type") for cell in nb.cells]


def tag(nb) -> int:
    """Write the rules' slide types into ``nb``'s cells; returns how many cells changed."""
    changed = 0
    for cell, kind in zip(nb.cells, slide_types(nb)):
        if cell.metadata.get("slideshow", {}).get("slide_type") != kind:
            cell.metadata.setdefault("slideshow", {})["slide_type"] = kind
            changed += 1
    return changed


def problems(nb) -> list[str]:
    """One line per cell whose slide type is missing or breaks the rules."""
    found = []
    for index, (cell, have, want) in enumerate(zip(nb.cells, current_types(nb), slide_types(nb))):
        if have != want:
            first = _first_line(cell)[:50]
            found.append(f"cell {index} ({cell.cell_type}, {first!r}): slide type {have!r}, "
                         f"the rules give {want!r}")
    return found


def _read(path: Path):
    if not path.is_file():
        raise ValueError(f"no notebook at {path}")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:  # nbformat raises several kinds for a broken file
        raise ValueError(f"cannot read {path} as a notebook: {exc}") from None


def tag_files(paths) -> dict[Path, int]:
    """Tag each notebook file in place (written only when a cell changed)."""
    counts = {}
    for path in map(Path, paths):
        nb = _read(path)
        counts[path] = tag(nb)
        if counts[path]:
            write_atomic(path, lambda tmp, nb=nb: nbformat.write(nb, tmp))
    return counts


# ---------------------------------------------------------------- the decks


def heading_parts(source: str) -> list[str]:
    """``source`` (markdown) cut before every heading line that is not its first line;
    lines inside fenced code blocks are never headings."""
    parts, current, fenced = [], [], False
    for line in source.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if not fenced and INNER_HEADING.match(line) and "".join(current).strip():
            parts.append("\n".join(current).strip("\n"))
            current = []
        current.append(line)
    parts.append("\n".join(current).strip("\n"))
    return [p for p in parts if p.strip()]


FIGURE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")


def _is_figure(output) -> bool:
    return any(mime in output.get("data", {}) for mime in FIGURE_TYPES)


def _split_markdown(cell) -> list:
    parts = heading_parts(cell.source)
    if len(parts) < 2:
        return [cell]
    pieces = []
    for number, part in enumerate(parts, start=1):
        piece = copy.deepcopy(cell) if number > 1 else cell
        piece.source = part
        if number > 1:
            piece.metadata.setdefault("slideshow", {})["slide_type"] = "subslide"
            if "id" in piece:
                piece["id"] = f"{cell['id']}-{number}"
        pieces.append(piece)
    return pieces


def _split_figures(nb, index: int) -> list:
    """Code cell ``index`` of ``nb``, and its figures on a sub-slide of their own when the
    cell shows anything (printed text, a table) above its first figure."""
    from kdteach.publish.figure_text import give_alt

    cell = nb.cells[index]
    outputs = cell.get("outputs", [])
    first = next((i for i, o in enumerate(outputs) if _is_figure(o)), None)
    if not first:  # no figure, or a figure first: the cell fits as it is
        return [cell]
    give_alt(nb, index)  # while the cell still stands where its text is found
    figures = copy.deepcopy(cell)
    figures.outputs = outputs[first:]
    figures.metadata.setdefault("slideshow", {})["slide_type"] = "subslide"
    figures.metadata.setdefault("transient", {})["remove_source"] = True  # code shown above
    if "id" in figures:
        figures["id"] = f"{cell['id']}-figures"
    cell.outputs = outputs[:first]
    return [cell, figures]


def deck_cells(nb):
    """A copy of ``nb`` as its deck shows it, cut by the build rules of this module's
    docstring: each markdown cell at its inner headings (:func:`heading_parts`), each code
    cell before the figures that follow its printed output; every part after the first
    is a sub-slide. The parts keep the cell's other metadata; their cell ids get a suffix
    (``-2``, ``-figures``)."""
    deck = copy.deepcopy(nb)
    cells = []
    for index, cell in enumerate(deck.cells):
        if cell.cell_type == "markdown":
            cells += _split_markdown(cell)
        elif cell.cell_type == "code" and current_types(deck)[index] != "skip":
            cells += _split_figures(deck, index)
        else:
            cells.append(cell)
    deck.cells = cells
    return deck


def deck_name(path: Path) -> str:
    return f"{Path(path).stem}.slides.html"


def build_decks(paths, out="slides") -> list[Path]:
    """One reveal.js deck per notebook in ``out``, with reveal.js and MathJax copied into
    ``out/_static``: the folder works offline and can be copied as a whole.

    The decks show the notebooks as saved (their outputs and widget state), with the
    markdown cut at inner headings (:func:`deck_cells`); a notebook whose slide metadata
    breaks the rules is refused with the cells to fix.
    """
    from kdteach.publish.offline_html import convert, copy_assets

    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no notebooks given")
    notebooks = {}
    for path in paths:
        nb = _read(path)
        bad = problems(nb)
        if bad:
            raise ValueError(f"{path}: {len(bad)} cell(s) break the slide rules, e.g. {bad[0]}; "
                             f"run python -m kdteach.publish.slides tag {path}")
        notebooks[path] = nb
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    copy_assets(out, reveal=True)
    written = []
    for path, nb in notebooks.items():
        target = out / deck_name(path)
        write_text_atomic(target, convert(deck_cells(nb), "slides", path.stem))
        written.append(target)
    return written


# ---------------------------------------------------------------- the command line


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdteach.publish.slides",
                                     description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("tag", "write the slide metadata into the notebooks, in place"),
                       ("check", "list the cells whose slide metadata breaks the rules")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("notebooks", nargs="+", help="notebook files")
    build = commands.add_parser("build", help="one reveal.js deck per notebook, offline")
    build.add_argument("notebooks", nargs="+", help="notebook files")
    build.add_argument("--out", default="slides", help="output folder (default: slides/)")
    args = parser.parse_args(argv)
    try:
        if args.command == "tag":
            for path, count in tag_files(args.notebooks).items():
                print(f"{path}: {count} cell(s) retagged" if count else f"{path}: up to date")
            return 0
        if args.command == "check":
            bad = 0
            for path in map(Path, args.notebooks):
                for line in problems(_read(path)):
                    print(f"{path}: {line}")
                    bad += 1
            if bad:
                print(f"{bad} cell(s) break the slide rules: run "
                      f"python -m kdteach.publish.slides tag {' '.join(args.notebooks)}")
            return 1 if bad else 0
        for deck in build_decks(args.notebooks, args.out):
            print(f"wrote {deck}")
        return 0
    except (ValueError, RuntimeError, ModuleNotFoundError) as exc:  # the last: no extra
        print(f"python -m kdteach.publish.slides: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
