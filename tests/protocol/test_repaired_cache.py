"""The same numbers from any state of the cache: a run's numbers depend on its settings only."""

import shutil

import pytest
import torch
from tiny_protocol import spy_trainings, tiny

from kdteach.protocol.checkpoints import cpu_state
from kdteach.protocol.experiment import Experiment
from kdteach.protocol.keys import teacher_key, weights_fingerprint
from kdteach.protocol.names import DISTILLED_EXPERT
from kdteach.protocol.results import merge


def run_all(cache_dir):
    """Every original stage, as ``python -m kdteach reproduce`` runs them (overlapped)."""
    exp = Experiment(tiny(epochs_teacher=4), cache=cache_dir, progress=False)
    stages = exp.reproduce(overlap_teachers=True)
    weights = {name: [weights_fingerprint(net) for net in nets]
               for stage in stages.values() for name, nets in stage.models.items()}
    return merge(stages.values()).results, weights


def copy_without(source, target, pattern):
    shutil.copytree(source, target)
    removed = sorted(p.name for p in target.glob(pattern))
    for name in removed:
        (target / name).unlink()
    return removed


@pytest.mark.parametrize("deleted, count", [("expert-run*.pt", 2), ("expert-run1-*.pt", 1),
                                            ("teacher-run0-*.pt", 1)])
def test_deleted_teachers_are_rebuilt_to_the_same_numbers(tmp_path, deleted, count):
    clean = run_all(tmp_path / "clean")
    for trial in range(3):
        repaired = tmp_path / f"repaired{trial}"
        assert len(copy_without(tmp_path / "clean", repaired, deleted)) == count
        assert run_all(repaired) == clean  # every MSE, R² and weight, to the bit


def test_a_different_teacher_in_the_cache_retrains_its_students(tmp_path, monkeypatch):
    clean = run_all(tmp_path / "clean")
    # a valid checkpoint under the expert's key, but holding other weights (as another
    # torch version might have trained): its students must not be the cached ones
    exp = Experiment(tiny(epochs_teacher=4), cache=tmp_path / "clean", progress=False)
    expert = exp.teachers("expert")[0]
    with torch.no_grad():
        for p in expert.parameters():
            p.mul_(1.01)
    key = teacher_key(exp.settings, "expert", 0)
    payload = exp.cache.load("expert-run0", key)
    exp.cache.save("expert-run0", key, {**payload, "state": cpu_state(expert)})
    shutil.copytree(tmp_path / "clean", tmp_path / "again")
    seen = spy_trainings(monkeypatch)
    changed = run_all(tmp_path / "clean")
    trained = [label for t in seen for label in t.labels]
    assert f"run 1: {DISTILLED_EXPERT}" in trained  # taught by the new teacher: trained again
    assert not any("Scratch" in label or "Teacher" in label for label in trained)
    assert changed[0][DISTILLED_EXPERT]["mse"][0] != clean[0][DISTILLED_EXPERT]["mse"][0]
    assert run_all(tmp_path / "again") == changed  # and the same from a copy of that state
