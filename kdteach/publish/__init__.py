"""kdteach.publish: the tools that publish the notebooks, kept apart from what a learner runs.

* :mod:`~kdteach.publish.slides`: the slide metadata, by rules, and one offline reveal.js
  deck per lesson (``make slides``);
* :mod:`~kdteach.publish.site`: the lessons and solutions as an offline web site
  (``make site``);
* :mod:`~kdteach.publish.offline_html`: the nbconvert exporters behind both, with reveal.js
  and MathJax copied from installed packages instead of fetched from the network;
* :mod:`~kdteach.publish.saved_widgets`: a notebook's saved widget state drawn as static HTML;
* :mod:`~kdteach.publish.figure_text`: a text alternative for every figure, from the notebook;
* :mod:`~kdteach.publish.learner_notebooks`: the learners' exercise notebooks, generated
  from the instructor's solution notebooks with nbgrader's preprocessors (``make exercises``);
* :mod:`~kdteach.publish.assignments`: the exercises as an nbgrader course, one assignment
  per exercise notebook (``make assignments``).

They need nbconvert, nbformat, nbclient, jinja2, sphinx-revealjs and jupyter-server-mathjax,
which a learner does not: ``pip install "kdteach[publish]"`` (``make`` installs them with the
``dev`` extra); the last two need nbgrader as well: ``pip install "kdteach[teach]"``. A
publishing module imported or run without them raises an :class:`ImportError` that says so
(:func:`missing_extra`).

The layers: this package may import any other part of kdteach; no other part imports it.
"""

from __future__ import annotations

import sys

EXTRA = "kdteach[publish]"
INSTALL = f'pip install "{EXTRA}"'


def missing_extra(exc: ImportError, module: str = "", extra: str = EXTRA) -> ModuleNotFoundError:
    """The error to raise, ``from exc``, when a publishing dependency cannot be imported::

        try:
            import nbformat
        except ImportError as exc:
            raise missing_extra(exc, __name__) from exc

    A tool run as a command (``module`` is ``"__main__"``) says it in one line on stderr and
    exits with code 2 instead: no traceback for a package that is not installed. ``extra``
    is the extra to install: ``kdteach[teach]`` for the nbgrader tools."""
    name = exc.name or "one of its dependencies"
    message = (f"the publishing tools (kdteach.publish) need {name}, which cannot be imported "
               f'({exc}): pip install "{extra}" (make installs it with the dev extra)')
    if str(exc).startswith("the publishing tools"):  # said already, by a module it imports
        message = str(exc)
    if module == "__main__":
        print(f"kdteach: error: {message}", file=sys.stderr)
        raise SystemExit(2)
    return ModuleNotFoundError(message, name=exc.name)
