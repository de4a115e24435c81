"""Notebooks as HTML pages and reveal.js decks that load nothing from the network.

nbconvert's templates fetch reveal.js, MathJax, require.js, jQuery, mermaid and the
widget manager from content delivery networks. Here every script and style sheet comes
from an installed Python package and is copied into ``<out>/_static/`` beside the pages:

* reveal.js 5 from ``sphinx-revealjs`` (its ``_static/revealjs``: ``dist/`` and ``plugin/``);
* MathJax 2.7 from ``jupyter-server-mathjax`` (``static/``, HTML-CSS output, STIX-Web fonts).

What no package ships is left out, each for a reason: require.js and jQuery only served
nbconvert's own start-up script for reveal.js, which is replaced here by plain script
tags; widgets are drawn from their saved state (:mod:`kdteach.publish.saved_widgets`) instead of
by the JavaScript widget manager; mermaid diagrams are refused (:func:`check_notebook`),
since the lessons have none. :func:`remote_urls` finds any script or style sheet that
would still be fetched from the network.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

from kdteach.publish import INSTALL, missing_extra

try:
    from jinja2 import DictLoader
except ImportError as exc:
    raise missing_extra(exc) from exc

from kdteach.publish.saved_widgets import CSS as WIDGET_CSS
from kdteach.publish.saved_widgets import SavedWidgetsPreprocessor

STATIC = "_static"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
SLIDE_WIDTH, SLIDE_HEIGHT = 1280, 720  # 16:9, scaled by reveal.js to the screen

_MATHJAX = """
<script type="text/x-mathjax-config">
MathJax.Hub.Config({
  tex2jax: {inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], processEscapes: true,
            processEnvironments: true},
  "HTML-CSS": {availableFonts: [], webFont: "STIX-Web", imageFont: null},
  messageStyle: "none"
});
</script>
<script src="{{ resources.kdteach_static }}/mathjax/MathJax.js?config=CONFIG"></script>
""".replace("CONFIG", MATHJAX_CONFIG)

_STYLE = f"<style>{WIDGET_CSS}</style>"

# The reveal template, with local scripts only. Reveal.js hides far-away slides, so the
# maths of a slide is typeset again when it is shown.
_SLIDES_TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block html_head_js %}{% endblock html_head_js %}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block html_head_js_mathjax %}""" + _MATHJAX + _STYLE + """
<style>
.reveal .slides section { overflow-y: auto; max-height: 100%; }
.reveal .jp-RenderedImage img { max-height: 60vh; width: auto; }
</style>
{% endblock html_head_js_mathjax %}
{% block footer_js %}
<script src="{{ reveal_url_prefix }}/dist/reveal.js"></script>
<script src="{{ reveal_url_prefix }}/plugin/notes/notes.js"></script>
<script>
Reveal.initialize({
  hash: true, controls: true, progress: true, center: false,
  width: {{ reveal_width }}, height: {{ reveal_height }},
  transition: "{{ reveal_transition }}", plugins: [RevealNotes]
});
Reveal.on("slidechanged", function (event) {
  if (window.MathJax && MathJax.Hub) {
    MathJax.Hub.Queue(["Rerender", MathJax.Hub, event.currentSlide]);
  }
});
</script>
{% endblock footer_js %}
"""

_PAGE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block html_head_js %}{% endblock html_head_js %}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block html_head_js_mermaidjs %}{% endblock html_head_js_mermaidjs %}
{% block html_head_js_mathjax %}""" + _MATHJAX + _STYLE + """{% endblock html_head_js_mathjax %}
"""


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pip_name = package.replace("_", "-")
        raise RuntimeError(f"the offline pages need the package {pip_name}: {INSTALL} "
                           "(make installs it with the dev extra)")
    return Path(next(iter(spec.submodule_search_locations)))


def reveal_dir() -> Path:
    """reveal.js as shipped by sphinx-revealjs: ``dist/`` and ``plugin/``."""
    folder = _package_dir("sphinx_revealjs") / "_static" / "revealjs"
    if not (folder / "dist" / "reveal.js").is_file():
        raise RuntimeError(f"sphinx-revealjs holds no reveal.js at {folder}/dist: "
                           "reinstall it (pip install --force-reinstall sphinx-revealjs)")
    return folder


def mathjax_dir() -> Path:
    """MathJax 2.7 as shipped by jupyter-server-mathjax."""
    folder = _package_dir("jupyter_server_mathjax") / "static"
    if not (folder / "MathJax.js").is_file():
        raise RuntimeError(f"jupyter-server-mathjax holds no MathJax.js at {folder}: "
                           "reinstall it (pip install --force-reinstall jupyter-server-mathjax)")
    return folder


def copy_assets(out: Path, reveal: bool) -> Path:
    """Copy MathJax (and reveal.js) into ``out/_static``; returns that folder."""
    static = Path(out) / STATIC
    shutil.copytree(mathjax_dir(), static / "mathjax", dirs_exist_ok=True)
    if reveal:
        source = reveal_dir()
        for part in ("dist", "plugin"):
            shutil.copytree(source / part, static / "revealjs" / part, dirs_exist_ok=True)
    return static


def check_notebook(nb, name: str) -> None:
    """Refuse what cannot be shown offline: a mermaid diagram needs a script no package ships."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and "```mermaid" in cell.source:
            raise ValueError(f"{name}, cell {index}: a mermaid diagram cannot be drawn offline "
                             f"(no Python package ships mermaid.js); use an image instead")


def exporter(kind: str):
    """A configured nbconvert exporter: ``"slides"`` (reveal.js) or ``"page"`` (HTML)."""
    from nbconvert import HTMLExporter, SlidesExporter

    if kind == "slides":
        exp = SlidesExporter(
            extra_loaders=[DictLoader({"kdteach_slides.html.j2": _SLIDES_TEMPLATE})],
            template_file="kdteach_slides.html.j2",
            reveal_url_prefix=f"{STATIC}/revealjs",
            reveal_width=str(SLIDE_WIDTH),
            reveal_height=str(SLIDE_HEIGHT),
            reveal_transition="none",
            reveal_theme="white",
        )
    elif kind == "page":
        exp = HTMLExporter(
            extra_loaders=[DictLoader({"kdteach_page.html.j2": _PAGE_TEMPLATE})],
            template_file="kdteach_page.html.j2",
        )
    else:
        raise ValueError(f"kind must be 'slides' or 'page', got {kind!r}")
    exp.register_preprocessor(SavedWidgetsPreprocessor(), enabled=True)
    return exp


def convert(nb, kind: str, name: str, static: str = STATIC) -> str:
    """``nb`` as one HTML document whose scripts and styles live in ``static`` (a path
    relative to the document: ``_static``, or ``../_static`` one folder down)."""
    check_notebook(nb, name)
    if kind == "slides" and static != STATIC:
        raise ValueError(f"a deck finds reveal.js in {STATIC}/ beside it, not in {static}")
    body, _ = exporter(kind).from_notebook_node(
        nb, resources={"metadata": {"name": name}, "kdteach_static": static}
    )
    return body


# ---------------------------------------------------------------- what would be fetched

_REMOTE = re.compile(r"^(https?:)?//", re.I)
_QUOTED_REMOTE = re.compile(r"""["'`]((?:https?:)?//[^"'`\s]+)""", re.I)
_CSS_REMOTE = re.compile(r"""(?:@import\s+|url\()\s*["']?((?:https?:)?//[^"')\s]+)""", re.I)


class _Scanner(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._in = None  # "script" or "style" while inside one

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and _REMOTE.match(attrs.get("src") or ""):
            self.urls.append(attrs["src"])
        if tag == "link" and _REMOTE.match(attrs.get("href") or ""):
            rel = (attrs.get("rel") or "").lower()
            if any(r in rel for r in ("stylesheet", "preload", "modulepreload", "import")):
                self.urls.append(attrs["href"])
        if tag in ("script", "style"):
            self._in = tag

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in == "script":  # a URL in quotes inside a script gets loaded by it
            code = re.sub(r"(?m)^\s*//.*$", "", data)  # whole-line comments only
            self.urls += _QUOTED_REMOTE.findall(code)
        elif self._in == "style":
            self.urls += _CSS_REMOTE.findall(data)


def remote_urls(html_text: str) -> list[str]:
    """Scripts and style sheets that ``html_text`` would load from the network."""
    scanner = _Scanner()
    scanner.feed(html_text)
    scanner.close()
    return scanner.urls
