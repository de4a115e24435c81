"""The widgets' prepared students: snapshots, streaming, the cached grid and its lookups."""

import warnings

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
from widget_outputs import output_figures

from kdteach.core.losses import DistillationLoss
from kdteach.core.models import ExpertTeacherNet
from kdteach.core.stacked import train_many
from kdteach.core.train import train
from kdteach.lesson import plots, slider_grid, widgets
from kdteach.lesson.retrain import PREPARED, TRAINED_NOW, retrain_student
from kdteach.lesson.slider_grid import prepared_student, slider_grid_key
from kdteach.protocol.cache import CacheWarning
from kdteach.protocol.experiment import Experiment
from kdteach.protocol.seeds import initial_student
from kdteach.protocol.settings import get_settings

matplotlib.use("Agg")

EPOCHS = 3


def settings(**changes):
    return get_settings("quick", device="cpu", **{"n_runs": 2, "epochs_teacher": EPOCHS,
                                                  "epochs_student": EPOCHS, **changes})


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def exp(cache_dir):
    return Experiment(settings(), cache=cache_dir, progress=False)


@pytest.fixture(scope="module")
def prepared(exp):
    slider_grid.slider_grid(exp, "retrain")
    slider_grid.slider_grid(exp, "lgr")
    return exp


def same_weights(a, b, atol=0.0):
    return all(torch.allclose(x, y, rtol=0, atol=atol)
               for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# ---------------------------------------------------------------- training: snapshots, streaming


@pytest.fixture(scope="module")
def small():
    """A small data set and a teacher for distilling on it."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(96, 10, generator=g)
    y = X[:, :1] ** 2 + 0.1 * torch.randn(96, 1, generator=g)
    return X, y, ExpertTeacherNet().eval()


def test_a_snapshot_is_bit_for_bit_the_shorter_training(small):
    X, y, teacher = small
    loss = DistillationLoss(hard=0.2, hp=0.5, gr=0.3)
    kwargs = dict(lr=1e-3, batch_size=32, seed=11, progress=False)
    history = train(initial_student(0), X, y, loss, teacher, num_epochs=5,
                    snapshot_epochs=[0, 2, 5], **kwargs)
    assert sorted(history.snapshots) == [0, 2, 5]
    for epochs in (0, 2, 5):
        shorter = initial_student(0)
        train(shorter, X, y, loss, teacher, num_epochs=epochs, **kwargs)
        assert len(history.snapshots[epochs]) == 1
        snapshot = history.snapshots[epochs][0]
        assert all(torch.equal(snapshot[k], v) for k, v in shorter.state_dict().items())


def test_a_stacked_snapshot_is_bit_for_bit_the_shorter_stacked_training(small):
    X, y, teacher = small
    losses = [DistillationLoss(hard=h, hp=1 - h) for h in (0.1, 0.6, 1.0)]
    kwargs = dict(lr=1e-3, batch_size=32, seeds=[3, 4, 5], progress=False)
    _, history = train_many([initial_student(0) for _ in losses], X, y, losses, [teacher] * 3,
                            num_epochs=4, snapshot_epochs=[1, 4], **kwargs)
    shorter, _ = train_many([initial_student(0) for _ in losses], X, y, losses, [teacher] * 3,
                            num_epochs=1, **kwargs)
    for m, net in enumerate(shorter):
        assert all(torch.equal(history.snapshots[1][m][k], v)
                   for k, v in net.state_dict().items())
    assert len(history.snapshots[4]) == 3


def test_on_epoch_is_called_once_per_epoch_with_that_epoch_recorded(small):
    X, y, teacher = small
    seen = []
    train(initial_student(0), X, y, num_epochs=4, lr=1e-3, batch_size=32, progress=False,
          heldout=(X, y), on_epoch=lambda e, h: seen.append((e, len(h), len(h.heldout))))
    assert seen == [(e, e, e) for e in range(1, 5)]
    seen.clear()
    train_many([initial_student(0)] * 2, X, y, num_epochs=3, lr=1e-3, batch_size=32,
               progress=False, on_epoch=lambda e, h: seen.append((e, len(h))))
    assert seen == [(1, 1), (2, 2), (3, 3)]


@pytest.mark.parametrize("kwargs, message", [
    ({"snapshot_epochs": [0, 9]}, "snapshot_epochs must be whole numbers in 0..4"),
    ({"snapshot_epochs": [1.5]}, "snapshot_epochs must be whole numbers"),
    ({"snapshot_epochs": [2], "val": "VAL"}, "cannot be combined with early stopping"),
])
def test_bad_snapshot_epochs_are_refused(small, kwargs, message):
    X, y, _ = small
    if kwargs.get("val") == "VAL":
        kwargs = {**kwargs, "val": (X, y)}
    with pytest.raises(ValueError, match=message):
        train(initial_student(0), X, y, num_epochs=4, lr=1e-3, batch_size=32, progress=False,
              **kwargs)
    with pytest.raises(ValueError, match=message):
        train_many([initial_student(0)], X, y, num_epochs=4, lr=1e-3, batch_size=32,
                   progress=False, **kwargs)


# ---------------------------------------------------------------- the slider positions


@pytest.mark.parametrize("epochs, expected", [(600, (50, 1200)), (40, (4, 80)), (3, (1, 10)),
                                              (7, (1, 14))])
def test_the_epochs_slider_has_the_profiles_epochs_among_its_positions(epochs, expected):
    assert slider_grid.epochs_range(settings(epochs_student=epochs)) == expected


def test_the_grids_hold_every_main_slider_position():
    s = settings()
    (retrain,) = slider_grid.groups("retrain", s)
    assert [w["hard"] for w in retrain.weights] == slider_grid.hard_positions()
    assert len(retrain.weights) == 21 and retrain.weights[-1] == {"hard": 1.0, "hp": 0.0}
    assert retrain.snapshots == list(range(0, EPOCHS + 1))  # up to the profile's epochs
    (main,) = slider_grid.groups("lgr", s)
    gr = {w["gr"] for w in main.weights}
    assert set(slider_grid.gr_positions()) <= gr and {0.3, 0.0} <= gr
    assert slider_grid.gr_positions() == [10.0 ** k for k in range(-2, 5)]
    assert len(main.weights) == 7 + 3  # the powers of ten, 0.3, off, L_GR alone
    assert {"hard": 0.0, "hp": 0.0, "gr": 0.3} in main.weights
    assert main.batch_size == s.batch_size and main.epochs == EPOCHS
    full = get_settings("full", device="cpu")
    assert [(g.epochs, g.snapshots[-1], len(g.snapshots)) for name in slider_grid.GRIDS
            for g in slider_grid.groups(name, full)] == [(600, 600, 13)] * 2
    with pytest.raises(ValueError, match="unknown slider grid 'nope'; valid: retrain, lgr"):
        slider_grid.groups("nope", s)


def test_weights_match_whatever_the_browser_rounds():
    assert slider_grid.weights_key({"hard": 0.15000000000000002, "hp": 0.85, "gr": 0}) == \
        slider_grid.weights_key({"hard": 0.15, "hp": 0.85})
    assert slider_grid.weights_key({"gr": 0.3}) != slider_grid.weights_key({"gr": 0.31})


# ---------------------------------------------------------------- the experiment's grid


@pytest.mark.parametrize("grid, weights, epochs, batch", [
    ("retrain", {"hard": 0.35, "hp": 0.65}, 2, None),
    ("retrain", {"hard": 1.0, "hp": 0.0}, EPOCHS, None),
    ("retrain", {"hard": 0.0, "hp": 1.0}, 0, None),
    ("lgr", {"hard": 0.2, "hp": 0.5, "gr": 10 ** 3}, 2, None),
    ("lgr", {"hard": 0.0, "hp": 0.0, "gr": 0.3}, EPOCHS, None),
    ("lgr", {"hard": 0.2, "hp": 0.5, "gr": 0.0}, 1, None),
])
def test_a_lookup_is_the_student_trained_now(prepared, grid, weights, epochs, batch):
    """Tolerance: the grid stacks ~30 students, a retrain 2, and stacks of different sizes
    may round their matrix products differently; here that is below 1e-6 in every weight."""
    looked_up = prepared_student(prepared, grid, weights, epochs=epochs, batch_size=batch)
    trained = retrain_student(prepared, weights, epochs=epochs, batch_size=batch,
                                       engine="stacked", progress=False)
    assert looked_up.source == PREPARED and trained.source == TRAINED_NOW
    same = ("weights", "teacher", "epochs", "batch_size", "run", "role")
    assert {k: getattr(looked_up, k) for k in same} == {k: getattr(trained, k) for k in same}
    assert same_weights(looked_up.net, trained.net, atol=1e-6)
    assert looked_up.mse == pytest.approx(trained.mse, rel=1e-5)
    assert looked_up.r2 == pytest.approx(trained.r2, rel=1e-4, abs=1e-5)
    a, b = looked_up.history, trained.history
    assert list(a.columns) == list(b.columns) and len(a) == len(b) == epochs * b["term"].nunique()
    rows = ["run", "epoch", "term"]
    assert a[rows].to_numpy().tolist() == b[rows].to_numpy().tolist()
    assert a["loss"].to_numpy() == pytest.approx(b["loss"].to_numpy(), rel=1e-5)


def test_positions_off_the_grid_are_not_looked_up(prepared):
    assert prepared_student(prepared, "retrain", {"hard": 0.33, "hp": 0.67}) is None
    assert prepared_student(prepared, "retrain", {"hard": 0.3, "hp": 0.7}, batch_size=64) is None
    assert prepared_student(prepared, "lgr", {"hard": 0.1, "hp": 0.5, "gr": 0.3}) is None
    assert prepared_student(prepared, "lgr", {"hard": 0.2, "hp": 0.5, "gr": 0.3},
                            batch_size=32) is None  # other batch sizes train live
    assert prepared_student(prepared, "lgr", {"hard": 0.2, "hp": 0.5, "gr": 10 ** 3.5}) is None
    assert prepared_student(prepared, "retrain", {"hard": 0.3, "hp": 0.7},
                            epochs=EPOCHS + 1) is None  # past the profile's epochs: live
    with pytest.raises(ValueError, match="at least one loss weight must be > 0"):
        prepared_student(prepared, "lgr", {"hard": 0.0, "hp": 0.0, "gr": 0.0})


def test_an_unprepared_grid_is_never_trained_by_a_lookup(tmp_path, monkeypatch):
    exp = Experiment(settings(), cache=tmp_path, progress=False)

    def refuse(*args, **kwargs):
        raise AssertionError("a lookup started a training")

    monkeypatch.setattr(slider_grid, "_train_slider_grid", refuse)
    assert prepared_student(exp, "retrain", {"hard": 0.3, "hp": 0.7}) is None
    assert prepared_student(exp, "nope", {"hard": 0.3, "hp": 0.7}) is None
    with pytest.raises(ValueError, match=r"run must be one of run 1\.\.run 2 \(index 0\.\.1\)"):
        prepared_student(exp, "retrain", {"hard": 0.3, "hp": 0.7}, run=7)


def test_the_grid_is_cached_and_rebuilt_when_stale_or_corrupt(prepared, cache_dir, monkeypatch):
    key = slider_grid_key(prepared, "retrain")
    path = prepared.cache.path("slider-grid-retrain-run0", key)
    assert path.exists()
    weights = {"hard": 0.55, "hp": 0.45}
    before = prepared_student(prepared, "retrain", weights)
    calls = []
    original = slider_grid._train_slider_grid

    def counted(exp, name, run):
        calls.append(name)
        return original(exp, name, run)

    monkeypatch.setattr(slider_grid, "_train_slider_grid", counted)
    again = Experiment(settings(), cache=cache_dir, progress=False)
    after = prepared_student(again, "retrain", weights)  # loaded from the file
    assert calls == [] and after.mse == before.mse
    assert same_weights(after.net, before.net)
    stale = Experiment(settings(lr_student=2e-3), cache=cache_dir, progress=False)
    assert prepared_student(stale, "retrain", weights) is None  # other settings: not trusted
    slider_grid.slider_grid(stale, "retrain")
    assert calls == ["retrain"]
    path.write_bytes(b"not a cache entry")
    corrupt = Experiment(settings(), cache=cache_dir, progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rebuilt = slider_grid.slider_grid(corrupt, "retrain")
    assert any(issubclass(w.category, CacheWarning) for w in caught)
    assert calls == ["retrain", "retrain"] and len(rebuilt) == 21
    assert prepared_student(corrupt, "retrain", weights).mse == before.mse


def test_retrain_student_refuses_an_unknown_engine(exp):
    with pytest.raises(ValueError, match="engine must be one of loop, stacked, got 'fast'"):
        retrain_student(exp, {"hard": 0.3, "hp": 0.7}, engine="fast", progress=False)


# ---------------------------------------------------------------- the widgets


@pytest.fixture(autouse=True)
def no_figures_left_open():
    yield
    assert plt.get_fignums() == [], "a figure was left open"


def test_a_prepared_position_is_looked_up_and_says_so(prepared):
    panel = widgets.retrain_explorer(prepared)
    c = panel.controls
    assert c["epochs"].step == 1 and c["epochs"].max == 10
    c["hard"].value, c["epochs"].value = 0.15000000000000002, 2  # as a browser may send it
    c["retrain"].click()
    text = widgets.output_text(panel.out)
    assert "Looked up" in text and "hard 0.15 · hp 0.85, 2 epochs" in text
    assert output_figures(panel.out) == 1
    lgr = widgets.lgr_explorer(prepared)
    lgr.controls["gr"].value = 10 ** 2
    lgr.controls["retrain"].click()
    assert "Looked up" in widgets.output_text(lgr.out)


def test_off_the_grid_trains_now_with_a_live_curve(prepared, monkeypatch):
    drawn = []
    live = plots.live_training

    def recording(total, heldout, num_epochs):
        drawn.append((len(total), len(heldout), num_epochs))
        return live(total, heldout, num_epochs)

    monkeypatch.setattr(plots, "live_training", recording)
    panel = widgets.lgr_explorer(prepared)
    c = panel.controls
    c["batch_size"].value, c["epochs"].value = 64, 5
    c["retrain"].click()
    text = widgets.output_text(panel.out)
    assert "Trained now" in text and "batch 64" in text and "Looked up" not in text
    assert drawn and drawn[0] == (1, 1, 5)  # from the first epoch, with its test MSE
    assert output_figures(panel.out) == 1


def test_the_live_curve_redraws_at_most_every_half_second(monkeypatch):
    out = widgets.widgets.Output()
    curve = widgets.LiveCurve(out, num_epochs=50)
    clock = iter([0.0, 0.0, 0.1, 0.2, 0.7, 0.7])
    monkeypatch.setattr(widgets.time, "perf_counter", lambda: next(clock))

    class Fake:
        epochs = {"total": []}
        heldout = []

    for epoch in (1, 2, 3, 4):
        Fake.epochs["total"].append([1.0 / epoch, 1.0])
        Fake.heldout.append([2.0 / epoch, 2.0])
        curve(epoch, Fake)
    assert curve.drawn == 2  # epoch 1, then epoch 4 (0.7 s after the first drawing)
    assert "epoch 4 of 50" in widgets.output_text(out)
    curve(50, Fake)  # the last epoch is left to the final figure
    assert curve.drawn == 2
