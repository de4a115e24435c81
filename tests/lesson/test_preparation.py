"""What the lessons load from the cache, and the cache's state as lesson 00 reports it."""

import json
import sys
from pathlib import Path

import pytest

from kdteach.lesson import preparation
from kdteach.lesson.preparation import cache_state, lesson_needs, train_needs
from kdteach.protocol import training
from kdteach.protocol.experiment import Experiment
from kdteach.protocol.stages import STAGES, lesson_stages

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "protocol"))
from tiny_protocol import tiny  # noqa: E402


def test_the_needs_are_every_lesson_stage_and_slider_grid_in_lesson_order():
    needs = lesson_needs(Experiment(tiny(), cache=False, progress=False))
    names = [n.name for n in needs]
    assert set(names) == {f"stage {s}" for s in lesson_stages()} | {
        "slider grid retrain", "slider grid lgr"}
    assert [n.lesson for n in needs] == sorted(n.lesson for n in needs)
    assert all(STAGES[n.name[6:]].lesson.startswith(n.lesson)
               for n in needs if n.name.startswith("stage "))
    assert str(needs[0]) == "stage standard_teacher (lesson 01)"


def _no_training(*args, **kwargs):
    raise AssertionError("looking at the cache must train nothing")


def test_an_empty_then_partial_then_complete_cache(tmp_path, monkeypatch):
    settings, cache = tiny(), tmp_path / "cache"
    with monkeypatch.context() as patched:
        patched.setattr(training, "train_many", _no_training)
        empty = cache_state(settings, cache=cache)
    assert empty.state == "empty" and not empty.cached and len(empty.missing) == 16
    assert [n.name for n in empty.optional] == ["stage three_way_search_jac"]
    assert "empty for the quick profile, 0 of 16" in empty.report()
    assert ("trained only when asked or by `prepare`: stage three_way_search_jac "
            "(lesson 05, optional)") in empty.report()
    assert "lesson 05 still needs: stage jacobian_matching" in empty.report()
    assert str(cache) in empty.report()

    Experiment(settings, cache=cache, progress=False).run("standard_teacher")
    with monkeypatch.context() as patched:
        patched.setattr(training, "train_many", _no_training)
        partial = cache_state(settings, cache=cache)
    assert partial.state == "partial"
    assert [str(n) for n in partial.cached] == ["stage standard_teacher (lesson 01)"]

    for need in lesson_needs(Experiment(settings, cache=cache, progress=False)):
        if not need.optional:
            need.get()
    with monkeypatch.context() as patched:
        patched.setattr(training, "train_many", _no_training)
        without_checks = cache_state(settings, cache=cache)
    assert without_checks.state == "complete" and len(without_checks.optional) == 1
    assert "complete for the quick profile, 16 of 16" in without_checks.report()

    seconds = train_needs(Experiment(settings, cache=cache, progress=False))
    assert len(seconds) == 17 and min(seconds.values()) >= 0
    monkeypatch.setattr(training, "train_many", _no_training)
    complete = cache_state(settings, cache=cache)
    assert complete.state == "complete" and not complete.missing and not complete.optional
    assert "complete for the quick profile, 16 of 16" in complete.report()
    assert "only when asked" not in complete.report()


@pytest.fixture
def times_file(tmp_path, monkeypatch):
    path = tmp_path / "training_times.json"
    monkeypatch.setattr(preparation, "TIMES_FILE", path)
    return path


def test_the_gap_is_timed_from_the_measured_times_of_the_profile(tmp_path, times_file):
    settings = preparation.get_settings("quick", "cpu")
    names = [n.name for n in lesson_needs(Experiment(settings, cache=False, progress=False))]
    times_file.write_text(json.dumps({"machine": "a test machine",
                                      "profiles": {"quick": {n: 10.0 for n in names}}}))
    state = cache_state(settings, cache=tmp_path / "empty")
    assert state.missing_seconds == 10.0 * (len(names) - 1) and state.optional_seconds == 10.0
    assert "about 3 minutes on a test machine" in state.report()  # 16 needs × 10 s
    assert "(about 10 s more)" in state.report()  # the optional check


def test_no_time_is_claimed_for_changed_settings_or_unmeasured_profiles(tmp_path, times_file):
    times_file.write_text(json.dumps({"machine": "m", "profiles": {"quick": {"x": 1.0}}}))
    assert cache_state(tiny(), cache=tmp_path / "a").missing_seconds is None  # epochs changed
    assert cache_state(preparation.get_settings("full", "cpu"),
                       cache=tmp_path / "b").missing_seconds is None  # not measured
    assert "about" not in cache_state(tiny(), cache=tmp_path / "c").report()


def test_the_packaged_times_cover_every_need_of_each_profile_they_name():
    recorded = json.loads(preparation.TIMES_FILE.read_text())
    assert recorded["machine"] and recorded["profiles"]
    for profile, seconds in recorded["profiles"].items():
        settings = preparation.get_settings(profile, "cpu")
        exp = Experiment(settings, cache=False, progress=False)
        assert set(seconds) == {n.name for n in lesson_needs(exp)}, profile
        assert all(s >= 0 for s in seconds.values()) and sum(seconds.values()) > 0
