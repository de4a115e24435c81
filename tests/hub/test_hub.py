"""A class on a real JupyterHub: three learners and a lecturer's read-only shared cache.

The lecturer fills a cache with ``python -m kdteach prepare --profile quick``, runs lesson
01 on it, and the cache is made read-only. JupyterHub 6 (a shared password, a simple local
spawner, configurable-http-proxy) serves three learners on loopback; each learner's kernels
read ``KDTEACH_CACHE=~/kdteach-cache:<shared>``. All three run lessons 00 and 01 at the
same time, cell by cell over the kernels' websockets (conftest.py builds all this once and
takes it all down). Run with ``make test-hub`` (``make test`` does), which installs the
proxy from npm first.
"""

from __future__ import annotations

import pytest
import requests
from class_hub import COMPARED, LEARNERS, LESSONS, PASSWORD, snapshot
from kernel_channels import all_text, comparable_lines

pytestmark = pytest.mark.hub

GIB = 1024 ** 3
MEMORY_LIMIT = 3 * GIB  # a learner's server and both kernels together, far above what runs


def test_the_lecturers_cache_is_complete_and_read_only(lecturer):
    said = lecturer.check_output.splitlines()
    assert any(line.startswith("cached ") for line in said), lecturer.check_output
    assert not any(line.startswith("missing ") for line in said), lecturer.check_output
    assert any(name.endswith(".pt") for name in lecturer.before), "prepare cached nothing"
    assert lecturer.refused_a_write, f"the shared cache takes writes ({lecturer.read_only_by})"


def test_every_learner_ran_both_lessons_without_an_error(class_run):
    for name, run in class_run.learners.items():
        assert list(run.lessons) == list(LESSONS)
        for lesson, cells in run.lessons.items():
            assert len(cells) >= 5, f"{name} ran only {len(cells)} cells of {lesson}"
            failed = [(c.index, c.status, c.errors) for c in cells
                      if c.status != "ok" or c.errors]
            assert not failed, f"{name}'s {lesson}: cells that failed: {failed}"
            tracebacks = [c.index for c in cells if "Traceback" in all_text(c.outputs)]
            assert not tracebacks, f"{name}'s {lesson}: a traceback in cells {tracebacks}"


def test_each_kernel_had_the_class_settings(class_run, hub, lecturer):
    for name, run in class_run.learners.items():
        env = run.kernel_environment
        assert env["JUPYTERHUB_USER"] == name
        assert env["HOME"] == str(hub.home(name))
        assert env["KDTEACH_PROFILE"] == "quick" and env["KDTEACH_DEVICE"] == "cpu"
        assert env["OMP_NUM_THREADS"] == "1"
        assert env.get("MPLBACKEND") in (None, "Agg")
        # kdteach reads the learner's own folder first, then the lecturer's
        assert run.probe["folders"] == [str(hub.home(name) / "kdteach-cache"),
                                        str(lecturer.cache)]
        assert run.probe["profile"] == "quick" and run.probe["device"] == "cpu"


def test_each_learner_sees_the_lecturers_results_of_lesson_01(class_run, lecturer):
    expected = {i: comparable_lines(outputs) for i, outputs in lecturer.outputs.items()}
    numbers = [line for lines in expected.values() for line in lines
               if any(ch.isdigit() for ch in line)]
    assert len(numbers) >= 20, f"too few lines with numbers to compare: {numbers}"
    assert any("profile quick" in line for line in numbers)
    for name, run in class_run.learners.items():
        seen = {cell.index: comparable_lines(cell.outputs) for cell in run.lessons[COMPARED]}
        assert seen.keys() == expected.keys()
        differ = [i for i in expected if seen[i] != expected[i]]
        assert not differ, (f"{name}'s lesson 01 differs from the lecturer's in cell {differ[0]}:"
                            f"\nlecturer: {expected[differ[0]]}\n{name}: {seen[differ[0]]}")


def test_no_kernel_wrote_to_the_shared_cache(class_run, lecturer):
    assert snapshot(lecturer.cache) == lecturer.before, "the shared cache changed"
    for name, run in class_run.learners.items():
        for lesson, cells in run.lessons.items():
            said = [c.index for c in cells if "cannot write" in all_text(c.outputs)]
            assert not said, f"{name}'s {lesson}: a cache write was refused in cells {said}"


def test_the_shared_cache_served_every_learner(class_run):
    """Nothing was missing from the lecturer's cache: no learner trained or cached a thing."""
    for name, run in class_run.learners.items():
        assert run.own_cache_files == [], f"{name} cached {run.own_cache_files}"


def test_memory_per_learner_was_measured(class_run):
    for name, run in class_run.learners.items():
        assert set(run.kernel_memory) == set(LESSONS)
        total = run.total_memory
        assert 0 < total.own < total.resident, f"{name}: {total}"
        assert 100 * 1024 ** 2 < total.resident < MEMORY_LIMIT, f"{name}: {total}"


def log_in(hub, username: str, password: str) -> tuple[requests.Session, requests.Response]:
    """Post the hub's login form as a browser does (its XSRF token included); the answer is
    returned as it came, not followed."""
    session = requests.Session()
    session.get(f"{hub.url}/hub/login", timeout=30).raise_for_status()
    form = {"username": username, "password": password, "_xsrf": session.cookies.get("_xsrf")}
    answer = session.post(f"{hub.url}/hub/login", data=form, allow_redirects=False, timeout=30)
    return session, answer


def test_a_wrong_password_is_refused_and_the_right_one_opens_the_learners_server(
        hub, class_run):
    learner, other = LEARNERS[0], LEARNERS[1]
    lab = f"{hub.server_url(learner)}/lab"

    session, answer = log_in(hub, learner, PASSWORD + "-wrong")
    assert answer.status_code == 403 and "Location" not in answer.headers
    assert "jupyterhub-hub-login" not in session.cookies
    page = session.get(lab, timeout=60)
    assert "/hub/login" in page.url, f"a wrong password reached {page.url}"

    _, answer = log_in(hub, "stranger", PASSWORD)  # the password, but not in the class
    assert answer.status_code == 403 and "Location" not in answer.headers

    session, answer = log_in(hub, learner, PASSWORD)
    assert answer.status_code == 302, answer.text[:500]
    assert "jupyterhub-hub-login" in session.cookies
    page = session.get(lab, timeout=60)
    assert page.status_code == 200 and page.url.split("?")[0] == lab, page.url
    assert "JupyterLab" in page.text
    page = session.get(f"{hub.server_url(other)}/lab", timeout=60)
    assert page.status_code == 403, f"{learner} opened {other}'s server: {page.url}"
