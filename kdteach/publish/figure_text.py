"""A text alternative for every figure of a page or deck, found in the notebook itself.

A cell's figure is a PNG from matplotlib: it carries no words (no title is stored with it).
So the words that stand for it (the ``alt`` of its ``<img>``) are looked for, in this order:

1. what the author wrote for it: an ``alt`` in the output's metadata
   (``output.metadata["image/png"]["alt"]``), or a comment ``# figure: ...`` in the cell;
2. the code that drew it: the function the cell calls (``fig = plots.mse_by_model(part1)``,
   or the call on its last line), whose docstring's first sentence says what it draws,
   found by name in the sources of :mod:`kdteach.lesson`, with the ``title="..."`` the cell
   gives it, and after the sentence that introduces the figure when the markdown right
   above the cell ends with one (``... and the loss curves show it:``);
3. the prose above it: the last sentence of the nearest markdown paragraph before the cell
   (timing notes, starting with ⏱, skipped);
4. failing all of these, the call itself (``Figure drawn by fig = f(x)``).

A text found in 2 to 4 is put in its place: ``Figure of “<the nearest heading above>”: ...``.
:class:`FigureTextPreprocessor` writes it into each image output's metadata, where the
templates of :mod:`kdteach.publish.offline_html` read it; the saved widgets'
figures (:mod:`kdteach.publish.saved_widgets`) take the same text for their cell.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

from kdteach.publish import missing_extra

try:
    from nbconvert.preprocessors import Preprocessor
except ImportError as exc:
    raise missing_extra(exc) from exc

IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
FIGURE_COMMENT = re.compile(r"^\s*#\s*figure:\s*(.+?)\s*$", re.I | re.M)
TIMING_NOTE = "⏱"
LESSON_SOURCES = Path(__file__).resolve().parents[1] / "lesson"


ABBREVIATIONS = ("e.g.", "i.e.", "cf.", "vs.", "et al.")


def _plain_maths(tex: str) -> str:
    """TeX of inline maths as it reads: ``L_{HP}`` -> ``L_HP``, ``\\sigma^2`` -> ``sigma^2``."""
    tex = re.sub(r"\\(?:text|mathrm|mathcal|mathbf|operatorname)\{([^}]*)\}", r"\1", tex)
    tex = re.sub(r"\\[,;:! ]", " ", tex)
    tex = re.sub(r"\\([A-Za-z]+)", r"\1", tex)
    return tex.replace("{", "").replace("}", "")


def _plain(text: str) -> str:
    """Markdown or reStructuredText reduced to plain words, on one line."""
    text = re.sub(r":\w+:`~?([^`<]*?)\s*(?:<[^>]*>)?`", lambda m: m.group(1).split(".")[-1],
                  text)  # :func:`~a.b.c` -> c
    pieces = re.split(r"(\$\$?[^$]+\$\$?)", text)  # maths apart from the prose
    out = []
    for piece in pieces:
        if piece.startswith("$"):
            out.append(_plain_maths(piece.strip("$")))
            continue
        piece = re.sub(r"<[^>]+>", "", piece)  # html tags
        piece = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", piece)  # [text](link) -> text
        piece = piece.replace("``", "").replace("`", "")
        piece = re.sub(r"\*\*|__|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w)", "", piece)  # emphasis
        out.append(piece)
    return re.sub(r"\s+", " ", "".join(out)).strip()


def _sentences(text: str) -> list[str]:
    """Plain ``text`` cut into sentences, after '.', '!' or '?' (not after e.g., i.e., cf.,
    vs., et al.); a text that ends without one ends its last sentence."""
    sentences, current = [], ""
    for piece in re.split(r"(?<=[.!?:])\s+", text):
        current = f"{current} {piece}" if current else piece
        if current.endswith(ABBREVIATIONS) or not current.endswith((".", "!", "?")):
            continue
        sentences.append(current)
        current = ""
    if current:
        sentences.append(current)
    return sentences


def _first_sentence(text: str) -> str:
    paragraph = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0]
    return _sentences(_plain(paragraph))[0]


@lru_cache(maxsize=4)
def drawing_functions(folder: Path = LESSON_SOURCES) -> dict[str, dict[str, str]]:
    """``{module: {function or method name: first sentence of its docstring}}`` for the
    modules of ``folder`` (kdteach/lesson), read from their sources without importing; a
    package's modules (kdteach/lesson/plots/) count as the package, as the notebooks call
    them (``plots.mse_by_model``)."""
    found: dict[str, dict[str, str]] = {}
    for path in sorted(Path(folder).glob("*.py")):
        found[path.stem] = _docstrings([path])
    for package in sorted(p.parent for p in Path(folder).glob("*/__init__.py")):
        found[package.name] = _docstrings(sorted(package.glob("*.py")))
    return found


def _docstrings(paths) -> dict[str, str]:
    """``{public function name: first sentence of its docstring}`` in these sources."""
    docs: dict[str, str] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and not node.name.startswith("_"):
                    docs.setdefault(node.name, _first_sentence(doc))
    return docs


def _drawing_call(source: str) -> ast.Call | None:
    """The call that makes the cell's figure: the one assigned to ``fig``, else the call
    on the cell's last line; None when the cell is not Python that ast can read."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return None
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and any(isinstance(t, ast.Name) and t.id == "fig" for t in node.targets)):
            return node.value
    last = tree.body[-1] if tree.body else None
    if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call):
        return last.value
    return None


def _call_text(call: ast.Call, functions: dict[str, dict[str, str]]) -> str:
    """The docstring sentence of the function ``call`` calls, with its literal title."""
    func = call.func
    module, name = None, None
    if isinstance(func, ast.Attribute):
        name = func.attr
        if isinstance(func.value, ast.Name):
            module = func.value.id
    elif isinstance(func, ast.Name):
        name = func.id
    if name is None:
        return ""
    if module in functions and name in functions[module]:
        summary = functions[module][name]
    else:
        matches = {docs[name] for docs in functions.values() if name in docs}
        summary = matches.pop() if len(matches) == 1 else ""
    title = next((k.value.value for k in call.keywords if k.arg == "title"
                  and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)), "")
    parts = [f"“{title}”" if title else "", summary]
    return ". ".join(p.rstrip(".") for p in parts if p) + ("." if summary or title else "")


def _section(cells, index: int) -> str:
    for cell in reversed(cells[:index]):
        if cell.cell_type == "markdown":
            for line in reversed(cell.source.splitlines()):
                if re.match(r"#{1,6} ", line):
                    return _plain(line.lstrip("#"))
    return ""


def _previous_shown(cells, index: int):
    """The cell before ``index`` that a reader sees (``# extra code`` cells are folded)."""
    for cell in reversed(cells[:index]):
        if not (cell.cell_type == "code" and cell.source.startswith("# extra code")):
            return cell
    return None


def _prose_paragraphs(cell) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", cell.source)
            if p.strip() and not p.lstrip().startswith((TIMING_NOTE, "#", "$$"))]


def _introduction(cells, index: int) -> str:
    """The sentence that introduces the figure: the last one of the markdown right above
    the cell, when it ends with a colon (``... and the loss curves show it:``)."""
    previous = _previous_shown(cells, index)
    if previous is None or previous.cell_type != "markdown":
        return ""
    paragraphs = _prose_paragraphs(previous)
    if not paragraphs or not paragraphs[-1].endswith(":"):
        return ""
    return _sentences(_plain(paragraphs[-1]))[-1][:-1].strip() + "."


def _lead_in(cells, index: int) -> str:
    """The last sentence of the nearest markdown paragraph above the cell."""
    for cell in reversed(cells[:index]):
        if cell.cell_type == "markdown" and _prose_paragraphs(cell):
            return _sentences(_plain(_prose_paragraphs(cell)[-1]))[-1]
    return ""


def figure_text(nb, index: int) -> str:
    """The text that stands for the figures of cell ``index`` of ``nb`` (see the module's
    docstring for where it comes from)."""
    cell = nb.cells[index]
    explicit = FIGURE_COMMENT.search(cell.source)
    if explicit:
        return explicit.group(1)
    call = _drawing_call(cell.source)
    text = _call_text(call, drawing_functions()) if call is not None else ""
    introduction = _introduction(nb.cells, index)
    if text and introduction:
        text = f"{introduction} {text}"
    text = text or introduction or _lead_in(nb.cells, index)
    if not text:
        code = _plain(cell.source.strip().splitlines()[-1]) if cell.source.strip() else ""
        text = f"Figure drawn by {code}" if code else f"Figure of cell {index + 1}"
    section = _section(nb.cells, index)
    return f"Figure of “{section}”: {text}" if section else text


def output_alt(output) -> str:
    """The ``alt`` an output's metadata already gives its image, or ``""``."""
    metadata = output.get("metadata", {})
    for mime in IMAGE_TYPES:
        alt = (metadata.get(mime) or {}).get("alt")
        if alt:
            return str(alt)
    return str(metadata.get("alt") or "")


def give_alt(nb, index: int) -> None:
    """Write the text of cell ``index``'s figures into the metadata of each of its image
    outputs, ``metadata[mime]["alt"]``: the one the output gives already, else
    :func:`figure_text`."""
    cell = nb.cells[index]
    if cell.cell_type != "code":
        return
    text = None
    for output in cell.get("outputs", []):
        images = [m for m in IMAGE_TYPES if m in output.get("data", {})]
        if not images:
            continue
        alt = output_alt(output)
        if not alt:
            text = text or figure_text(nb, index)  # once per cell
            alt = text
        metadata = output.setdefault("metadata", {})
        for mime in images:  # where the templates look first
            metadata.setdefault(mime, {})["alt"] = alt


class FigureTextPreprocessor(Preprocessor):
    """Give every image output an ``alt`` in its metadata (:func:`give_alt`)."""

    def preprocess(self, nb, resources):
        for index in range(len(nb.cells)):
            give_alt(nb, index)
        return nb, resources
