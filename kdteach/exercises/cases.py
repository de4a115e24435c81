"""The random cases the checkers draw: one seed, batches, loss weights, a summed MSE."""

from __future__ import annotations

import numpy as np
import torch

SEED = 2024  # every checker draws its cases from this random seed


def batch(gen: torch.Generator, n: int, d: int = 1, scale: float = 1.0) -> torch.Tensor:
    """``n`` random rows of ``d`` values from ``gen``."""
    return scale * torch.randn(n, d, generator=gen)


def sum_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The summed squared error: a typical mistake for the batch mean."""
    return ((a - b) ** 2).sum()


def distinct_weights(rng: np.random.Generator, sum_to_one: bool) -> tuple[float, float]:
    """Two clearly different weights; unless ``sum_to_one``, their sum is clearly not 1."""
    while True:
        hard = float(rng.uniform(0.05, 0.95))
        hp = 1.0 - hard if sum_to_one else float(rng.uniform(0.05, 1.5))
        if abs(hard - hp) > 0.1 and (sum_to_one or abs(hard + hp - 1) > 0.1):
            return hard, hp
