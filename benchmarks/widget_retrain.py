"""Time what the lesson widgets do: prepare their sliders once, then answer each move.

For each widget (notebook 03's ``retrain_explorer``, grid ``"retrain"``; notebook 04's
``lgr_explorer``, grid ``"lgr"``) at the chosen profile, for run 1:

* **prepare**: ``slider_grid(exp, name)`` with an empty cache, the one-off
  preparation the notebook announces (training, scoring every snapshot, saving);
* **prepared position**: a press of Retrain on a prepared position, driving the widget
  itself (lookup and figure, until the output area shows the result);
* **off the grid**: a press of Retrain on a position that is not prepared (notebook 04's
  hard weight at 0.3 instead of 0.2, the profile's epochs): the time until the first live
  curve is shown, and until the result is.

Run 1's expert teacher comes from the cache (``--cache``, default the package's folder;
trained there first, untimed, when missing) and is copied into a temporary folder, where
the grids are prepared and saved. No reference stages are loaded (the widgets get
``stages=[]``): their table is not part of what is timed.

    python benchmarks/widget_retrain.py --profile quick
    python benchmarks/widget_retrain.py --profile full --repeats 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from kdteach.lesson import widgets
from kdteach.lesson.slider_grid import slider_grid
from kdteach.protocol.experiment import Experiment
from kdteach.protocol.keys import teacher_key
from kdteach.protocol.settings import get_settings

TARGET_SECONDS = 1.0  # a prepared position
EXPLORERS = {"retrain": widgets.retrain_explorer, "lgr": widgets.lgr_explorer}
PREPARED_MOVES = {  # a prepared position of each widget: (control, value) pairs
    "retrain": [("hard", 0.15)],
    "lgr": [("gr", 10.0 ** 2)],
}
OFF_GRID_MOVES = [("hard", 0.3)]  # notebook 04 at hard 0.3: not prepared


def _press(panel, moves) -> dict:
    """Set the controls, press Retrain; seconds until the first live curve (None when
    none was drawn) and until the result is shown."""
    first_curve = []

    def watch(change):
        shown = change["new"]
        if not first_curve and any("image/png" in o.get("data", {}) for o in shown) and \
                any(o.get("text", "").startswith("Training now: epoch") for o in shown):
            first_curve.append(time.perf_counter() - start)

    for name, value in moves:
        panel.controls[name].value = value
    panel.out.observe(watch, names="outputs")
    start = time.perf_counter()
    panel.controls["retrain"].click()
    seconds = time.perf_counter() - start
    panel.out.unobserve(watch, names="outputs")
    text = widgets.output_text(panel.out)
    if "test MSE" not in text:
        raise RuntimeError(f"the widget showed no result: {text[:200]}")
    return {"seconds": seconds, "first_curve": first_curve[0] if first_curve else None,
            "looked_up": "Looked up" in text}


def measure(settings, teacher_cache, repeats: int = 3) -> dict:
    """Every timing, for both widgets; ``teacher_cache`` holds (or receives) run 1's expert."""
    source = Experiment(settings, cache=teacher_cache, progress=False)
    start = time.perf_counter()
    source.teachers("expert")
    teacher_seconds = time.perf_counter() - start
    expert_file = source.cache.path("expert-run0", teacher_key(source.settings, "expert", 0))
    out = {"teacher_seconds": teacher_seconds, "prepare": {}, "prepared": {}}
    with tempfile.TemporaryDirectory() as folder:
        if expert_file.exists():  # a cache that could not be written leaves none
            shutil.copy(expert_file, Path(folder) / expert_file.name)
        exp = Experiment(settings, cache=folder, progress=False)
        exp.teachers("expert")
        for name in EXPLORERS:
            start = time.perf_counter()
            slider_grid(exp, name)
            out["prepare"][name] = time.perf_counter() - start
        for name, explorer in EXPLORERS.items():
            panel = explorer(exp, stages=[])
            presses = [_press(panel, PREPARED_MOVES[name]) for _ in range(repeats)]
            if not all(p["looked_up"] for p in presses):
                raise RuntimeError(f"{name}: a prepared position was trained, not looked up")
            out["prepared"][name] = [p["seconds"] for p in presses]
        panel = widgets.lgr_explorer(exp, stages=[])
        presses = [_press(panel, OFF_GRID_MOVES) for _ in range(repeats)]
        if any(p["looked_up"] for p in presses):
            raise RuntimeError("the off-grid position was looked up: choose another")
        out["off_grid"] = {"first_curve": [p["first_curve"] for p in presses],
                           "seconds": [p["seconds"] for p in presses]}
    return out


def _spread(values) -> str:
    return (f"median {statistics.median(values):.2f} s "
            f"(min {min(values):.2f}, max {max(values):.2f})")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", choices=("quick", "full"), default="quick")
    p.add_argument("--repeats", type=int, default=3, help="presses per timed case")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--cache", default=None,
                   help="where run 1's expert teacher is cached (default: kdteach's folder)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = get_settings(args.profile, device=args.device, n_runs=1)

    load_before = os.getloadavg()
    result = measure(settings, args.cache if args.cache else True, args.repeats)
    load_after = os.getloadavg()

    print(f"lesson widgets, {args.profile} profile: {settings.epochs_student} student epochs, "
          f"batch {settings.batch_size}, run 1's expert (ready in "
          f"{result['teacher_seconds']:.1f} s, not timed), device {args.device}")
    for name in EXPLORERS:
        print(f"{name:>8}: prepare {result['prepare'][name]:.1f} s once; a prepared position "
              f"{_spread(result['prepared'][name])}")
    off = result["off_grid"]
    firsts = [x for x in off["first_curve"] if x is not None]
    first = _spread(firsts) if firsts else "never drawn"
    print(f"off the grid (lgr, hard 0.3): first live curve {first}; "
          f"result {_spread(off['seconds'])}")
    worst = max(max(v) for v in result["prepared"].values())
    verdict = "meets" if worst <= TARGET_SECONDS else "misses"
    print(f"slowest prepared position {worst:.2f} s ({verdict} the {TARGET_SECONDS:g} s target)")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, CPUs {os.cpu_count()}")
    print(f"load average (1/5/15 min) before {[round(x, 2) for x in load_before]}, "
          f"after {[round(x, 2) for x in load_after]}")
    return result


if __name__ == "__main__":
    main()
