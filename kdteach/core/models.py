"""The original notebook's three networks (and one ablation), built by one MLP builder.

================  =====================================================  ==========
network           layers (hidden widths, activation, dropout)            parameters
================  =====================================================  ==========
TeacherNet        10→256→256→128→64→1, LeakyReLU(0.01)                     109,825
ExpertTeacherNet  10→256→256→128→128→64→1, LeakyReLU(0.01), Dropout(0.3)   126,337
                  after hidden layers 1, 2 and 4
StudentNet        10→64→64→32→1, ReLU                                        6,977
================  =====================================================  ==========

The lessons add ``RegularisedTeacherNet``: TeacherNet's layers with Dropout(0.3) after
hidden layers 1–3, trained with the expert's weight decay; it tells the expert's depth
apart from its regularisation.

All use PyTorch's default initialisation, created layer by layer in the original's order,
so ``torch.manual_seed(i)`` gives the original's initial weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class MLPSpec:
    """What defines an MLP: layer widths, activation, and where dropout goes."""

    sizes: tuple  # (in, hidden..., out)
    activation: str = "relu"  # "relu" or "leaky_relu"
    negative_slope: float = 0.01
    dropout: float = 0.0
    dropout_after: tuple = ()  # 0-based indices of hidden layers followed by Dropout

    def __post_init__(self):
        if len(self.sizes) < 2 or any(int(s) <= 0 for s in self.sizes):
            raise ValueError(f"sizes must list >= 2 positive widths, got {self.sizes!r}")
        if self.activation not in ("relu", "leaky_relu"):
            raise ValueError(f"activation must be 'relu' or 'leaky_relu', got {self.activation!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout!r}")
        n_hidden = len(self.sizes) - 2
        if any(not 0 <= i < n_hidden for i in self.dropout_after):
            raise ValueError(f"dropout_after indices must lie in 0..{n_hidden - 1}")

    def make_activation(self) -> nn.Module:
        if self.activation == "relu":
            return nn.ReLU()
        return nn.LeakyReLU(self.negative_slope)


class MLP(nn.Module):
    """A fully connected network; ``self.layers`` is an ``nn.Sequential`` like the original's."""

    def __init__(self, spec: MLPSpec):
        super().__init__()
        self.spec = spec
        layers = []
        sizes = spec.sizes
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:  # hidden layer
                layers.append(spec.make_activation())
                if spec.dropout and i in spec.dropout_after:
                    layers.append(nn.Dropout(p=spec.dropout))
        self.layers = nn.Sequential(*layers)

    @property
    def n_features(self) -> int:
        return self.spec.sizes[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The output and every hidden layer's activation (after the non-linearity,
        before any dropout). The output is the same tensor ``forward`` returns."""
        features = []
        for layer in self.layers:
            x = layer(x)
            if isinstance(layer, (nn.ReLU, nn.LeakyReLU)):
                features.append(x)
        return x, features


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def teacher_spec(n_features: int = 10) -> MLPSpec:
    return MLPSpec((n_features, 256, 256, 128, 64, 1), activation="leaky_relu")


def expert_teacher_spec(n_features: int = 10) -> MLPSpec:
    return MLPSpec(
        (n_features, 256, 256, 128, 128, 64, 1),
        activation="leaky_relu",
        dropout=0.3,
        dropout_after=(0, 1, 3),
    )


def regularised_teacher_spec(n_features: int = 10) -> MLPSpec:
    """The standard teacher's layers with the expert's dropout (0.3 after every hidden
    layer but the last, as in the expert): an ablation, not in the original notebook."""
    return MLPSpec(
        (n_features, 256, 256, 128, 64, 1),
        activation="leaky_relu",
        dropout=0.3,
        dropout_after=(0, 1, 2),
    )


def student_spec(n_features: int = 10) -> MLPSpec:
    return MLPSpec((n_features, 64, 64, 32, 1), activation="relu")


class TeacherNet(MLP):
    """The standard teacher: deep, LeakyReLU, no dropout."""

    def __init__(self, n_features: int = 10):
        super().__init__(teacher_spec(n_features))


class ExpertTeacherNet(MLP):
    """The expert teacher: one layer deeper, with dropout for better generalisation."""

    def __init__(self, n_features: int = 10):
        super().__init__(expert_teacher_spec(n_features))


class RegularisedTeacherNet(MLP):
    """The standard teacher's depth with the expert's dropout: separates depth from
    regularisation (trained with the expert's weight decay). Same parameters, and the
    same initial weights for a given random seed, as :class:`TeacherNet`."""

    def __init__(self, n_features: int = 10):
        super().__init__(regularised_teacher_spec(n_features))


class StudentNet(MLP):
    """The small ReLU student."""

    def __init__(self, n_features: int = 10):
        super().__init__(student_spec(n_features))
