"""Shared test set-up."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny networks gain nothing from a second thread, and on a busy 2-core machine two
    OpenMP threads per process make every step many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
