"""Tests for kdteach.core.models: the original's three networks and the MLP builder."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdteach.core.models import (
    MLP,
    ExpertTeacherNet,
    MLPSpec,
    RegularisedTeacherNet,
    StudentNet,
    TeacherNet,
    count_parameters,
)


def describe(model: nn.Module) -> list[tuple]:
    """The layer sequence as plain tuples, so it can be compared to a written-out list."""
    out = []
    for layer in model.layers:
        if isinstance(layer, nn.Linear):
            out.append(("Linear", layer.in_features, layer.out_features))
        elif isinstance(layer, nn.LeakyReLU):
            out.append(("LeakyReLU", layer.negative_slope))
        elif isinstance(layer, nn.ReLU):
            out.append(("ReLU",))
        elif isinstance(layer, nn.Dropout):
            out.append(("Dropout", layer.p))
        else:
            out.append((type(layer).__name__,))
    return out


LR = ("LeakyReLU", 0.01)
DROP = ("Dropout", 0.3)


def test_parameter_counts():
    assert count_parameters(TeacherNet()) == 109_825
    assert count_parameters(ExpertTeacherNet()) == 126_337
    assert count_parameters(StudentNet()) == 6_977


def test_teacher_layers():
    assert describe(TeacherNet()) == [
        ("Linear", 10, 256), LR,
        ("Linear", 256, 256), LR,
        ("Linear", 256, 128), LR,
        ("Linear", 128, 64), LR,
        ("Linear", 64, 1),
    ]  # fmt: skip


def test_expert_teacher_layers():
    assert describe(ExpertTeacherNet()) == [
        ("Linear", 10, 256), LR, DROP,
        ("Linear", 256, 256), LR, DROP,
        ("Linear", 256, 128), LR,
        ("Linear", 128, 128), LR, DROP,
        ("Linear", 128, 64), LR,
        ("Linear", 64, 1),
    ]  # fmt: skip


def test_student_layers():
    assert describe(StudentNet()) == [
        ("Linear", 10, 64), ("ReLU",),
        ("Linear", 64, 64), ("ReLU",),
        ("Linear", 64, 32), ("ReLU",),
        ("Linear", 32, 1),
    ]  # fmt: skip


def test_layers_are_a_sequential():
    for cls in (TeacherNet, ExpertTeacherNet, StudentNet):
        assert isinstance(cls().layers, nn.Sequential)


def test_n_features_changes_the_first_layer():
    net = StudentNet(n_features=7)
    assert net.n_features == 7
    assert net.layers[0].in_features == 7
    assert count_parameters(net) == 6_977 - 3 * 64


def original_student(n_features: int = 10) -> nn.Sequential:
    """The original notebook's StudentNet body, spelled out."""
    return nn.Sequential(
        nn.Linear(n_features, 64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, 32),
        nn.ReLU(),
        nn.Linear(32, 1),
    )


def original_teacher(n_features: int = 10) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_features, 256),
        nn.LeakyReLU(0.01),
        nn.Linear(256, 256),
        nn.LeakyReLU(0.01),
        nn.Linear(256, 128),
        nn.LeakyReLU(0.01),
        nn.Linear(128, 64),
        nn.LeakyReLU(0.01),
        nn.Linear(64, 1),
    )


@pytest.mark.parametrize("seed", [0, 1, 4])
def test_student_initialisation_equals_the_originals_construction(seed):
    torch.manual_seed(seed)
    ours = StudentNet()
    torch.manual_seed(seed)
    theirs = original_student()
    mine, other = ours.layers.state_dict(), theirs.state_dict()
    assert list(mine) == list(other)
    for key in mine:
        assert torch.equal(mine[key], other[key]), key


def test_teacher_initialisation_equals_the_originals_construction():
    torch.manual_seed(3)
    ours = TeacherNet()
    torch.manual_seed(3)
    theirs = original_teacher()
    for (k, a), b in zip(ours.layers.state_dict().items(), theirs.state_dict().values()):
        assert torch.equal(a, b), k


def test_different_seeds_give_different_students():
    torch.manual_seed(0)
    a = StudentNet()
    torch.manual_seed(1)
    b = StudentNet()
    assert not torch.equal(a.layers[0].weight, b.layers[0].weight)


def test_state_dict_keys_start_with_layers():
    for cls in (TeacherNet, ExpertTeacherNet, StudentNet):
        keys = list(cls().state_dict())
        assert keys, cls
        assert all(k.startswith("layers.") for k in keys), keys


def test_original_state_dict_loads_into_our_student():
    """A state_dict saved by the original's class (``self.layers = Sequential(...)``) fits."""

    class OriginalStudent(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = original_student()

    torch.manual_seed(11)
    theirs = OriginalStudent()
    ours = StudentNet()
    ours.load_state_dict(theirs.state_dict())  # strict: same keys, same shapes
    x = torch.randn(5, 10)
    assert torch.equal(ours(x), theirs.layers(x))


@pytest.mark.parametrize(
    "cls, widths",
    [
        (TeacherNet, [256, 256, 128, 64]),
        (ExpertTeacherNet, [256, 256, 128, 128, 64]),
        (StudentNet, [64, 64, 32]),
    ],
)
def test_forward_with_features(cls, widths):
    torch.manual_seed(0)
    net = cls().eval()
    x = torch.randn(6, 10)
    out, features = net.forward_with_features(x)
    assert torch.equal(out, net(x))
    assert tuple(out.shape) == (6, 1)
    assert [f.shape[1] for f in features] == widths
    assert all(f.shape[0] == 6 for f in features)


def test_features_are_the_post_activation_values():
    torch.manual_seed(0)
    net = StudentNet()
    x = torch.randn(8, 10)
    _, features = net.forward_with_features(x)
    first = torch.relu(net.layers[0](x))
    assert torch.equal(features[0], first)
    second = torch.relu(net.layers[2](first))
    assert torch.equal(features[1], second)
    assert all((f >= 0).all() for f in features)  # after ReLU


def test_expert_features_are_taken_before_dropout():
    torch.manual_seed(0)
    net = ExpertTeacherNet().train()
    x = torch.randn(64, 10)
    _, features = net.forward_with_features(x)
    expected = nn.functional.leaky_relu(net.layers[0](x), 0.01)
    assert torch.equal(features[0], expected)


def test_dropout_only_acts_in_train_mode():
    torch.manual_seed(0)
    net = ExpertTeacherNet()
    x = torch.randn(32, 10)
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    assert not torch.equal(net(x), net(x))
    student = StudentNet().train()
    assert torch.equal(student(x), student(x))


def test_forward_shapes():
    x = torch.randn(3, 10)
    for cls in (TeacherNet, ExpertTeacherNet, StudentNet):
        assert tuple(cls()(x).shape) == (3, 1)


def test_regularised_teacher_is_the_teacher_with_the_experts_dropout():
    net, teacher = RegularisedTeacherNet(), TeacherNet()
    linears = [(m.in_features, m.out_features) for m in net.layers if isinstance(m, nn.Linear)]
    assert linears == [(m.in_features, m.out_features) for m in teacher.layers
                       if isinstance(m, nn.Linear)]
    drops = [m.p for m in net.layers if isinstance(m, nn.Dropout)]
    assert drops == [0.3, 0.3, 0.3]  # as many dropout layers as the expert, same rate
    assert drops == [m.p for m in ExpertTeacherNet().layers if isinstance(m, nn.Dropout)]
    torch.manual_seed(5)
    a = RegularisedTeacherNet()
    torch.manual_seed(5)
    b = TeacherNet()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_generic_mlp_spec():
    spec = MLPSpec((4, 8, 2), activation="leaky_relu", negative_slope=0.2,
                   dropout=0.5, dropout_after=(0,))
    net = MLP(spec)
    assert describe(net) == [("Linear", 4, 8), ("LeakyReLU", 0.2), ("Dropout", 0.5),
                             ("Linear", 8, 2)]
    assert net.n_features == 4


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sizes": (10,)},
        {"sizes": (10, 0, 1)},
        {"sizes": (10, 5, 1), "activation": "tanh"},
        {"sizes": (10, 5, 1), "dropout": 1.0},
        {"sizes": (10, 5, 1), "dropout": -0.1},
        {"sizes": (10, 5, 1), "dropout": 0.3, "dropout_after": (1,)},
    ],
)
def test_bad_specs_are_rejected(kwargs):
    with pytest.raises(ValueError):
        MLPSpec(**kwargs)


def test_specs_are_hashable_and_compare_by_value():
    assert StudentNet().spec == StudentNet().spec
    assert hash(StudentNet().spec) == hash(StudentNet().spec)
    assert StudentNet().spec != TeacherNet().spec
