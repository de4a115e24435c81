"""Where every model's random numbers come from, so that runs are paired.

Run ``i`` calls ``torch.manual_seed(i)`` and builds the student's initial weights, then
the teacher, in the original notebook's order; every student of run ``i`` starts from
that one initial state, so the t-tests compare like with like. Every model keeps its own
shuffle order, fixed by its run and its role (:func:`shuffle_seed`).

Every network is built here, under one lock: building draws from torch's global
generator, so a network built in one thread while another thread builds run ``i``'s
teacher would change that teacher's initial weights.
"""

from __future__ import annotations

import threading
import zlib

import torch

from kdteach.core.models import MLP, StudentNet
from kdteach.protocol.recipes import TEACHER_RECIPES, check_teacher_kind

# Initial weights come from torch's global generator: one thread at a time may seed and draw.
_GLOBAL_RNG = threading.Lock()


def shuffle_seed(run: int, role: str) -> int:
    """The shuffle seed of one model: fixed by its run and its role, nothing else."""
    return zlib.crc32(f"run{run}/{role}".encode())


def initial_student(run: int, n_features: int = 10) -> StudentNet:
    """Run ``run``'s student initial weights: ``torch.manual_seed(run)``, then a StudentNet."""
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(run)
        return StudentNet(n_features)


def blank_student(n_features: int = 10) -> StudentNet:
    """A student to load saved weights into. Building one draws its (discarded) initial
    weights from torch's global generator: under the lock and on a forked state, so it
    never shifts a teacher being built in another thread, nor the caller's numbers."""
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        return StudentNet(n_features)


def initial_teacher(kind: str, run: int, n_features: int = 10) -> MLP:
    """A teacher's initial weights in the original's order: for the standard teacher (and
    its regularised twin) the student template is drawn first; the expert is drawn right
    after ``torch.manual_seed(run)``. A teacher trained on the fit part only starts where
    its whole-training-set twin starts."""
    check_teacher_kind(kind)
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(run)
        if TEACHER_RECIPES[kind].student_first:
            StudentNet(n_features)
        return TEACHER_RECIPES[kind].net(n_features)
