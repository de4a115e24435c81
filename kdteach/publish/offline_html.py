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

The pages are also meant to be read by everyone: text colours with WCAG contrast
(:data:`READABLE_COLOURS`), a text alternative for every figure
(:mod:`kdteach.publish.figure_text`), named widget controls
(:mod:`kdteach.publish.saved_widgets`), and deck slides fitted to their 1280×720 frame
(the fit script below; tests/browser/test_accessibility.py and test_slide_fit.py check
all of it in chromium).
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

from kdteach.publish.figure_text import FigureTextPreprocessor
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

# Colours that everyone can read: nbconvert's lab theme draws the prompts at half opacity
# (#b0b0b0 on white, 2.2:1) and some code colours below the 4.5:1 that WCAG 2 asks of
# text (comments #408080, numbers #080, operators #a2f on the #f5f5f5 of a code cell).
# The same hues, darkened until each has at least 4.5:1 on #f5f5f5 (WCAG's contrast
# ratio; tests/browser/test_accessibility.py checks the pages with axe-core).
READABLE_COLOURS = {
    "--jp-cell-prompt-not-active-opacity": "1",
    "--jp-cell-prompt-not-active-font-color": "#616161",  # 5.7:1
    "--jp-cell-inprompt-font-color": "#1a6fb0",  # 4.9:1
    "--jp-cell-outprompt-font-color": "#b4513a",  # 4.6:1
    "--jp-mirror-editor-comment-color": "#367373",  # 5.0:1
    "--jp-mirror-editor-number-color": "#007a00",  # 5.1:1
    "--jp-mirror-editor-operator-color": "#8a1fd6",  # 5.9:1
    "--jp-mirror-editor-meta-color": "#8a1fd6",
    "--jp-mirror-editor-atom-color": "#4d4dff",  # 5.0:1
    "--jp-mirror-editor-bracket-color": "#707000",  # 4.8:1
    "--jp-mirror-editor-error-color": "#d00000",  # 5.2:1
    "--jp-mirror-editor-hr-color": "#666666",  # 5.3:1
    "--jp-mirror-editor-quote-color": "#007700",  # 5.3:1
}
_READABLE = ":root { " + " ".join(f"{k}: {v};" for k, v in READABLE_COLOURS.items()) + " }"
# A markdown cell scrolls in JupyterLab (overflow: auto); here, a heading's rounding can
# make it one pixel too tall, a scrolling region that the keyboard cannot reach (axe:
# scrollable-region-focusable). Its content simply shows instead.
_MARKDOWN = ".jp-RenderedMarkdown.jp-MarkdownOutput { overflow: visible; }"
_STYLE = f"<style>{_READABLE}\n{_MARKDOWN}\n{WIDGET_CSS}</style>"

# An image output with the text alternative that kdteach.publish.figure_text put in its
# metadata (nbconvert's own blocks write none, and nbconvert then adds a generic one).
_IMAGE_BLOCKS = "".join(f"""
{{% block {block} scoped %}}
<div class="jp-RenderedImage jp-OutputArea-output {{{{ extra_class }}}}">
<img src="data:{mime};base64,{{{{ output.data['{mime}'] {encode}| escape_html }}}}"
 alt="{{{{ output | get_metadata('alt', '{mime}') | escape_html }}}}"
{{%- set width = output | get_metadata('width', '{mime}') %}}
{{%- if width is not none %}} width="{{{{ width | escape_html }}}}"{{% endif %}}
{{%- set height = output | get_metadata('height', '{mime}') %}}
{{%- if height is not none %}} height="{{{{ height | escape_html }}}}"{{% endif %}}>
</div>
{{% endblock {block} %}}""" for block, mime, encode in (
    ("data_png", "image/png", ""), ("data_jpg", "image/jpeg", ""),
    ("data_svg", "image/svg+xml", "| text_base64 "),
))

# Every slide must fit its 1280x720 frame without scrolling. The rules of
# kdteach.publish.slides keep what a slide holds short; what a rule cannot measure (how
# tall a figure, a table or typeset maths is) is fitted here, in the browser, once the
# slide is shown and its maths typeset: first the slide's figures shrink, down to
# MIN_FIGURE_SHARE of their height; then, if it is still too tall, the whole slide is
# scaled down, down to MIN_ZOOM. How a slide was fitted is left in its ``data-kd-fit``
# attribute ("none", "figures 0.81", "figures 0.55 zoom 0.90"), which
# tests/browser/test_slide_fit.py reads: a slide that these two steps cannot fit scrolls,
# and the test names it, so that a rule can split it.
MIN_FIGURE_SHARE = 0.55
MIN_ZOOM = 0.75  # the slides' 20-px text stays at 15 px of the 720-px frame or more
FIGURE_MAX_HEIGHT = 560  # px of the 720-px frame: a figure alone never fills a slide

_FIT_SCRIPT = """
function kdWhenImagesLoaded(slide, then) {
  const waiting = Array.from(slide.querySelectorAll("img")).filter(img => !img.complete);
  let left = waiting.length;
  if (!left) { then(); return; }
  waiting.forEach(img => img.addEventListener("load", () => { if (--left === 0) then(); },
                                              {once: true}));
}
function kdFitSlide(slide) {
  const room = Reveal.getConfig().height;
  const parts = Array.from(slide.children).filter(c => c.tagName !== "SECTION");
  const images = Array.from(slide.querySelectorAll("img"));
  parts.forEach(part => { part.style.zoom = ""; });
  images.forEach(img => { img.style.maxHeight = ""; });
  let fit = "none";
  let over = slide.scrollHeight - room;
  const tall = images.reduce((sum, img) => sum + img.offsetHeight, 0);
  if (over > 0 && tall > 0) {
    const share = Math.max(MIN_FIGURE_SHARE, 1 - over / tall);
    images.forEach(img => {
      img.style.maxHeight = Math.floor(img.offsetHeight * share) + "px";
    });
    fit = "figures " + share.toFixed(2);
    over = slide.scrollHeight - room;
  }
  let zoom = 1;
  const scale = z => { parts.forEach(part => { part.style.zoom = z === 1 ? "" : z; }); };
  if (over > 0) {  // the largest zoom, not below MIN_ZOOM, at which the slide fits
    let low = MIN_ZOOM, high = 1;
    scale(low);
    if (slide.scrollHeight <= room) {
      for (let step = 0; step < 7; step++) {
        const middle = (low + high) / 2;
        scale(middle);
        if (slide.scrollHeight <= room) { low = middle; } else { high = middle; }
      }
    }
    zoom = low;
    scale(zoom);
    fit = (fit === "none" ? "" : fit + " ") + "zoom " + zoom.toFixed(2);
  }
  slide.dataset.kdFit = fit;
}
""".replace("MIN_FIGURE_SHARE", str(MIN_FIGURE_SHARE)).replace("MIN_ZOOM", str(MIN_ZOOM))

# On a slide, a table's rows are set close (a pandas table of settings or results can be
# thirty rows tall); its text keeps its size.
_SLIDE_STYLE = f"""<style>
.reveal .slides section {{ overflow-y: auto; max-height: 100%; }}
.reveal .jp-RenderedHTMLCommon td, .reveal .jp-RenderedHTMLCommon th {{
  padding: 1px 10px; line-height: 1.15; }}
.reveal .jp-RenderedImage img, .reveal .kd-widget-output img {{
  max-height: {FIGURE_MAX_HEIGHT}px; width: auto; }}
</style>"""

# The reveal template, with local scripts only. Reveal.js hides far-away slides, so the
# maths of a slide is typeset again when it is shown.
_SLIDES_TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block html_head_js %}{% endblock html_head_js %}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block html_head_js_mathjax %}""" + _MATHJAX + _STYLE + _SLIDE_STYLE + """
{% endblock html_head_js_mathjax %}""" + _IMAGE_BLOCKS + """
{% block footer_js %}
<script src="{{ reveal_url_prefix }}/dist/reveal.js"></script>
<script src="{{ reveal_url_prefix }}/plugin/notes/notes.js"></script>
<script>
Reveal.initialize({
  hash: true, controls: true, progress: true, center: false,
  width: {{ reveal_width }}, height: {{ reveal_height }},
  transition: "{{ reveal_transition }}", plugins: [RevealNotes]
});
""" + _FIT_SCRIPT + """
function kdShow(slide) {
  kdWhenImagesLoaded(slide, function () {
    if (window.MathJax && MathJax.Hub) {
      MathJax.Hub.Queue(["Rerender", MathJax.Hub, slide], [kdFitSlide, slide]);
    } else {
      kdFitSlide(slide);
    }
  });
}
Reveal.on("ready", function (event) { kdShow(event.currentSlide); });
Reveal.on("slidechanged", function (event) { kdShow(event.currentSlide); });
</script>
{% endblock footer_js %}
"""

_PAGE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block html_head_js %}{% endblock html_head_js %}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block html_head_js_mermaidjs %}{% endblock html_head_js_mermaidjs %}
{% block html_head_js_mathjax %}""" + _MATHJAX + _STYLE + """{% endblock html_head_js_mathjax %}
""" + _IMAGE_BLOCKS


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
    exp.register_preprocessor(FigureTextPreprocessor(), enabled=True)  # before the widgets
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
