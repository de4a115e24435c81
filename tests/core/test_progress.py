"""The training loops' notebook bars are hidden, not closed, when their loop ends."""

import pytest
from tqdm.auto import tqdm as auto_tqdm
from tqdm.notebook import tqdm_notebook

from kdteach.core import progress


class Bar(progress.HiddenWhenDone, tqdm_notebook):
    """The bar kdteach uses in a Jupyter kernel (there, tqdm.auto's class is a
    tqdm_notebook); outside one, ipywidgets still builds the widgets, unconnected."""


def widget_is_open(widget) -> bool:
    return widget.comm is not None  # ipywidgets drops the comm when a widget is closed


@pytest.fixture(autouse=True)
def quiet(capsys):
    """Outside IPython, ``display`` prints the widget's text: kept out of the test log."""
    yield
    capsys.readouterr()


def test_tqdm_itself_closes_a_finished_bar_that_is_not_kept():
    bar = tqdm_notebook(range(3), leave=False)
    for _ in bar:
        pass
    assert not widget_is_open(bar.container)  # what left "model not found" behind


def test_a_finished_bar_that_is_not_kept_is_hidden_and_stays_open():
    bar = Bar(range(3), leave=False)
    for _ in bar:
        pass
    assert bar.container.layout.display == "none"
    assert widget_is_open(bar.container)
    assert bar.container.children[1].value == 3  # it reached its end before it was hidden


def test_a_kept_bar_stays_in_sight():
    bar = Bar(range(3), leave=True)
    for _ in bar:
        pass
    assert bar.container.layout.display != "none"
    assert bar.container.children[1].bar_style == "success"


def test_a_failed_loop_keeps_its_red_bar_in_sight():
    bar = Bar(range(5), leave=False)
    with pytest.raises(RuntimeError):
        for i in bar:
            if i == 2:
                raise RuntimeError("stopped")
    bar.close()
    assert bar.container.children[1].bar_style == "danger"
    assert bar.container.layout.display != "none"


def test_outside_a_notebook_the_bars_are_tqdm_auto_text_bars():
    assert not progress.IN_NOTEBOOK  # pytest is no Jupyter kernel
    assert progress.tqdm is auto_tqdm
    bar = progress.trange(2, 5, disable=True)
    assert list(bar) == [2, 3, 4]
