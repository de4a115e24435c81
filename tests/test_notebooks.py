"""Structure checks over notebooks/*.ipynb (running them is nbval's job: see the Makefile).

Every notebook opens with its learning goals and its running time, teaches with at least
one formula, keeps code cells short and imports its code from kdteach, ends with
takeaways and prompts to try, and compares only deterministic outputs under nbval.
"""

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
EXPECTED = [
    "00_setup",
    "01_standard_teacher",
    "02_expert_teacher",
    "03_grid_search",
    "04_gradient_regularisation",
    "05_going_further",
]
CHECK = "# NBVAL_CHECK_OUTPUT"
MAX_CODE_LINES = 15


def notebook_paths():
    return sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


def load(path):
    return nbformat.read(path, as_version=4)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def markdown_cells(nb):
    return [c for c in nb.cells if c.cell_type == "markdown"]


@pytest.fixture(params=notebook_paths(), ids=lambda p: p.stem)
def nb(request):
    return load(request.param)


def test_the_series_is_complete():
    assert [p.stem for p in notebook_paths()] == EXPECTED


def test_valid_nbformat_4_with_a_python3_kernel(nb):
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_opens_with_title_goals_and_running_time(nb):
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    text = first.source
    assert text.startswith("# "), "the first line is the notebook's title"
    assert "you will be able to" in text, "state what the learner will be able to do"
    assert re.search(r"^- ", text, re.M), "list the learning goals"
    for word in ("time", "cpu", "gpu", "quick", "full"):
        assert word in text.lower(), f"the running-time note should mention {word!r}"
    assert re.search(r"\b(seconds?|minutes?)\b", text), "say how long it takes"


def test_explains_with_latex(nb):
    prose = "\n".join(c.source for c in markdown_cells(nb))
    assert re.search(r"\$[^$\n]+\$", prose), "at least one inline LaTeX formula"


def test_ends_with_takeaways_and_try_it_prompts_with_answers(nb):
    last = markdown_cells(nb)[-1].source
    assert nb.cells[-1].cell_type == "markdown"
    assert "## Takeaways" in last and "## Try it" in last
    tries = last.split("## Try it", 1)[1]
    prompts = re.findall(r"^\d+\. ", tries, re.M)
    assert 2 <= len(prompts) <= 3
    answers = re.findall(r"<details><summary>Answer</summary>(.+?)</details>", tries, re.S)
    assert len(answers) == len(prompts), "every Try it has an answer a learner can reveal"
    assert all(len(a.split()) >= 15 for a in answers), "an answer explains, in a sentence or two"


TRAINING_CALL = re.compile(
    r"\bexp\.run\(\"\w+\"\)|\.(retrain_student|slider_grid)\(|"
    r"widgets\.(retrain_explorer|lgr_explorer)\("
)


def test_every_cell_that_trains_says_beforehand_how_long(nb):
    """The first cell that runs a stage (``exp.run("name")``) or retrains is preceded by a
    measured time."""
    seen = set()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        calls = {m.group(0) for m in TRAINING_CALL.finditer(cell.source)} - seen
        if not calls:
            continue
        seen |= calls
        j = i - 1  # the note may stand before an extra-code cell (the install check)
        while j > 0 and nb.cells[j].source.startswith("# extra code: "):
            j -= 1
        before = nb.cells[j]
        assert before.cell_type == "markdown" and "⏱" in before.source, (
            f"cell {i} trains ({', '.join(sorted(calls))}) without a time note before it")
        assert "2-core CPU" in before.source and "measured" in before.source
        assert re.search(r"\d+(\.\d+)? (s|minutes?)\b", before.source), before.source


def test_prose_says_the_original_notebook_never_the_seed(nb):
    prose = "\n".join(c.source for c in nb.cells)
    assert not re.search(r"\bthe\s+seed\b|seed['’]s|seed\s+notebook", prose, re.I)
    assert "../shared" not in prose


def test_code_comes_from_kdteach_and_cells_stay_short(nb):
    cells = code_cells(nb)
    assert any(re.search(r"^from kdteach[ .]", c.source, re.M) for c in cells)
    for cell in cells:
        lines = cell.source.strip().splitlines()
        assert len(lines) <= MAX_CODE_LINES, f"a code cell of {len(lines)} lines:\n{cell.source}"
        assert not re.search(r"\bclass \w+|\.backward\(|optim\.", cell.source), (
            "models and training loops belong in kdteach, not in a notebook"
        )


def test_the_first_code_cell_checks_the_install_and_names_the_profile(nb):
    first = code_cells(nb)[0].source
    assert first.startswith("# extra code: is kdteach installed in this kernel?"), first
    assert re.search(r"^PROFILE = None  #", first, re.M), "the learner picks the profile here"


# a Python where kdteach cannot be found: every finder (an editable install's too) says so
_WITHOUT_KDTEACH = """
import sys
class Hide:
    def __init__(self, finder):
        self.finder = finder
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "kdteach":
            return None
        return self.finder.find_spec(name, path, target)
sys.meta_path = [Hide(f) for f in sys.meta_path]
"""


def test_the_install_check_says_in_one_line_how_to_install(nb, tmp_path):
    import subprocess
    import sys

    first = code_cells(nb)[0].source
    run = subprocess.run([sys.executable, "-c", _WITHOUT_KDTEACH + first], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode != 0, run.stderr
    assert last.startswith("ModuleNotFoundError: kdteach is not installed in this kernel")
    assert "%pip install kdteach" in last
    present = subprocess.run([sys.executable, "-c", first], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
    assert present.returncode == 0, present.stderr


def test_settings_come_from_the_profile(nb):
    source = "\n".join(c.source for c in code_cells(nb))
    assert source.count("get_settings(PROFILE)") == 1, "the profile chosen in the first cell"
    assert not re.search(r"get_settings\(\s*['\"]", source), "never hard-code a profile"
    assert not re.search(r"os\.environ|%env|%set_env", source), "the profile is the reader's choice"
    assert "progress=False" not in source, "every training shows its progress bar"


def test_extra_code_cells_are_marked_the_handson_way(nb):
    for cell in code_cells(nb):
        if "extra code" in cell.source:
            assert cell.source.startswith("# extra code: "), cell.source


def test_checked_cells_are_deterministic(nb):
    for cell in code_cells(nb):
        if CHECK not in cell.source:
            continue
        assert cell.source.startswith(CHECK), "nbval reads the marker on the first line"
        body = cell.source.split("\n", 1)[1]
        assert not re.search(r"widgets\.|Experiment\(|\btrain\(|tqdm|random|rand\(|time\(",
                             body), cell.source
        assert cell.outputs, "a checked cell keeps the output nbval compares with"
        for out in cell.outputs:
            assert out.output_type in ("stream", "execute_result"), out.output_type
            if out.output_type == "stream":
                assert out.name == "stdout", "stderr (tqdm, warnings) is never compared"
                text = out.text
            else:
                assert set(out.data) <= {"text/plain", "text/html"}, set(out.data)
                text = out.data["text/plain"]
            assert "it/s" not in text and "%|" not in text and "0x" not in text


def test_no_stored_errors(nb):
    for cell in code_cells(nb):
        assert all(out.output_type != "error" for out in cell.get("outputs", []))

