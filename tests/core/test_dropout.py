"""The stacked engine's dropout: one division by a tensor of 1 − p (kept) or ∞ (dropped)."""

import pytest
import torch

from kdteach.core.models import expert_teacher_spec
from kdteach.core.stacked import PrefetchedDropout, dropout_divisors, dropout_shapes


def _generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.mark.parametrize("p", [0.3, 0.5, 0.1])
def test_division_equals_mask_times_input_over_keep_rate_bit_for_bit(p):
    shape = (3, 64, 40)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(7), requires_grad=True)
    grad = torch.randn(shape, generator=torch.Generator().manual_seed(8))
    # the usual formulation, with the same uniforms drawn model by model
    gens = _generators([11, 12, 13])
    keep = torch.stack([torch.rand(shape[1:], generator=g) for g in gens]) >= p
    expected = x * keep / (1.0 - p)
    (expected_grad,) = torch.autograd.grad(expected, x, grad)

    out = x / dropout_divisors(_generators([11, 12, 13]), shape, p)
    (out_grad,) = torch.autograd.grad(out, x, grad)
    assert torch.equal(out, expected)
    assert torch.equal(out_grad, expected_grad)


def test_each_model_draws_from_its_own_generator_only():
    alone = dropout_divisors(_generators([5]), (1, 32, 16), 0.3)
    stacked = dropout_divisors(_generators([9, 5, 2]), (3, 32, 16), 0.3)
    assert torch.equal(stacked[1], alone[0])
    assert not torch.equal(stacked[0], stacked[1])


def test_divisors_are_keep_rate_or_infinity_in_the_right_proportion():
    d = dropout_divisors(_generators([0, 1]), (2, 500, 100), 0.3)
    assert d.unique().tolist() == [pytest.approx(0.7), float("inf")]
    dropped = (d == float("inf")).float().mean().item()
    assert dropped == pytest.approx(0.3, abs=0.01)


# ---------------------------------------------------------------- drawn ahead of time

def _alive(name="kdteach-dropout"):
    import threading
    return [t for t in threading.enumerate() if t.name == name]


def test_prefetched_divisors_are_the_ones_drawn_when_asked():
    shapes = [(2, 8, 5), (2, 8, 3), (2, 4, 5), (2, 4, 3)] * 3
    gens = _generators([3, 4])
    asked = [dropout_divisors(gens, s, 0.3) for s in shapes]
    supply = PrefetchedDropout(_generators([3, 4]), 0.3, iter(shapes), ahead=2)
    try:
        for s, expected in zip(shapes, asked):
            assert torch.equal(supply(s), expected)
    finally:
        supply.close()
    assert not _alive()


def test_a_shape_out_of_plan_is_an_error_and_close_stops_the_thread_early():
    supply = PrefetchedDropout(_generators([0]), 0.3, dropout_shapes_forever(), ahead=2)
    with pytest.raises(RuntimeError, match="planned batches"):
        supply((1, 9, 9))
    supply.close()
    assert not _alive()


def dropout_shapes_forever():
    while True:
        yield (1, 4, 4)


def test_an_error_while_drawing_reaches_the_training_thread():
    supply = PrefetchedDropout(_generators([0]), 0.3, iter([(1, 4, 4), "not a shape"]))
    supply((1, 4, 4))
    with pytest.raises(Exception):  # noqa: B017 -- whatever torch raises for a bad shape
        supply((1, 4, 4))
    supply.close()


def test_the_plan_follows_epochs_batches_and_dropout_layers():
    spec = expert_teacher_spec(10)  # dropout after hidden layers 1, 2 and 4: 256, 256, 128
    plan = list(dropout_shapes(spec, 5, n=300, batch_size=128, num_epochs=2))
    one_epoch = [(5, b, w) for b in (128, 128, 44) for w in (256, 256, 128)]
    assert plan == one_epoch * 2


def test_training_that_stops_early_leaves_no_drawing_thread():
    from kdteach.core.data import make_dataset
    from kdteach.core.stacked import train_many
    from kdteach.protocol.seeds import initial_teacher

    d = make_dataset(n_samples=200)
    nets = [initial_teacher("expert", r) for r in range(2)]
    _, history = train_many(nets, d.X_train, d.y_train, num_epochs=50, lr=1e-2,
                            val=(d.X_test, d.y_test), patience=1, progress=False)
    assert history.stopped_epoch.max() < 50  # it did stop early
    assert not _alive()


@pytest.mark.parametrize("free_core", [True, False])
def test_masks_are_drawn_ahead_only_when_a_core_is_free(monkeypatch, free_core):
    from kdteach.core import stacked as engine
    from kdteach.core.data import make_dataset
    from kdteach.protocol.seeds import initial_teacher

    made = []

    class Spy(PrefetchedDropout):
        def __init__(self, *args, **kwargs):
            made.append(args)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(engine, "PrefetchedDropout", Spy)
    monkeypatch.setattr(engine, "has_free_core", lambda: free_core)
    d = make_dataset(n_samples=300)
    nets = [initial_teacher("expert", r) for r in range(2)]
    ahead, _ = engine.train_many(nets, d.X_train, d.y_train, num_epochs=2, lr=1e-3,
                                 progress=False)
    assert len(made) == int(free_core)
    monkeypatch.setattr(engine, "has_free_core", lambda: not free_core)
    inline, _ = engine.train_many(nets, d.X_train, d.y_train, num_epochs=2, lr=1e-3,
                                  progress=False)
    for a, b in zip(ahead, inline):  # the same masks either way
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                     b.state_dict().values()))
