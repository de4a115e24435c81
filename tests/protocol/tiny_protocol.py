"""Small settings, weight comparisons and a spy on the trainings, shared by the protocol's
tests."""

from dataclasses import dataclass

import torch

from kdteach.protocol import training
from kdteach.protocol.settings import get_settings


def tiny(**changes):
    fields = {"n_runs": 2, "epochs_teacher": 2, "epochs_student": 2, **changes}
    return get_settings("quick", device="cpu", **fields)


def same_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def close_weights(a, b, atol=1e-4):
    """Equal up to rounding: Adam turns last-bit gradient differences on near-zero gradients
    into at most about one step of the learning rate (1e-4 for teachers)."""
    pairs = zip(a.state_dict().values(), b.state_dict().values())
    return all(torch.allclose(p, q, rtol=0, atol=atol) for p, q in pairs)


@dataclass
class SeenTraining:
    """One stacked training the protocol asked for: its models, their weights as they
    started, its training inputs and its keyword arguments."""

    nets: list
    initial_states: list
    X: torch.Tensor
    kwargs: dict

    @property
    def labels(self) -> list[str]:
        return list(self.kwargs["labels"])


def spy_trainings(monkeypatch) -> list[SeenTraining]:
    """Every stacked training (``train_many``) from now on, recorded as it starts and then
    run as usual; the list fills as trainings start."""
    seen = []
    real = training.train_many

    def spy(nets, X, *args, **kwargs):
        seen.append(SeenTraining(list(nets), [{k: v.clone() for k, v in n.state_dict().items()}
                                  for n in nets], X, kwargs))
        return real(nets, X, *args, **kwargs)

    monkeypatch.setattr(training, "train_many", spy)
    return seen
