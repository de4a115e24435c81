"""How close a stacked training step comes to the machine's matmul rate (``make bench-step``).

For each kind of network (standard teacher, expert teacher, student), a stack of ``--runs``
networks (5, as in the original protocol) takes full training steps on one batch: forward,
MSE, backward, fused Adam. The arithmetic of a step is counted as three matrix products per
layer (one forward, two backward), 6·M·B·Σ(in·out) floating-point operations, so the rate
in GFLOP/s is that count over the step's median time. Beside it, the same three products
are timed alone with ``torch.bmm`` at the stack's own layer shapes: what the matmul kernels
could do for exactly this work. The ratio says how much of a step is spent outside them
(elementwise work, dropout masks, Adam, Python).

    python benchmarks/step_rates.py                 # 5 networks per stack, batch 128
    python benchmarks/step_rates.py --threads 2 --json rates.json

The expert's dropout masks are timed three ways: drawn ahead in a second thread, as
``train_many`` does on a CPU ("ahead"); drawn inside the step ("inline"); and not drawn at
all, one fixed set of masks reused ("none", a lower bound, not a valid training). What the
masks cost a step is the difference to "none".

``--profile PATH`` also writes a ``torch.profiler`` table of each stack's step (as trained)
to PATH: where the time goes, operator by operator.

``--floor`` also prints the original protocol's arithmetic floor on this machine: its
training steps' matrix products alone (700/600 epochs, 5 runs, 1600 samples an epoch) with
``torch.bmm`` at each kind's shapes, every core running them at once with nothing else to
do (and, beside it, at the rate one thread reaches alone). No version that trains the same
networks on the same samples can be faster, so the original loop's time over it bounds
what any rewrite can gain here.
``benchmarks/original_protocol.py`` prints it beside the original loop's time of the same run.

Measure on an idle machine and compare numbers from one run only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import threading
import time

import torch
from torch.utils import benchmark

from kdteach.core.losses import mse
from kdteach.core.resources import intra_op_threads, usable_cpus
from kdteach.core.stacked import (
    PrefetchedDropout,
    StackedMLP,
    dropout_divisors,
    dropout_shapes,
    make_adam,
)
from kdteach.core.train import seeded_generator
from kdteach.protocol.seeds import initial_student, initial_teacher

KINDS = ("teacher", "expert", "student")
MASKS = ("ahead", "inline", "none")  # how a dropout stack's masks are drawn


def stack_of(kind: str, n_models: int) -> StackedMLP:
    nets = ([initial_student(r) for r in range(n_models)] if kind == "student"
            else [initial_teacher(kind, r) for r in range(n_models)])
    stack = StackedMLP.from_models(nets)
    if stack.spec.dropout:
        stack.dropout_generators = [seeded_generator(1000 + r) for r in range(n_models)]
    return stack.train()


def set_masks(stack: StackedMLP, masks: str, batch: int) -> None:
    """Draw the stack's dropout masks ``ahead`` (a PrefetchedDropout, as train_many on a
    CPU), ``inline`` (in the forward pass) or ``none`` (one fixed set, reused)."""
    if stack.dropout_supply is not None:
        stack.dropout_supply.close()
        stack.dropout_supply = None
    if masks == "inline":
        return
    step = list(dropout_shapes(stack.spec, stack.n_models, batch, batch, 1))
    if masks == "ahead":
        stack.dropout_supply = PrefetchedDropout(stack.dropout_generators, stack.spec.dropout,
                                                 itertools.cycle(step))
    else:
        stack.dropout_supply = FixedMasks(
            {s: dropout_divisors(stack.dropout_generators, s, stack.spec.dropout)
             for s in step})


class FixedMasks:
    """The same masks for every step: what a step costs when no mask is drawn."""

    def __init__(self, divisors: dict):
        self.divisors = divisors

    def __call__(self, shape):
        return self.divisors[tuple(shape)]

    def close(self) -> None:
        self.divisors = {}


def layer_shapes(stack: StackedMLP) -> list[tuple[int, int]]:
    return [tuple(W.shape[1:]) for W in stack.weights]


def step_flops(stack: StackedMLP, batch: int) -> float:
    """Three matrix products per layer: 2·M·B·in·out FLOP each."""
    return 6.0 * stack.n_models * batch * sum(i * o for i, o in layer_shapes(stack))


def _median_seconds(stmt, min_run_time: float, threads: int, globals_: dict) -> float:
    timer = benchmark.Timer(stmt=stmt, globals=globals_, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median


def step_function(stack: StackedMLP, batch: int):
    """One full training step of the stack on one fixed batch."""
    gen = torch.Generator().manual_seed(0)
    width = layer_shapes(stack)[0][0]
    X = torch.randn(stack.n_models, batch, width, generator=gen)
    y = torch.randn(stack.n_models, batch, 1, generator=gen)
    optimizer = make_adam(stack.parameters(), 1e-4, 0.0, fused=True)

    def step():
        optimizer.zero_grad()
        mse(stack(X), y).sum().backward()
        optimizer.step()

    return step


def full_n_train() -> int:
    """The training inputs of the original's split (2000 samples, 20 % held out: 1600),
    counted on the data ``make_dataset`` builds, as the benchmarked loops train on it."""
    from kdteach.core.data import make_dataset

    return len(make_dataset().X_train)


def step_seconds(stack: StackedMLP, batch: int, min_run_time: float, threads: int) -> float:
    """Median seconds of one full training step of the stack on one batch."""
    return _median_seconds("step()", min_run_time, threads,
                           {"step": step_function(stack, batch)})


def profile_table(stack: StackedMLP, batch: int, threads: int, steps: int = 100) -> str:
    """``torch.profiler``'s operator table (self CPU time) over ``steps`` steps."""
    from torch.profiler import ProfilerActivity, profile

    with intra_op_threads(threads):
        step = step_function(stack, batch)
        for _ in range(10):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


def step_products(stack: StackedMLP, batch: int, seed: int = 0):
    """A function that runs the step's matrix products alone, with ``torch.bmm``: per layer
    X·W (forward), dY·Wᵀ and Xᵀ·dY (backward), at the stack's shapes, on random tensors."""
    gen = torch.Generator().manual_seed(seed)
    M = stack.n_models
    tensors = []
    for n_in, n_out in layer_shapes(stack):
        X = torch.randn(M, batch, n_in, generator=gen)
        W = torch.randn(M, n_in, n_out, generator=gen)
        dY = torch.randn(M, batch, n_out, generator=gen)
        tensors.append((X, W, dY, W.transpose(1, 2).contiguous(), X.transpose(1, 2).contiguous()))

    def products():
        for X, W, dY, Wt, Xt in tensors:
            torch.bmm(X, W)
            torch.bmm(dY, Wt)
            torch.bmm(Xt, dY)

    return products


def bmm_seconds(stack: StackedMLP, batch: int, min_run_time: float, threads: int) -> float:
    """Median seconds of the step's matrix products alone (:func:`step_products`)."""
    return _median_seconds("products()", min_run_time, threads,
                           {"products": step_products(stack, batch)})


def all_cores_bmm_rate(stack: StackedMLP, batch: int, cores: int, seconds: float) -> float:
    """FLOP/s of the whole machine when ``cores`` threads, one core each (one intra-op
    thread), run the stack's step products (:func:`step_products`) at the same time, each
    on its own tensors, for about ``seconds``: what the cores reach together, which can be
    less than each one's rate alone (shared caches, memory bandwidth, the host's clocks).
    ``torch.bmm`` leaves Python's lock while it computes, so the threads run in parallel."""
    flop = step_flops(stack, batch)
    works = [step_products(stack, batch, seed) for seed in range(cores)]
    for products in works:
        products()  # warm up: first calls allocate
    counts = [0] * cores
    start = threading.Barrier(cores + 1)  # the workers and this thread, released together

    def worker(i: int) -> None:
        torch.set_num_threads(1)  # the thread count can be a thread's own (OpenMP)
        start.wait()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            works[i]()
            counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(cores)]
    with intra_op_threads(1):
        for t in threads:
            t.start()
        start.wait()
        began = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
    return sum(counts) * flop / elapsed


def measure(kinds=KINDS, runs: int = 5, batch: int = 128, min_run_time: float = 2.0,
            threads: int = 1, profile_to=None) -> list[dict]:
    """One row per kind (per way of drawing masks, for a stack with dropout): step and bmm
    seconds, their GFLOP/s, and the step's share of the bmm rate. ``profile_to``: an open
    text file for each stack's profiler table."""
    rows = []
    for kind in kinds:
        stack = stack_of(kind, runs)
        flops = step_flops(stack, batch)
        bmm = bmm_seconds(stack, batch, min_run_time, threads)
        for masks in (MASKS if stack.spec.dropout else ("",)):
            if masks:
                set_masks(stack, masks, batch)
            try:
                step = step_seconds(stack, batch, min_run_time, threads)
                if profile_to is not None and masks in ("", "ahead"):
                    profile_to.write(f"## {kind}{' (masks ' + masks + ')' if masks else ''}, "
                                     f"{runs} networks, batch {batch}, {threads} thread(s)\n\n"
                                     f"{profile_table(stack, batch, threads)}\n\n")
            finally:
                set_masks(stack, "inline", batch)
            rows.append({
                "kind": kind, "masks": masks, "networks": runs, "batch": batch,
                "threads": threads, "step_ms": step * 1e3, "bmm_ms": bmm * 1e3,
                "step_gflops": flops / step / 1e9, "bmm_gflops": flops / bmm / 1e9,
                "step_share_of_bmm_rate": bmm / step,
            })
    return rows


# ------------------------------------------------------------------ the protocol's floor

# students per run: scratch and distilled (part 1), from the expert (part 2), one per grid
# point (part 3), L_GR (part 4)
STUDENTS_PER_RUN_BESIDE_THE_GRID = 4


def protocol_network_epochs(runs: int = 5, epochs_teacher: int = 700,
                            epochs_student: int = 600, grid_points: int = 5) -> dict[str, int]:
    """How many network-epochs of each kind the original protocol trains (700/600 epochs
    and 5 runs are the original's)."""
    return {"teacher": runs * epochs_teacher, "expert": runs * epochs_teacher,
            "student": runs * (STUDENTS_PER_RUN_BESIDE_THE_GRID + grid_points) * epochs_student}


def best_bmm_rate(kind: str, batch: int, stacks, min_run_time: float
                  ) -> tuple[float, StackedMLP]:
    """FLOP/s: the fastest rate ``torch.bmm`` reaches at one thread on a kind's layer
    shapes, over the stack sizes tried; and the stack that reached it."""
    rated = []
    for n_models in stacks:
        stack = stack_of(kind, n_models)
        rated.append((step_flops(stack, batch) / bmm_seconds(stack, batch, min_run_time, 1),
                      stack))
    return max(rated, key=lambda rate_stack: rate_stack[0])


def arithmetic_floor(network_epochs: dict[str, int], n_train: int, cores: int,
                     batch: int = 128, stacks=(5, 25), min_run_time: float = 0.5) -> dict:
    """A lower bound on the seconds that the training steps in ``network_epochs`` take on this
    machine, whatever the implementation: each network-epoch is ``n_train`` samples through
    three matrix products per layer (``step_flops``). It leaves out everything but those
    products (activations, losses, Adam, dropout, the teachers' predictions, the
    input-derivative terms' extra products), so no version that trains the same networks on
    the same samples in float32 can be faster. Two rates per kind, at the stack size (of
    ``stacks``) where one thread's ``torch.bmm`` is fastest:

    - ``seconds``: every core at the rate that one thread reaches alone, all the time;
    - ``seconds_all_busy``: the rate the machine reaches with ``cores`` threads running
      those products at once (:func:`all_cores_bmm_rate`), which is what a version that
      keeps every core busy gets. This is the floor; ``seconds`` is the lower of the two."""
    kinds = {}
    for kind, epochs in network_epochs.items():
        flop = epochs * n_train * step_flops(stack_of(kind, 1), 1)
        rate, stack = best_bmm_rate(kind, batch, stacks, min_run_time)
        together = all_cores_bmm_rate(stack, batch, cores, 4 * min_run_time)
        kinds[kind] = {"network_epochs": epochs, "tflop": flop / 1e12, "stack": stack.n_models,
                       "bmm_gflops": rate / 1e9, "core_seconds": flop / rate,
                       "all_cores_gflops": together / 1e9, "all_busy_seconds": flop / together}
    core_seconds = sum(k["core_seconds"] for k in kinds.values())
    return {"kinds": kinds, "n_train": n_train, "batch": batch, "stacks": list(stacks),
            "cores": cores, "core_seconds": core_seconds, "seconds": core_seconds / cores,
            "seconds_all_busy": sum(k["all_busy_seconds"] for k in kinds.values())}


def format_floor(floor: dict, original_seconds: float | None = None) -> str:
    cores = floor["cores"]
    lines = [f"arithmetic floor: {floor['n_train']} samples an epoch, three products per layer "
             f"with torch.bmm (batch {floor['batch']}, the fastest stack of "
             f"{' or '.join(map(str, floor['stacks']))})",
             f"  {'':<8}{'network-epochs':>15}{'TFLOP':>8}  one thread alone"
             f"{'':>9}{cores} cores at once"]
    for kind, k in floor["kinds"].items():
        lines.append(f"  {kind:<8}{k['network_epochs']:>15}{k['tflop']:>8.2f}"
                     f"  {k['bmm_gflops']:>5.1f} GFLOP/s {k['core_seconds']:>6.1f} core-s"
                     f"  {k['all_cores_gflops']:>6.1f} GFLOP/s {k['all_busy_seconds']:>6.1f} s")
    lines.append(f"  every core at its one-thread rate: {floor['core_seconds']:.1f} core-s over "
                 f"{cores} core(s) = {floor['seconds']:.1f} s")
    lines.append(f"  {cores} cores busy at once, at the rate they reach together: "
                 f"{floor['seconds_all_busy']:.1f} s, the floor for any version")
    if original_seconds is not None:
        lines.append(f"  original loop {original_seconds:.1f} s / floor "
                     f"{floor['seconds_all_busy']:.1f} s = "
                     f"{original_seconds / floor['seconds_all_busy']:.1f}× "
                     f"({original_seconds / floor['seconds']:.1f}× at the one-thread rate): "
                     f"the most that any version training the same networks could gain on "
                     f"this machine now")
    return "\n".join(lines)


def mask_shares(rows: list[dict]) -> dict:
    """For each stack with dropout: the share of its step that drawing the masks costs,
    drawn ahead and inline (against the same step with no masks drawn)."""
    shares = {}
    for kind in dict.fromkeys(r["kind"] for r in rows if r["masks"]):
        ms = {r["masks"]: r["step_ms"] for r in rows if r["kind"] == kind}
        shares[kind] = {way: (ms[way] - ms["none"]) / ms[way] for way in ("ahead", "inline")}
    return shares


def table(rows: list[dict]) -> str:
    lines = [f"{'stack':<10}{'masks':<8}{'step ms':>10}{'GFLOP/s':>10}{'bmm ms':>10}"
             f"{'GFLOP/s':>10}{'step/bmm rate':>15}"]
    for r in rows:
        lines.append(f"{r['kind']:<10}{r['masks']:<8}{r['step_ms']:>10.2f}"
                     f"{r['step_gflops']:>10.1f}{r['bmm_ms']:>10.2f}{r['bmm_gflops']:>10.1f}"
                     f"{100 * r['step_share_of_bmm_rate']:>14.0f}%")
    for kind, share in mask_shares(rows).items():
        lines.append(f"{kind} dropout masks: {100 * share['ahead']:.0f} % of the step drawn "
                     f"ahead, {100 * share['inline']:.0f} % drawn inline")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="networks per stack (default 5)")
    p.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--min-run-time", type=float, default=2.0,
                   help="seconds of timing per measurement (default 2)")
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--profile", metavar="PATH",
                   help="also write torch.profiler's table of each step to this text file")
    p.add_argument("--floor", action="store_true",
                   help="also print the original protocol's arithmetic floor on this machine "
                        "(700/600 epochs, 5 runs)")
    args = p.parse_args(argv)
    if args.runs < 1 or args.batch < 1 or args.threads < 1 or args.min_run_time <= 0:
        p.error("--runs, --batch and --threads must be >= 1 and --min-run-time > 0")
    print(f"stacked step rates: {args.runs} networks per stack, batch {args.batch}, "
          f"{args.threads} thread(s), torch {torch.__version__}, load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    if args.profile:
        with open(args.profile, "w") as profile_to:
            rows = measure(args.kinds, args.runs, args.batch, args.min_run_time, args.threads,
                           profile_to)
    else:
        rows = measure(args.kinds, args.runs, args.batch, args.min_run_time, args.threads)
    print(table(rows))
    if args.floor:
        print(format_floor(arithmetic_floor(protocol_network_epochs(), full_n_train(),
                                            usable_cpus(), args.batch)))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
