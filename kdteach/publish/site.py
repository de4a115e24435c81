"""A static web site of the lessons (and their solutions), readable with no network.

``python -m kdteach.publish.site --out site`` (``make site``) writes every lesson notebook of
``notebooks/`` as an HTML page, with the solution notebooks of ``notebooks/solutions/``
when that folder exists, and an ``index.html`` that lists the lessons in order with
what each covers and how long it takes, both read from the notebook's opening cell
(its "After it you will be able to" list and its **Time.** paragraph).

A notebook is shown with its saved outputs; one saved without them (a code cell that
never ran) is executed first with the profile in ``KDTEACH_PROFILE`` (``--no-execute``
shows it as saved). MathJax is copied into ``site/_static``, so the folder works offline
and can be copied whole.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from kdteach.protocol.files import write_text_atomic
from kdteach.publish import missing_extra

try:
    import nbformat

    from kdteach.publish.offline_html import MATHJAX_CONFIG, STATIC, convert, copy_assets
except ImportError as exc:
    raise missing_extra(exc, __name__) from exc

SOLUTIONS = "solutions"


@dataclass
class Page:
    """One notebook of the site: where it is, its page, and what its index entry says."""

    source: Path
    href: str  # relative to the site's root
    title: str
    summary: str  # markdown
    goals: list[str]  # markdown, one per learning goal
    time: str  # markdown


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def describe(nb, name: str) -> tuple[str, str, list[str], str]:
    """``(title, summary, goals, time)`` from a notebook's opening markdown cell."""
    first = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if first is None or not first.source.lstrip().startswith("# "):
        raise ValueError(f"{name}: the first markdown cell must start with the title ('# ...')")
    title, _, rest = first.source.lstrip().partition("\n")
    paragraphs = _paragraphs(rest)
    summary = next((p for p in paragraphs if not p.startswith(("**", "*", "-"))), "")
    goals = []
    for paragraph in paragraphs:
        if "you will be able to" in paragraph.lower():
            goals = [line[2:].strip() for line in paragraph.splitlines() if line.startswith("- ")]
    time = next((p for p in paragraphs if p.lower().startswith("**time")), None)
    if time is None:
        raise ValueError(f"{name}: the first cell needs a paragraph starting '**Time.**' that "
                         f"says how long the notebook takes to run")
    time = re.sub(r"^\*\*time\.?\*\*\s*", "", time, flags=re.I)
    return title[2:].strip(), summary, goals, time


def needs_execution(nb) -> bool:
    """True when some code cell was never run (saved without its outputs)."""
    return any(c.cell_type == "code" and c.source.strip() and c.execution_count is None
               for c in nb.cells)


def execute(nb, folder: Path):
    """Run ``nb`` in ``folder`` with a python3 kernel; widget state is kept."""
    try:
        from nbclient import NotebookClient
    except ImportError as exc:
        raise missing_extra(exc) from exc

    NotebookClient(nb, timeout=None, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    return nb


def _read(path: Path):
    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:  # nbformat raises several kinds for a broken file
        raise ValueError(f"cannot read {path} as a notebook: {exc}") from None


def _markdown(text: str) -> str:
    """Markdown of one paragraph or list item as inline HTML (no wrapping <p>)."""
    from nbconvert.filters.markdown import markdown2html

    body = markdown2html(text).strip()
    if body.startswith("<p>") and body.endswith("</p>") and body.count("<p>") == 1:
        body = body[3:-4]
    return body


def index_html(lessons: list[Page], solutions: list[Page]) -> str:
    """The index page: the lessons in order, then the solutions."""
    def entry(page: Page) -> str:
        goals = "".join(f"<li>{_markdown(g)}</li>" for g in page.goals)
        return (f'<section class="lesson"><h2><a href="{html.escape(page.href)}">'
                f"{html.escape(page.title)}</a></h2><p>{_markdown(page.summary)}</p>"
                + (f"<p><strong>You will be able to</strong></p><ul>{goals}</ul>" if goals
                   else "")
                + f'<p class="time"><strong>Time.</strong> {_markdown(page.time)}</p></section>')

    items = "".join(entry(p) for p in lessons)
    solved = "".join(f'<li><a href="{html.escape(p.href)}">{html.escape(p.title)}</a></li>'
                     for p in solutions)
    solution_part = (f"<h2>Solutions</h2><ul>{solved}</ul>" if solutions else
                     "<p>No solution notebooks (notebooks/solutions/) were found.</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kdteach: knowledge distillation for regression</title>
<script type="text/x-mathjax-config">
MathJax.Hub.Config({{tex2jax: {{inlineMath: [["$", "$"]], processEscapes: true}},
  "HTML-CSS": {{availableFonts: [], webFont: "STIX-Web", imageFont: null}},
  messageStyle: "none"}});
</script>
<script src="{STATIC}/mathjax/MathJax.js?config={MATHJAX_CONFIG}"></script>
<style>
body {{ font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em;
       line-height: 1.5; color: #222; }}
.lesson {{ margin-bottom: 2em; }}
.lesson h2 {{ margin-bottom: 0.2em; }}
</style></head>
<body>
<h1>kdteach: knowledge distillation for regression</h1>
<p>The lessons in the order to take them. Each page shows the notebook with its saved
outputs; to run it yourself, open it in JupyterLab (<code>make lab</code>).</p>
{items}
{solution_part}
</body></html>
"""


def build_site(notebooks="notebooks", out="site", run_unexecuted: bool = True) -> list[Path]:
    """Write the lesson and solution pages and ``index.html`` into ``out``. A notebook
    saved without some outputs is run first, unless ``run_unexecuted`` is False: then
    every page shows its notebook exactly as saved."""
    folder, out = Path(notebooks), Path(out)
    lesson_paths = sorted(folder.glob("*.ipynb"))
    if not lesson_paths:
        raise ValueError(f"no lesson notebooks (*.ipynb) in {folder}/")
    solution_paths = sorted((folder / SOLUTIONS).glob("*.ipynb"))
    jobs = [(p, p.stem + ".html", STATIC) for p in lesson_paths]
    jobs += [(p, f"{SOLUTIONS}/{p.stem}.html", f"../{STATIC}") for p in solution_paths]
    pages, written = [], []
    out.mkdir(parents=True, exist_ok=True)
    copy_assets(out, reveal=False)
    for path, href, static in jobs:
        nb = _read(path)
        title, summary, goals, time = describe(nb, str(path))
        if run_unexecuted and needs_execution(nb):
            print(f"executing {path} (it was saved without outputs)", flush=True)
            execute(nb, path.parent)
        target = out / href
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target, convert(nb, "page", path.stem, static=static))
        written.append(target)
        pages.append(Page(path, href, title, summary, goals, time))
    lessons = [p for p in pages if p.source.parent == folder]
    solutions = [p for p in pages if p.source.parent != folder]
    write_text_atomic(out / "index.html", index_html(lessons, solutions))
    return [out / "index.html", *written]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdteach.publish.site",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", default="notebooks",
                        help="folder of the lesson notebooks (default: notebooks/)")
    parser.add_argument("--out", default="site", help="output folder (default: site/)")
    parser.add_argument("--no-execute", action="store_true",
                        help="show every notebook as saved, even one saved without outputs")
    args = parser.parse_args(argv)
    try:
        for path in build_site(args.notebooks, args.out, run_unexecuted=not args.no_execute):
            print(f"wrote {path}")
    except (ValueError, RuntimeError) as exc:
        print(f"python -m kdteach.publish.site: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
