"""Small settings and weight comparisons shared by the protocol's tests."""

import torch

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
