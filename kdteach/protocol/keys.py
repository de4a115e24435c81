"""The cache keys: every setting an entry's contents depend on, and nothing else.

A stale entry is one whose key differs, so it is never loaded: changing a setting, a
teacher or a job retrains what depends on it, and only that.
"""

from __future__ import annotations

import hashlib

from kdteach.protocol.recipes import TEACHER_RECIPES
from kdteach.protocol.settings import Settings


def data_key(settings: Settings) -> dict:
    """The settings every cache entry depends on."""
    s = settings
    return {
        "n_samples": s.n_samples, "n_features": s.n_features, "noise": s.noise,
        "data_seed": s.data_seed, "test_size": s.test_size, "split_seed": s.split_seed,
        "batch_size": s.batch_size, "device": s.torch_device.type, "heldout": "test",
    }


def teacher_key(settings: Settings, kind: str, run: int) -> dict:
    """Run ``run``'s teacher of ``kind``."""
    s, recipe = settings, TEACHER_RECIPES[kind]
    return {
        "what": f"{kind}-teacher", "run": run, "epochs": s.epochs_teacher,
        "lr": s.lr_teacher, "weight_decay": getattr(s, recipe.weight_decay),
        "shuffle": recipe.shuffle_role, **data_key(s),
        # the fit part is fixed by the validation split's settings
        **({"trained_on": "fit", "val_size": s.val_size, "val_seed": s.val_seed}
           if recipe.trained_on == "fit" else {}),
    }


def weights_fingerprint(net) -> str:
    """A hash of a network's weights (names, shapes, dtypes and values): which teacher
    taught a student, so that a teacher trained again gets its students trained again."""
    digest = hashlib.sha256()
    for name, tensor in net.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()[:20]


def students_key(settings: Settings, part: str, jobs, X, y, epochs: int,
                 stopping: tuple | None, teachers: dict, stop_epochs: dict | None = None
                 ) -> dict:
    """The students of one training ``part``: its jobs, the weights of the teachers that
    taught them (``teachers``: {kind: [net per run]}), the inputs they were trained on
    and, with early stopping, the validation set and the patience; with each model's own
    epochs (``stop_epochs``), those."""
    s = settings
    key = {
        "what": f"students-{part}", "runs": s.n_runs, "epochs": epochs,
        "lr": s.lr_student, "weight_decay": s.weight_decay_student,
        "jobs": [job.key for job in jobs],
        "teachers": {kind: [weights_fingerprint(net) for net in nets]
                     for kind, nets in sorted(teachers.items())},
        "inputs": [len(X), float(X.sum()), float(y.sum())],
        **data_key(s),
    }
    if stopping is not None:
        (X_val, y_val), patience = stopping
        key["stopping"] = [len(X_val), float(X_val.sum()), float(y_val.sum()), patience]
    if stop_epochs is not None:
        key["epochs"] = {name: [int(e) for e in per_run]
                         for name, per_run in sorted(stop_epochs.items())}
    return key
