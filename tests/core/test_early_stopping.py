"""Early stopping: ``val=`` and ``patience=`` of train and train_many.

The set-up over-fits on purpose: 128 training samples, a high learning rate and small
batches, so the validation MSE (on part of the test split) turns up after some epochs
and the best epoch lies strictly before the last one.

Data and networks live on the ``device`` fixture's device (KDTEACH_DEVICE). A restored model
must equal its re-run bit for bit on every device; a stack against the one-model loop uses
``tol(...)``, looser on CUDA. Tests of a History's bookkeeping stay on the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdteach.core.data import make_dataset
from kdteach.core.losses import DistillationLoss
from kdteach.core.models import StudentNet
from kdteach.core.stacked import train_many
from kdteach.core.train import History, evaluate, train

COMMON = dict(lr=1e-2, batch_size=32, progress=False)
PATIENCE = 3


@pytest.fixture(scope="module")
def ds(device):
    return make_dataset().to(device)


@pytest.fixture(scope="module")
def data(ds):
    """A small training set, and the validation set that decides."""
    return ds.X_train[:128], ds.y_train[:128], (ds.X_test[:200], ds.y_test[:200])


@pytest.fixture(scope="module")
def inits(device):
    states = []
    for s in (7, 8, 9):
        torch.manual_seed(s)
        states.append({k: v.to(device) for k, v in StudentNet().state_dict().items()})
    return states


def fresh(state) -> StudentNet:
    """A StudentNet holding ``state``, on the state's device."""
    net = StudentNet().to(next(iter(state.values())).device)
    net.load_state_dict(state)
    return net


def assert_same_weights(a, b, atol: float = 0.0):
    for (key, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        if atol == 0.0:
            assert torch.equal(x, y), key
        else:
            assert (x - y).abs().max().item() <= atol, key


def weights_differ(a, b) -> bool:
    return any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                      b.state_dict().values()))


def trained_for(state, data, epochs, seed=0):
    X, y, _ = data
    net = fresh(state)
    train(net, X, y, num_epochs=epochs, seed=seed, **COMMON)
    return net


# ---------------------------------------------------------------- one model


@pytest.fixture(scope="module")
def stopped(data, inits):
    X, y, val = data
    net = fresh(inits[0])
    history = train(net, X, y, num_epochs=40, seed=0, val=val, patience=PATIENCE, **COMMON)
    return net, history


def test_patience_stops_early_and_restores_the_best_epoch_by_copy(stopped, data, inits):
    net, history = stopped
    best, last = history.best_epoch, history.stopped_epoch
    assert 1 < best < last < 40  # the set-up over-fits: the best epoch is not the last
    assert last == best + PATIENCE
    assert len(history) == last == len(history.val_mse)
    # the weights handed back are bit for bit those of training for best_epoch epochs ...
    assert_same_weights(net, trained_for(inits[0], data, best))
    # ... and not the last epoch's (a best "saved" as a reference to the live weights would be)
    assert weights_differ(net, trained_for(inits[0], data, last))


def test_best_epoch_is_the_lowest_validation_mse_and_patience_is_counted(stopped):
    _, history = stopped
    curve = np.concatenate(history.val_mse)
    best = history.best_epoch
    assert curve[best - 1] == curve.min()
    assert (curve[best:] >= curve[best - 1]).all()  # no improvement in the last PATIENCE
    assert (curve[: best - 1] > curve[best - 1]).all()  # strictly better than every earlier


def test_val_mse_is_evaluate_on_the_validation_set_at_that_epoch(stopped, data, inits):
    _, history = stopped
    X_val, y_val = data[2]
    for epoch in (1, history.best_epoch, history.stopped_epoch):
        net = trained_for(inits[0], data, epoch)
        expected = evaluate(net, X_val, y_val)["mse"]
        assert history.val_mse[epoch - 1][0] == pytest.approx(expected, rel=1e-5)


def test_val_is_recorded_in_the_frame_beside_heldout(data, inits, ds):
    X, y, val = data
    history = train(fresh(inits[0]), X, y, num_epochs=3, seed=0, val=val,
                    heldout=(ds.X_test[200:], ds.y_test[200:]), **COMMON)
    frame = history.to_frame()
    assert (frame["term"] == "val").sum() == 3
    assert (frame["term"] == "heldout").sum() == 3
    rows = frame[frame.term == "val"].sort_values("epoch")["loss"].to_numpy()
    np.testing.assert_allclose(rows, np.concatenate(history.val_mse))
    # the held-out set only looks: its curve is not the validation curve
    assert not np.allclose(np.concatenate(history.heldout), rows)


def test_without_patience_every_epoch_runs_and_the_best_is_restored(data, inits):
    X, y, val = data
    net = fresh(inits[0])
    history = train(net, X, y, num_epochs=20, seed=0, val=val, **COMMON)
    assert len(history) == 20 and history.stopped_epoch == 20
    curve = np.concatenate(history.val_mse)
    best = history.best_epoch
    assert best == int(np.argmin(curve)) + 1 and best < 20
    assert_same_weights(net, trained_for(inits[0], data, best))


def test_without_val_nothing_changes(data, inits):
    X, y, _ = data
    net = fresh(inits[0])
    history = train(net, X, y, num_epochs=4, seed=0, **COMMON)
    assert history.best_epoch is None and history.val_mse == []
    assert history.stopped_epoch == 4
    assert "val" not in set(history.to_frame()["term"])
    assert_same_weights(net, trained_for(inits[0], data, 4))  # the last epoch's weights


def test_one_model_history_gives_plain_ints(stopped, data, inits):
    """After train() (one model) best_epoch and stopped_epoch are Python ints, not arrays;
    best_epoch is None without early stopping."""
    _, history = stopped
    assert type(history.best_epoch) is int and type(history.stopped_epoch) is int
    X, y, _ = data
    plain = train(fresh(inits[0]), X, y, num_epochs=2, seed=0, **COMMON)
    assert plain.best_epoch is None and type(plain.stopped_epoch) is int
    assert plain.stopped_epoch == 2
    frame = plain.to_frame()  # the frame still cuts at the stopped epoch
    assert frame["epoch"].max() == 2


def test_train_many_history_keeps_one_entry_per_model(data, inits):
    X, y, val = data
    _, history = train_many([fresh(inits[0]), fresh(inits[1])], X, y, num_epochs=2,
                            val=val, **COMMON)
    for values in (history.best_epoch, history.stopped_epoch):
        assert isinstance(values, np.ndarray) and values.shape == (2,)


def test_history_of_a_plain_history_has_no_best_epoch():  # bookkeeping: on the CPU
    h = History(["hard"], ["m"])
    assert h.best_epoch is None and h.stopped_epoch is None and h.val_mse == []


def test_a_stopped_model_is_neither_checked_nor_recorded():  # bookkeeping: on the CPU
    """The stack carries a stopped model along; if it diverges later, that is no error."""
    def epoch(history, active):
        total = torch.tensor([1.0, float("nan")])
        history.add(total, {"hard": total}, batch_size=4)
        history.end_epoch(active=active)

    history = History(["hard"], ["kept", "stopped"])
    epoch(history, np.array([True, False]))
    assert history.last()[0] == 1.0 and np.isnan(history.last()[1])
    with pytest.raises(FloatingPointError, match="stopped: the loss became nan in epoch 2"):
        epoch(history, None)


def test_a_validation_mse_that_overflows_names_the_epoch(data, inits):
    X, y, (X_val, y_val) = data
    with pytest.raises(FloatingPointError, match=r"validation MSE became (inf|nan) in epoch 1\b"):
        train(fresh(inits[0]), X, y, num_epochs=3, val=(X_val * 1e37, y_val), **COMMON)


# ---------------------------------------------------------------- many models at once


@pytest.fixture(scope="module")
def many(data, inits):
    X, y, val = data
    trained, history = train_many([fresh(s) for s in inits], X, y, num_epochs=40, seeds=[0, 1, 2],
                                  val=val, patience=PATIENCE, **COMMON)
    return trained, history


def test_train_many_stops_each_model_at_its_own_best(many):
    _, history = many
    best, stopped = history.best_epoch, history.stopped_epoch
    assert len(set(best.tolist())) > 1  # the set-up gives the models different best epochs
    np.testing.assert_array_equal(stopped, np.minimum(best + PATIENCE, 40))
    assert len(history) == stopped.max() < 40  # the stack ran until the last one stopped
    curves = np.stack(history.val_mse)  # (epochs, models)
    for m in range(3):
        assert curves[best[m] - 1, m] == np.nanmin(curves[:, m])
        # after a model stops, its history holds nothing
        assert np.isfinite(curves[: stopped[m], m]).all()
        assert np.isnan(curves[stopped[m]:, m]).all()
        totals = np.array([epoch[m] for epoch in history.epochs["total"]])
        assert np.isnan(totals[stopped[m]:]).all() and np.isfinite(totals[: stopped[m]]).all()
    # the frame reads like each model's own history: it ends at the model's stopped epoch
    frame = history.to_frame()
    last = frame.groupby("model")["epoch"].max()
    assert [int(last[label]) for label in history.labels] == stopped.tolist()
    assert np.isfinite(frame["loss"]).all()
    assert (frame["term"] == "val").sum() == stopped.sum()


def test_train_many_restores_each_model_to_its_own_best_epoch_exactly(many, data, inits, tol):
    X, y, _ = data
    trained, history = many
    for m, best in enumerate(history.best_epoch):
        # the same stack run for that many epochs: the identical computation, bit for bit
        same, _ = train_many([fresh(s) for s in inits], X, y, num_epochs=int(best),
                             seeds=[0, 1, 2], **COMMON)
        assert_same_weights(trained[m], same[m])
        # and the one-model loop for that many epochs, to float32 rounding
        single = fresh(inits[m])
        train(single, X, y, num_epochs=int(best), seed=m, **COMMON)
        assert_same_weights(trained[m], single, atol=tol(1e-5))
        if best < len(history):  # not what the stack held at the end
            last, _ = train_many([fresh(s) for s in inits], X, y, num_epochs=len(history),
                                 seeds=[0, 1, 2], **COMMON)
            assert weights_differ(trained[m], last[m])


def test_train_many_val_mse_equals_train_val_mse(many, data, inits, tol):
    X, y, val = data
    _, history = many
    for m in range(3):
        h = train(fresh(inits[m]), X, y, num_epochs=40, seed=m, val=val, patience=PATIENCE,
                  **COMMON)
        stop = int(history.stopped_epoch[m])
        assert h.best_epoch == history.best_epoch[m]
        assert h.stopped_epoch == stop
        column = np.array([epoch[m] for epoch in history.val_mse[:stop]])
        np.testing.assert_allclose(column, np.concatenate(h.val_mse), rtol=tol(1e-4))


def test_train_many_with_a_teacher_and_without_patience(data, inits, device):
    X, y, val = data
    torch.manual_seed(3)
    teacher = StudentNet().to(device)  # any frozen network will do as a teacher here
    losses = [DistillationLoss(hard=1.0), DistillationLoss(hard=0.3, hp=0.7)]
    trained, history = train_many([fresh(inits[0]), fresh(inits[1])], X, y, losses,
                                  [None, teacher], num_epochs=12, seeds=[0, 1], val=val,
                                  **COMMON)
    assert len(history) == 12 and history.stopped_epoch.tolist() == [12, 12]
    curves = np.stack(history.val_mse)
    np.testing.assert_array_equal(history.best_epoch, curves.argmin(axis=0) + 1)
    for m, best in enumerate(history.best_epoch):
        same, _ = train_many([fresh(inits[0]), fresh(inits[1])], X, y, losses, [None, teacher],
                             num_epochs=int(best), seeds=[0, 1], **COMMON)
        assert_same_weights(trained[m], same[m])


def test_train_many_without_val_records_no_best(data, inits):
    X, y, _ = data
    _, history = train_many([fresh(inits[0])], X, y, num_epochs=2, **COMMON)
    assert history.best_epoch is None and history.val_mse == []
    assert history.stopped_epoch.tolist() == [2]


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("engine", ["train", "train_many"])
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"patience": 0}, "patience must be an integer >= 1"),
        ({"patience": -2}, "patience must be an integer >= 1"),
        ({"patience": 1.5}, "patience must be an integer >= 1"),
        ({"patience": True}, "patience must be an integer >= 1"),
        ({"patience": 3, "val": None}, r"patience needs a validation set.*val=\(X_val, y_val\)"),
        ({"val": "narrow"}, "validation X has 3 columns"),
        ({"val": "one tensor"}, r"val must be a pair \(X_val, y_val\)"),
        ({"val": "rows"}, "validation X has 200 rows but y has 199"),
    ],
)
def test_bad_early_stopping_arguments_are_rejected(engine, kwargs, message, data, inits):
    X, y, (X_val, y_val) = data
    val = {"narrow": (X_val[:, :3], y_val), "one tensor": X_val,
           "rows": (X_val, y_val[:199])}.get(kwargs.get("val"), (X_val, y_val))
    args = {**COMMON, "num_epochs": 1, **kwargs,
            "val": None if "val" in kwargs and kwargs["val"] is None else val}
    with pytest.raises(ValueError, match=message):
        if engine == "train":
            train(fresh(inits[0]), X, y, **args)
        else:
            train_many([fresh(inits[0])], X, y, **args)


def test_zero_epochs_with_val_keeps_the_initial_weights(data, inits):
    X, y, val = data
    net = fresh(inits[0])
    history = train(net, X, y, num_epochs=0, val=val, patience=2, **COMMON)
    assert history.best_epoch == 0 and history.stopped_epoch == 0
    assert len(history) == 0 and history.val_mse == []
    assert_same_weights(net, fresh(inits[0]))


def test_early_stopping_refuses_the_feat_term_whose_adapter_it_cannot_restore():
    # an argument check that stops before any training: on the CPU
    from kdteach.core.data import make_dataset
    from kdteach.core.losses import DistillationLoss
    from kdteach.core.models import StudentNet, TeacherNet
    from kdteach.core.train import train

    ds = make_dataset(n_samples=200)
    with pytest.raises(ValueError, match="cannot be combined with the 'feat' term"):
        train(StudentNet(), ds.X_train, ds.y_train, DistillationLoss(hard=0.5, feat=0.5),
              TeacherNet(), num_epochs=1, lr=1e-3, val=(ds.X_test, ds.y_test), patience=2,
              progress=False)


def test_replaying_a_recorded_curve_gives_what_early_stopping_gave():
    from kdteach.core.train import EarlyStopping, replay_early_stopping

    curve = [5.0, 4.0, 4.5, 3.0, 3.5, 3.2, 3.1, 3.4, np.nan, np.nan]
    stopping = EarlyStopping([torch.zeros(1, 1)], 3, ["m"])
    for epoch, value in enumerate(curve[:8], start=1):
        if stopping.active[0]:
            stopping.update(epoch, torch.tensor([value]))
    assert replay_early_stopping(curve, 3) == (int(stopping.best_epoch[0]),
                                               int(stopping.stopped_epoch[0])) == (4, 7)
    assert replay_early_stopping(curve, 1) == (2, 3)  # the first epoch without improvement
    assert replay_early_stopping(curve, 50) == (4, 8)  # the record ends before the patience
    with pytest.raises(ValueError, match="patience must be an integer >= 1"):
        replay_early_stopping(curve, 0)
