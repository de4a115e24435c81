"""Shared test set-up: one intra-op thread, and the device the tests run on.

The tests of the training engine take their device from the ``device`` fixture:
``KDTEACH_DEVICE`` (``cpu``, ``cuda`` or ``auto``), ``cpu`` when it is not set. ``make test``
runs them on the CPU, ``make test-gpu`` (``KDTEACH_DEVICE=cuda``) on CUDA. Asking for CUDA
where PyTorch sees none stops the whole run at once with an error; it never falls back to
the CPU.
"""

import os

import pytest
import torch

from kdteach.protocol.settings import resolve_device

# How much looser a tolerance between two different computations of one number (a stack
# against one model, kdteach against a reference loop) is on CUDA: other kernels, other
# orders of summation. Comparisons of one computation with itself stay exact everywhere.
CUDA_TOLERANCE_FACTOR = 10


def device_from_environment(environ=None) -> torch.device:
    """The tests' device from ``KDTEACH_DEVICE`` (default ``cpu``); a clear
    ``pytest.UsageError`` for an unknown name or for CUDA without a GPU."""
    environ = os.environ if environ is None else environ
    name = environ.get("KDTEACH_DEVICE") or "cpu"
    try:
        return resolve_device(name)
    except (ValueError, RuntimeError) as exc:
        raise pytest.UsageError(
            f"KDTEACH_DEVICE={name} cannot run the tests: {exc}. Run them on the CPU with "
            "KDTEACH_DEVICE=cpu (make test), or on CUDA on a machine whose PyTorch sees a GPU "
            "(make test-gpu)"
        ) from None


def pytest_configure(config):
    config.kdteach_device = device_from_environment()  # fails once, before any test runs


@pytest.fixture(scope="session")
def choose_device():
    """:func:`device_from_environment` itself, for the tests of the device choice (a test
    module cannot import this conftest by name: tests/browser has another)."""
    return device_from_environment


@pytest.fixture(scope="session")
def device(pytestconfig) -> torch.device:
    """The device of the engine's tests: every tensor and model they make lives there."""
    return pytestconfig.kdteach_device


@pytest.fixture(scope="session")
def tol(device):
    """``tol(x)``: a CPU tolerance ``x`` as it applies on the tests' device (unchanged on the
    CPU, ``CUDA_TOLERANCE_FACTOR`` times looser on CUDA; 0 stays 0)."""
    factor = 1 if device.type == "cpu" else CUDA_TOLERANCE_FACTOR
    return lambda x: x * factor


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny networks gain nothing from a second thread, and on a busy 2-core machine two
    OpenMP threads per process make every step many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
