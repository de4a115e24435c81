"""The training loops' progress bars: tqdm's, except that in a notebook a finished bar
that is not kept (``leave=False``) is hidden instead of closed.

tqdm closes such a bar's widget when its loop ends. Its output stays in the notebook,
pointing at a widget that no longer exists, so any page that opens the notebook again
while its kernel runs (the RISE slideshow of the lesson, or the same lesson reloaded)
shows "Error displaying widget: model not found" where the bar was. A hidden bar keeps its
widget, and every page draws it as nothing. Outside a notebook these are tqdm's text bars.
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm as auto_tqdm


class HiddenWhenDone:
    """For tqdm's notebook bar (put it first among the bases): when the bar would close
    its widget, it hides it instead; a failed loop's red bar stays in sight, as in tqdm."""

    def display(self, *args, close: bool = False, **kwargs):
        super().display(*args, **kwargs)
        _, bar, _ = self.container.children
        if close and bar.bar_style != "danger":
            self.container.layout.display = "none"


# tqdm.auto picks tqdm.notebook's widget bar in a Jupyter kernel, and only there imports it
_notebook = sys.modules.get("tqdm.notebook")
IN_NOTEBOOK = _notebook is not None and issubclass(auto_tqdm, _notebook.tqdm_notebook)

if IN_NOTEBOOK:

    class tqdm(HiddenWhenDone, auto_tqdm):
        """tqdm.auto's notebook bar, hidden when done (:class:`HiddenWhenDone`)."""

else:
    tqdm = auto_tqdm


def trange(*args, **kwargs):
    """``tqdm(range(*args), **kwargs)``, like tqdm's own ``trange``."""
    return tqdm(range(*args), **kwargs)
