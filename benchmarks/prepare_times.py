"""How long each thing the lessons load takes to train from an empty cache.

Trains every need of the lessons (:func:`kdteach.lesson.preparation.lesson_needs`: their
stages and slider grids) into a new, empty cache, one after another in lesson order as a
learner running the lessons would, with one intra-op thread, and records the seconds of
each in ``kdteach/lesson/training_times.json`` under the profile's name. Lesson 00 and
``python -m kdteach cache --check`` quote the sum of the missing ones as the time a cache's
gap takes to train.

Run it alone on an idle machine (it prints the load of the rest of the machine, and
refuses to record a run during which other processes used more than a tenth of a core
unless ``--anyway``)::

    python benchmarks/prepare_times.py --profile quick
    python benchmarks/prepare_times.py --profile full    # about half an hour on 2 cores
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

from kdteach.lesson import preparation
from kdteach.protocol.experiment import Experiment
from kdteach.protocol.files import write_text_atomic
from kdteach.protocol.settings import PROFILES, get_settings


def _original_protocol():
    path = Path(__file__).with_name("original_protocol.py")
    spec = importlib.util.spec_from_file_location("original_protocol", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _original_protocol()  # the machine and load helpers of `make bench`


def measure(profile: str, cache_folder: Path, progress: bool = False) -> tuple[dict, dict]:
    """``(seconds per need, other processes' load)`` for ``profile``, into an empty
    ``cache_folder``, on the CPU with one thread."""
    torch.set_num_threads(1)
    exp = Experiment(get_settings(profile, "cpu"), cache=cache_folder, progress=progress)
    seconds = {}
    timer = bench.Timer("cpu")
    _, load = timer(lambda: seconds.update(preparation.train_needs(exp)))
    return seconds, load


def record(profile: str, seconds: dict, machine: str, path: Path = preparation.TIMES_FILE):
    """Merge one profile's seconds into the times file (the other profiles are kept)."""
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}
    if recorded.get("machine") not in (None, machine):
        recorded["profiles"] = {}  # times from another machine are not comparable
    recorded["machine"] = machine
    recorded.setdefault("profiles", {})[profile] = seconds
    write_text_atomic(path, json.dumps(recorded, indent=1, sort_keys=True) + "\n")


def machine_label(info: dict) -> str:
    return f"a {info['cpus_usable']}-core CPU ({info['cpu_model']}), one thread"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=PROFILES, required=True)
    parser.add_argument("--out", type=Path, default=preparation.TIMES_FILE,
                        help="the times file (default: the package's)")
    parser.add_argument("--anyway", action="store_true",
                        help="record even if other processes were busy meanwhile")
    parser.add_argument("--progress", action="store_true", help="show the progress bars")
    parser.add_argument("--cache", type=Path,
                        help="train into this (empty) cache folder and keep it, e.g. the "
                             "cache the lessons then load; default: a temporary folder")
    args = parser.parse_args(argv)
    if args.cache is not None and args.cache.exists() and any(args.cache.iterdir()):
        parser.error(f"--cache {args.cache} is not empty: the times are from an empty cache")
    os.environ["OMP_NUM_THREADS"] = "1"
    info = bench.machine_info()
    print(f"load average before: {os.getloadavg()}", flush=True)
    if args.cache is not None:
        seconds, load = measure(args.profile, args.cache, progress=args.progress)
    else:
        with tempfile.TemporaryDirectory(prefix="kdteach-prepare-times-") as folder:
            seconds, load = measure(args.profile, Path(folder), progress=args.progress)
    print(f"load average after: {os.getloadavg()}")
    for name, s in seconds.items():
        print(f"{s:8.1f} s  {name}")
    print(f"{sum(seconds.values()):8.1f} s  in all ({args.profile} profile)")
    warnings = bench.load_warnings({"the run": load})
    for line in warnings:
        print(line)
    if warnings and not args.anyway:
        print("not recorded: run it again on an idle machine (or pass --anyway)")
        return 1
    record(args.profile, seconds, machine_label(info), args.out)
    print(f"recorded in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
