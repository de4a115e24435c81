"""Time what a notebook slider does on every drag: retrain one student from a trained expert.

The expert teacher is trained once, at the quick profile, and is not timed. Each timed
retrain is one call of :func:`kdteach.train.train` (the one-model loop a learner reads)
with ``DistillationLoss(hard=h, hp=1 - h)``, the quick profile's student epochs, run 0's
initial student weights, and no progress bar. The target for a live slider is a median
of at most 2 s on a 2-core CPU.

    python benchmarks/widget_retrain.py
    python benchmarks/widget_retrain.py --hard 0.1 0.5 0.9 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from kdteach.config import get_settings
from kdteach.experiments import Experiment, initial_student
from kdteach.losses import DistillationLoss
from kdteach.train import evaluate, train

TARGET_SECONDS = 2.0


def retrain_once(teacher, data, settings, h: float, seed: int = 0):
    """One slider retrain; returns (seconds, test MSE of the retrained student)."""
    student = initial_student(0, settings.n_features).to(data.X_train.device)
    loss = DistillationLoss(hard=h, hp=1.0 - h)
    start = time.perf_counter()
    train(student, data.X_train, data.y_train, loss, teacher,
          num_epochs=settings.epochs_student, lr=settings.lr_student,
          weight_decay=settings.weight_decay_student, batch_size=settings.batch_size,
          seed=seed, progress=False)
    seconds = time.perf_counter() - start
    return seconds, evaluate(student, data.X_test, data.y_test)["mse"]


def time_retrains(teacher, data, settings, hard_weights, repeats: int = 3,
                  warmup: bool = True) -> dict:
    """``{h: [seconds per repeat]}`` plus the test MSEs; one untimed warm-up first."""
    if warmup:
        retrain_once(teacher, data, settings, hard_weights[0])
    seconds, mse = {}, {}
    for h in hard_weights:
        runs = [retrain_once(teacher, data, settings, h, seed=r) for r in range(repeats)]
        seconds[h] = [s for s, _ in runs]
        mse[h] = [m for _, m in runs]
    return {"seconds": seconds, "mse": mse}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hard", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.7, 0.9],
                   help="hard-loss weights h to retrain with (hp = 1 - h)")
    p.add_argument("--repeats", type=int, default=3, help="timed retrains per h")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = p.parse_args(argv)
    if args.repeats < 1 or not all(0.0 <= h <= 1.0 for h in args.hard):
        p.error("--repeats must be >= 1 and every --hard weight in [0, 1]")
    if args.threads:
        torch.set_num_threads(args.threads)

    settings = get_settings("quick", device=args.device)
    exp = Experiment(settings, cache=False, progress=False)
    start = time.perf_counter()
    teacher = exp.teachers("expert")[0]
    teacher_seconds = time.perf_counter() - start
    data = exp.data

    load_before = os.getloadavg()
    result = time_retrains(teacher, data, settings, args.hard, args.repeats)
    load_after = os.getloadavg()

    print(f"widget retrain: one student, {settings.epochs_student} epochs (quick profile), "
          f"batch {settings.batch_size}, from run 0's expert teacher "
          f"(trained once in {teacher_seconds:.1f} s, not timed), device {args.device}")
    print(f"{'h (hard)':>9}{'hp':>6}{'median s':>10}{'min s':>8}{'max s':>8}{'test MSE':>10}")
    for h in args.hard:
        s = result["seconds"][h]
        print(f"{h:>9g}{1 - h:>6g}{statistics.median(s):>10.2f}{min(s):>8.2f}{max(s):>8.2f}"
              f"{statistics.mean(result['mse'][h]):>10.4f}")
    every = [x for s in result["seconds"].values() for x in s]
    median = statistics.median(every)
    verdict = "meets" if median <= TARGET_SECONDS else "misses"
    print(f"median seconds per retrain: {median:.2f} over {len(every)} retrains "
          f"({verdict} the {TARGET_SECONDS:g} s slider target)")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"CPUs {os.cpu_count()}")
    print(f"load average (1/5/15 min) before {[round(x, 2) for x in load_before]}, "
          f"after {[round(x, 2) for x in load_after]}")
    return {"median_seconds": median, "teacher_seconds": teacher_seconds, **result}


if __name__ == "__main__":
    main()
