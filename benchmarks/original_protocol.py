"""Time the original notebook's protocol two ways in one process: its own loops, and kdteach.

The baseline below re-implements what the original notebook does, step for step, so that
its cost can be measured on the same machine, in the same process as kdteach:

* data in a ``TensorDataset`` read by ``DataLoader(batch_size=128, shuffle=True)``;
* plain ``nn.Sequential`` networks with PyTorch's default initialisation;
* one ``optim.Adam`` per network (teachers lr 1e-4, weight decay 1e-5, the expert 1e-4;
  students lr 1e-3, no decay);
* per batch: a student step, the teacher's forward pass under ``no_grad`` when it
  distils, and for L_GR two input gradients of batch-mean MSE losses (the student's with
  ``create_graph=True``);
* the original's run loops, stage by stage (part 1: teacher, scratch, distilled 0.3/0.7;
  part 2: expert teacher and a student distilled from it; part 3: five grid points per
  run from that run's expert; part 4: L_GR 0.2/0.5/0.3), each run starting from
  ``torch.manual_seed(i)`` and one student initial state shared by all its students.

kdteach runs the same stages with ``Experiment(settings, cache=False, progress=False)`` as
``python -m kdteach reproduce`` runs them (on a CPU with two cores or more: one intra-op
thread, the expert teachers trained alongside part 1, part 3 alongside part 2, part 4's
students while part 3 is waited for). The sides are interleaved (the original's four parts,
then kdteach's; stage by stage when kdteach does not overlap its work) so that a change in
the machine's load during the run hits both sides alike. Each repeat then times both sides
as fresh processes, start-up, imports and writing included: this script with ``--only original``,
and ``python -m kdteach reproduce --no-cache``. The report gives the median over repeats with
the spread, and how busy the rest of the machine was during every timed part. Test MSEs are
printed only to show that both sides learned; at a reduced ``--scale`` they are not the
original's numbers. Last, the protocol's arithmetic floor on this machine
(``step_rates.arithmetic_floor``: its training steps' matrix products alone, at the rate
``torch.bmm`` reaches with every core computing at once) is printed beside the original
loop's time: their ratio is the most any version could gain over the original loop here
(``--no-floor``: skip).

    python benchmarks/original_protocol.py                 # 1/10 of the original's epochs, 5 runs
    python benchmarks/original_protocol.py --scale 1 --repeat 1   # the original's 700/600 epochs
    python benchmarks/original_protocol.py --only original --json original.json
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from sklearn.metrics import mean_squared_error
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

from kdteach.protocol.names import (  # the original's model names
    DISTILLED,
    DISTILLED_EXPERT,
    EXPERT,
    LGR,
    SCRATCH,
    TEACHER,
)
from kdteach.protocol.overlap import start_alongside
from kdteach.protocol.results import merge
from kdteach.protocol.stages import ORIGINAL as STAGES  # the original's stage order

ORIGINAL_EPOCHS_TEACHER = 700
ORIGINAL_EPOCHS_STUDENT = 600
BATCH_SIZE = 128
LR_TEACHER = 1e-4
LR_STUDENT = 1e-3
WD_TEACHER = 1e-5
WD_EXPERT = 1e-4
KD_WEIGHTS = {"hard": 0.3, "hp": 0.7}
GRID_WEIGHTS = [{"hard": h, "hp": hp} for h, hp in
                ((0.1, 0.9), (0.3, 0.7), (0.5, 0.5), (0.7, 0.3), (0.9, 0.1))]
GR_WEIGHTS = {"hard": 0.2, "hp": 0.5, "gr": 0.3}


def grid_label(w: dict) -> str:
    return f"H={w['hard']}_HP={w['hp']}"


# ------------------------------------------------------------------ the original's networks


def teacher_net(n_features: int = 10) -> nn.Sequential:
    lrelu = 0.01
    return nn.Sequential(
        nn.Linear(n_features, 256), nn.LeakyReLU(lrelu),
        nn.Linear(256, 256), nn.LeakyReLU(lrelu),
        nn.Linear(256, 128), nn.LeakyReLU(lrelu),
        nn.Linear(128, 64), nn.LeakyReLU(lrelu),
        nn.Linear(64, 1),
    )


def expert_teacher_net(n_features: int = 10) -> nn.Sequential:
    lrelu, p = 0.01, 0.3
    return nn.Sequential(
        nn.Linear(n_features, 256), nn.LeakyReLU(lrelu), nn.Dropout(p),
        nn.Linear(256, 256), nn.LeakyReLU(lrelu), nn.Dropout(p),
        nn.Linear(256, 128), nn.LeakyReLU(lrelu),
        nn.Linear(128, 128), nn.LeakyReLU(lrelu), nn.Dropout(p),
        nn.Linear(128, 64), nn.LeakyReLU(lrelu),
        nn.Linear(64, 1),
    )


def student_net(n_features: int = 10) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_features, 64), nn.ReLU(),
        nn.Linear(64, 64), nn.ReLU(),
        nn.Linear(64, 32), nn.ReLU(),
        nn.Linear(32, 1),
    )


# ------------------------------------------------------------------ the original's loops

mse_loss = nn.MSELoss()


def train_model(net, loader, optimizer, epochs):
    """A teacher, or a student from scratch: the hard loss alone."""
    net.train()
    for _ in range(epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = mse_loss(net(xb), yb)
            loss.backward()
            optimizer.step()
    return net


def train_student_distilled(student, teacher, loader, optimizer, epochs, weights):
    """hard·MSE(y_s, y) + hp·MSE(y_s, y_t); the teacher runs on every batch, no grad."""
    student.train()
    teacher.eval()
    for _ in range(epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            pred = student(xb)
            with torch.no_grad():
                target = teacher(xb)
            loss = weights["hard"] * mse_loss(pred, yb) + weights["hp"] * mse_loss(pred, target)
            loss.backward()
            optimizer.step()
    return student


def train_student_gradient_distillation(student, teacher, loader, optimizer, epochs, weights):
    """As above, plus gr·MSE(∇x L_s, ∇x L_t) with L the batch-mean MSE of each model."""
    student.train()
    teacher.eval()
    for _ in range(epochs):
        for xb, yb in loader:
            xb.requires_grad_(True)
            optimizer.zero_grad()
            with torch.no_grad():
                target = teacher(xb)
                mse_loss(target, yb)  # computed and unused in the original; kept for its cost
            teacher_loss = mse_loss(teacher(xb), yb)
            grad_t = torch.autograd.grad(
                teacher_loss, xb, grad_outputs=torch.ones_like(teacher_loss)
            )[0].detach()
            pred = student(xb)
            student_loss = mse_loss(pred, yb)
            grad_s = torch.autograd.grad(
                student_loss, xb, grad_outputs=torch.ones_like(student_loss), create_graph=True
            )[0]
            loss = (weights["hard"] * mse_loss(pred, yb)
                    + weights["hp"] * mse_loss(pred, target)
                    + weights["gr"] * mse_loss(grad_s, grad_t))
            loss.backward()
            optimizer.step()
    return student


def evaluate_mse(net, X, y) -> float:
    net.eval()
    with torch.no_grad():
        pred = net(X).cpu().numpy()
    return float(mean_squared_error(y.cpu().numpy(), pred))


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class OriginalProtocol:
    """The original's four parts, run in order on one in-memory state like the notebook's."""

    def __init__(self, data, runs: int, epochs_teacher: int, epochs_student: int,
                 device="cpu"):
        self.device = torch.device(device)
        self.X_train, self.y_train = data.X_train.to(device), data.y_train.to(device)
        self.X_test, self.y_test = data.X_test.to(device), data.y_test.to(device)
        self.n_features = self.X_train.shape[1]
        self.loader = DataLoader(TensorDataset(self.X_train, self.y_train),
                                 batch_size=BATCH_SIZE, shuffle=True)
        self.runs, self.epochs_teacher, self.epochs_student = runs, epochs_teacher, epochs_student
        self.initial_students: list[dict] = []
        self.expert_states: list[dict] = []
        self.mse: dict[str, list[float]] = {}
        self.seconds: dict[str, float] = {}

    def _student(self, run: int):
        net = student_net(self.n_features).to(self.device)
        net.load_state_dict(self.initial_students[run])
        return net, optim.Adam(net.parameters(), lr=LR_STUDENT)

    def _expert(self, run: int):
        net = expert_teacher_net(self.n_features).to(self.device)
        net.load_state_dict(self.expert_states[run])
        return net

    def _record(self, name: str, net) -> None:
        self.mse.setdefault(name, []).append(evaluate_mse(net, self.X_test, self.y_test))

    def standard_teacher(self) -> None:
        for i in range(self.runs):
            torch.manual_seed(i)
            np.random.seed(i)
            template = student_net(self.n_features).to(self.device)
            self.initial_students.append(
                {k: v.detach().clone() for k, v in template.state_dict().items()}
            )
            teacher = teacher_net(self.n_features).to(self.device)
            opt = optim.Adam(teacher.parameters(), lr=LR_TEACHER, weight_decay=WD_TEACHER)
            train_model(teacher, self.loader, opt, self.epochs_teacher)
            scratch, opt = self._student(i)
            train_model(scratch, self.loader, opt, self.epochs_student)
            distilled, opt = self._student(i)
            train_student_distilled(distilled, teacher, self.loader, opt,
                                    self.epochs_student, KD_WEIGHTS)
            self._record(TEACHER, teacher)
            self._record(SCRATCH, scratch)
            self._record(DISTILLED, distilled)

    def expert_teacher(self) -> None:
        for i in range(self.runs):
            torch.manual_seed(i)
            np.random.seed(i)
            expert = expert_teacher_net(self.n_features).to(self.device)
            opt = optim.Adam(expert.parameters(), lr=LR_TEACHER, weight_decay=WD_EXPERT)
            train_model(expert, self.loader, opt, self.epochs_teacher)
            student, opt = self._student(i)
            train_student_distilled(student, expert, self.loader, opt,
                                    self.epochs_student, KD_WEIGHTS)
            self._record(EXPERT, expert)
            self._record(DISTILLED_EXPERT, student)
            self.expert_states.append(
                {k: v.detach().clone() for k, v in expert.state_dict().items()}
            )

    def grid_search(self) -> None:
        for i in range(self.runs):
            expert = self._expert(i)
            for w in GRID_WEIGHTS:
                student, opt = self._student(i)
                train_student_distilled(student, expert, self.loader, opt,
                                        self.epochs_student, w)
                self._record(grid_label(w), student)

    def gradient_regularisation(self) -> None:
        for i in range(self.runs):
            expert = self._expert(i)
            student, opt = self._student(i)
            train_student_gradient_distillation(student, expert, self.loader, opt,
                                                self.epochs_student, GR_WEIGHTS)
            self._record(LGR, student)

    def run(self, stage: str) -> float:
        """Run one stage (in the original's order) and return its wall-clock seconds."""
        _sync(self.device)
        start = time.perf_counter()
        getattr(self, stage)()
        _sync(self.device)
        self.seconds[stage] = time.perf_counter() - start
        return self.seconds[stage]


# ------------------------------------------------------------------ both sides


def kdteach_experiment(runs: int, epochs_teacher: int, epochs_student: int, device="cpu"):
    from kdteach.protocol.experiment import Experiment
    from kdteach.protocol.settings import get_settings

    settings = get_settings("full", device=device, n_runs=runs,
                            epochs_teacher=epochs_teacher, epochs_student=epochs_student)
    exp = Experiment(settings, cache=False, progress=False)
    _ = exp.data  # built before the clock starts, as the original's data are
    return exp


def interleaving(overlap: bool) -> tuple:
    """The stages in groups: one side runs a whole group, then the other side runs it.
    Stage by stage, unless kdteach overlaps its work: its part 1 returns while its experts
    still train alongside, part 2 starts part 3 and part 3 part 4's students, so its four
    parts go together."""
    return (tuple(STAGES),) if overlap else tuple((stage,) for stage in STAGES)


def run_kdteach_stage(exp, stage: str, overlap: bool) -> None:
    """One kdteach stage as ``python -m kdteach reproduce`` runs it: with ``overlap``, part 1
    starts the expert teachers in a second thread, part 2 starts part 3 there and part 3
    starts part 4's students (:func:`kdteach.protocol.overlap.start_alongside`). The
    global RNG is left as it was, so the interleaved original baseline draws the same
    shuffles it would draw alone."""
    with torch.random.fork_rng(devices=[]):
        if overlap:
            start_alongside(exp, stage, STAGES)
        exp.run(stage)


def kdteach_mse(exp) -> dict[str, list[float]]:
    return {name: list(d["mse"]) for name, d in merge(exp.completed.values()).results.items()}


# ------------------------------------------------------------------ the rest of the machine

BUSY_WARNING_CORES = 0.10  # other processes using more than this share of one core
MIN_WARNING_WINDOW_S = 1.0


def read_proc_stat() -> str | None:
    try:
        return Path("/proc/stat").read_text()
    except OSError:  # not Linux
        return None


def machine_busy_seconds(stat_text: str | None) -> float | None:
    """CPU seconds all cores have spent busy since boot, from /proc/stat's ``cpu`` line:
    user, nice, system, irq, softirq and steal (time the hypervisor gave to other machines);
    guest time is already inside user and nice. ``None`` without /proc/stat."""
    if not stat_text:
        return None
    for line in stat_text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
            return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    return None


def own_cpu_seconds() -> float:
    """CPU seconds of this process (every thread) and of the children it has waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Snapshot(NamedTuple):
    wall: float
    machine_busy: float | None
    own: float


def snapshot(read_stat=read_proc_stat) -> Snapshot:
    return Snapshot(time.perf_counter(), machine_busy_seconds(read_stat()), own_cpu_seconds())


def other_load(before: Snapshot, after: Snapshot) -> dict:
    """How busy the rest of the machine was between two snapshots: the machine's busy CPU
    time minus this process's and its children's, as CPU seconds and as cores (seconds
    per wall-clock second)."""
    wall = after.wall - before.wall
    own = after.own - before.own
    load = {"wall_s": round(wall, 3), "own_cpu_s": round(own, 3),
            "other_cpu_s": None, "other_cores": None}
    if before.machine_busy is None or after.machine_busy is None or wall <= 0:
        return load
    other = max(0.0, after.machine_busy - before.machine_busy - own)
    load["other_cpu_s"] = round(other, 3)
    load["other_cores"] = round(other / wall, 3)
    return load


def load_warnings(loads: dict, threshold: float = BUSY_WARNING_CORES) -> list[str]:
    """One line for every timed part (``{label: other_load(...)}``) during which other
    processes used more than ``threshold`` of one core."""
    lines = []
    for label, load in loads.items():
        cores = load.get("other_cores")
        if cores is None:
            continue
        # /proc/stat counts in ticks of 10 ms: judge a part shorter than a second on a
        # second's worth, or one stray tick would read as a busy machine
        if load["other_cpu_s"] / max(load["wall_s"], MIN_WARNING_WINDOW_S) > threshold:
            lines.append(f"WARNING: other processes used {100 * cores:.0f} % of one core "
                         f"({load['other_cpu_s']:.1f} CPU s in {load['wall_s']:.1f} s) during "
                         f"{label}; that time is not a quiet machine's")
    return lines


class Timer:
    """Wall-clock seconds of a part (after synchronising CUDA on both ends) and the load
    the rest of the machine put on it."""

    def __init__(self, device="cpu", read_stat=read_proc_stat):
        self.device, self.read_stat = torch.device(device), read_stat

    def __call__(self, part) -> tuple[float, dict]:
        _sync(self.device)
        before = snapshot(self.read_stat)
        part()
        _sync(self.device)
        after = snapshot(self.read_stat)
        return after.wall - before.wall, other_load(before, after)


# ------------------------------------------------------------------ stages, in one process


def run_benchmark(runs: int = 5, epochs_teacher: int = 70, epochs_student: int = 60,
                  only: str = "both", device="cpu", verbose: bool = False,
                  timer: Timer | None = None, overlap: bool | None = None) -> dict:
    """Every stage, interleaved group by group (:func:`interleaving`): ``{"seconds": {side:
    {stage: s}}, "load": {side: {stage: other_load}}, "mse": {side: {model: [per run]}}}``.

    ``overlap`` (default: as ``python -m kdteach reproduce`` decides for this machine):
    kdteach trains its expert teachers alongside part 1, part 3 alongside part 2 and part 4's
    students while part 3 is waited for, with one intra-op thread for all its stages; its
    parts 2, 3 and 4 then count the wait for them."""
    from kdteach.__main__ import overlap_teachers
    from kdteach.core.data import make_dataset
    from kdteach.core.resources import intra_op_threads

    timer = timer or Timer(device)
    sides = ("original", "kdteach") if only == "both" else (only,)
    original = exp = None
    if "original" in sides:
        original = OriginalProtocol(make_dataset(), runs, epochs_teacher, epochs_student, device)
    if "kdteach" in sides:
        exp = kdteach_experiment(runs, epochs_teacher, epochs_student, device)
        if overlap is None:
            overlap = overlap_teachers(exp.settings)
    parts = {"original": lambda stage: original.run(stage),
             "kdteach": lambda stage: run_kdteach_stage(exp, stage, overlap)}
    threads = {"original": None, "kdteach": 1 if overlap else None}
    seconds = {side: {} for side in sides}
    load = {side: {} for side in sides}
    for group in interleaving(bool(overlap)):
        for side in sides:
            with intra_op_threads(threads[side]):
                for stage in group:
                    seconds[side][stage], load[side][stage] = timer(
                        functools.partial(parts[side], stage))
                    if verbose:  # as it happens: a group can take many minutes
                        print(f"  {side}, {stage}: {seconds[side][stage]:.1f} s (other "
                              f"processes: {_cores(load[side][stage])} of a core)", flush=True)
    mse = {}
    if original is not None:
        mse["original"] = original.mse
    if exp is not None:
        mse["kdteach"] = kdteach_mse(exp)
    return {"seconds": seconds, "load": load, "mse": mse, "overlap": bool(overlap)}


def _cores(load: dict) -> str:
    return "?" if load["other_cores"] is None else f"{load['other_cores']:.2f}"


# ------------------------------------------------------------------ whole processes


def whole_process_commands(runs: int, scale: float, epochs_teacher: int, epochs_student: int,
                           device: str, threads: int | None, folder: Path) -> dict:
    """The two fresh processes of a repeat: the original's loops (this script with
    ``--only original``) and ``python -m kdteach reproduce`` at the same runs and epochs."""
    original = [sys.executable, str(Path(__file__).resolve()), "--only", "original",
                "--runs", str(runs), "--scale", repr(scale), "--device", device,
                "--repeat", "1", "--no-whole-process", "--json", str(folder / "original.json")]
    if threads:
        original += ["--threads", str(threads)]
    kdteach = [sys.executable, "-m", "kdteach", "reproduce", "--profile", "full",
               "--runs", str(runs), "--epochs-teacher", str(epochs_teacher),
               "--epochs-student", str(epochs_student), "--device", device, "--no-cache",
               "--out", str(folder / "kdteach")]
    return {"original": original, "kdteach": kdteach}


def process_environment(threads: int | None) -> dict:
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # what torch.set_num_threads does in-process
    env.setdefault("MPLBACKEND", "Agg")
    return env


def run_process(command: list[str], env: dict) -> None:
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stdout.strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(command)} failed with exit code {done.returncode}:\n"
                           f"{tail}")


def stage_seconds_of(side: str, folder: Path) -> float | None:
    """The sum of the stage times a fresh process reported about itself."""
    try:
        if side == "original":
            seconds = json.loads((folder / "original.json").read_text())["seconds"]["original"]
        else:
            seconds = json.loads((folder / "kdteach" / "results.json").read_text())["timings_s"]
    except (OSError, KeyError, ValueError):
        return None
    return sum(seconds.values())


def run_whole_processes(sides, runs, scale, epochs_teacher, epochs_student, device, threads,
                        timer: Timer, verbose: bool = False) -> dict:
    """Each side once as a fresh process, interleaved: ``{"seconds": {side: s}, "load":
    {side: other_load}, "stage_seconds": {side: its own stage sum}}``."""
    out = {"seconds": {}, "load": {}, "stage_seconds": {}}
    env = process_environment(threads)
    with tempfile.TemporaryDirectory(prefix="kdteach-bench-") as tmp:
        folder = Path(tmp)
        commands = whole_process_commands(runs, scale, epochs_teacher, epochs_student, device,
                                          threads, folder)
        for side in sides:
            out["seconds"][side], out["load"][side] = timer(
                lambda side=side: run_process(commands[side], env))
            out["stage_seconds"][side] = stage_seconds_of(side, folder)
    if verbose:
        for side in sides:
            stages = out["stage_seconds"][side]
            beyond = "" if stages is None else (
                f", its stages {stages:.1f} s, beyond them {out['seconds'][side] - stages:.1f} s")
            print(f"  whole process, {side}: {out['seconds'][side]:.1f} s{beyond} "
                  f"(other processes: {_cores(out['load'][side])} of a core)", flush=True)
    return out


# ------------------------------------------------------------------ report


def spread(values: list[float]) -> dict:
    """Median, min and max of one figure over the repeats."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(repeats: list[dict]) -> dict:
    """Per side: each stage's, the stage sum's and the whole process's median and spread over
    the repeats; the ratios original/kdteach of the medians."""
    sides = list(repeats[0]["seconds"])
    stages = {side: {stage: spread([r["seconds"][side][stage] for r in repeats])
                     for stage in STAGES} for side in sides}
    total = {side: spread([sum(r["seconds"][side].values()) for r in repeats]) for side in sides}
    summary = {"stages": stages, "total": total, "whole_process": None, "ratios": None}
    if repeats[0].get("whole_process"):
        summary["whole_process"] = {
            side: spread([r["whole_process"]["seconds"][side] for r in repeats])
            for side in sides}
    if sides == ["original", "kdteach"]:
        # where kdteach overlaps its work, a stage's time may be only a wait: compare sums
        overlapped = repeats[0].get("overlap", False)
        ratios = {stage: None if overlapped else _ratio(stages, stage) for stage in STAGES}
        ratios["total"] = total["original"]["median"] / total["kdteach"]["median"]
        if summary["whole_process"]:
            whole = summary["whole_process"]
            ratios["whole_process"] = whole["original"]["median"] / whole["kdteach"]["median"]
        summary["ratios"] = ratios
    return summary


def _ratio(stages: dict, stage: str) -> float:
    return stages["original"][stage]["median"] / stages["kdteach"][stage]["median"]


def median_seconds(summary: dict) -> dict:
    """``{side: {stage: median seconds}}``."""
    return {side: {stage: s["median"] for stage, s in times.items()}
            for side, times in summary["stages"].items()}


def machine_info(cpuinfo: str | None = None) -> dict:
    from kdteach.core.resources import usable_cpus

    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
              if line.startswith("model name")]
    return {
        "cpu_model": models[0] if models else (platform.processor() or platform.machine()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable_cpus(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def scaled_epochs(scale: float) -> tuple[int, int]:
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"--scale must be a number > 0, got {scale!r}")
    return (max(1, round(ORIGINAL_EPOCHS_TEACHER * scale)),
            max(1, round(ORIGINAL_EPOCHS_STUDENT * scale)))


def _fmt(x, spec):
    width = int(spec.split(".")[0])
    return f"{'-':>{width}}" if x is None else format(x, spec)


def _cell(s: dict | None, width: int = 24) -> str:
    if s is None:
        return f"{'-':>{width}}"
    return f"{s['median']:.1f} ({s['min']:.1f}–{s['max']:.1f})".rjust(width)


def format_times(summary: dict) -> str:
    """The table: each stage, the stage sum and the whole process, as median (min–max)."""
    stages, total = summary["stages"], summary["total"]
    whole = summary["whole_process"] or {}
    ratios = summary["ratios"] or {}
    lines = [f"{'seconds, median (min–max)':<26}{'original loop':>24}{'kdteach':>24}"
             f"{'original/kdteach':>18}"]
    rows = [(stage, {side: t[stage] for side, t in stages.items()}, ratios.get(stage))
            for stage in STAGES]
    rows.append(("sum of the stages", total, ratios.get("total")))
    if whole:
        rows.append(("whole process", whole, ratios.get("whole_process")))
    for name, cells, ratio in rows:
        lines.append(f"{name:<26}{_cell(cells.get('original'))}{_cell(cells.get('kdteach'))}"
                     f"{_fmt(ratio, '18.1f')}")
    return "\n".join(lines)


def format_mse(mse: dict) -> str:
    orig, kd = mse.get("original", {}), mse.get("kdteach", {})
    names = list(dict.fromkeys([*orig, *kd]))
    lines = [f"{'model (mean test MSE)':<34}{'original loop':>11}{'kdteach':>11}"]
    for name in names:
        s = float(np.mean(orig[name])) if name in orig else None
        k = float(np.mean(kd[name])) if name in kd else None
        lines.append(f"{name:<34}{_fmt(s, '11.4f')}{_fmt(k, '11.4f')}")
    return "\n".join(lines)


def step_rates():
    """``benchmarks/step_rates.py``, the script beside this one, as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_step_rates",
                                                  Path(__file__).with_name("step_rates.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def protocol_floor(rates, runs: int, epochs_teacher: int, epochs_student: int) -> dict:
    """The arithmetic floor (``rates.arithmetic_floor``, ``rates`` the module of
    :func:`step_rates`) of the protocol at these settings on this machine's usable cores."""
    from kdteach.core.resources import usable_cpus

    epochs = rates.protocol_network_epochs(runs, epochs_teacher, epochs_student,
                                           len(GRID_WEIGHTS))
    return rates.arithmetic_floor(epochs, rates.full_n_train(), usable_cpus(), BATCH_SIZE)


def check_device(device: str, cuda_available=None) -> None:
    cuda_available = cuda_available or torch.cuda.is_available
    if device == "cuda" and not cuda_available():
        raise ValueError("--device cuda: this PyTorch sees no CUDA GPU "
                         "(torch.cuda.is_available() is False); run with --device cpu, or on "
                         "a machine with a GPU and a CUDA build of PyTorch")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=0.1,
                   help="fraction of the original's 700/600 epochs (default 0.1: 70/60)")
    p.add_argument("--runs", type=int, default=5, help="paired runs (default 5, the original's)")
    p.add_argument("--only", choices=("both", "original", "kdteach"), default="both")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads for both sides, OMP_NUM_THREADS for the fresh "
                        "processes (default: torch's choice)")
    p.add_argument("--repeat", type=int, default=3,
                   help="interleaved repeats of the whole comparison; the table shows the "
                        "median and the spread (default 3)")
    p.add_argument("--whole-process", action=argparse.BooleanOptionalAction, default=True,
                   help="also time each side as a fresh process in every repeat (default: yes)")
    p.add_argument("--floor", action=argparse.BooleanOptionalAction, default=True,
                   help="also time torch.bmm at each network's shapes and print the "
                        "protocol's arithmetic floor beside the original loop (CPU only; "
                        "default: yes)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = p.parse_args(argv)
    if args.runs < 1 or args.repeat < 1:
        p.error("--runs and --repeat must be >= 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    if args.runs < 2 and args.only != "original":
        p.error("kdteach's stages end with paired t-tests, which need --runs >= 2")
    try:
        args.epochs_teacher, args.epochs_student = scaled_epochs(args.scale)
        check_device(args.device)
    except ValueError as e:
        p.error(str(e))
    return args


def thread_note(args, info: dict, default_threads: int) -> str:
    fresh = (f"OMP_NUM_THREADS={args.threads}" if args.threads else
             f"torch's default ({default_threads})")
    note = (f"threads: the original loop {info['threads']} intra-op "
            f"(interop {info['interop_threads']}); kdteach as `python -m kdteach reproduce` "
            f"runs: {kdteach_threads_note(args.device)}")
    if args.whole_process:
        note += f"; the fresh processes {fresh}"
    return note


def kdteach_threads_note(device: str = "cpu") -> str:
    from kdteach.__main__ import overlap_teachers
    from kdteach.protocol.settings import get_settings

    if overlap_teachers(get_settings("full", device=device)):
        return ("one intra-op thread, expert teachers trained alongside part 1, part 3 "
                "alongside part 2, part 4's students while part 3 is waited for")
    return f"{torch.get_num_threads()} intra-op thread(s), one stage after another"


def main(argv=None, read_stat=read_proc_stat) -> dict:
    args = parse_args(argv)
    default_threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    timer = Timer(args.device, read_stat)
    sides = ("original", "kdteach") if args.only == "both" else (args.only,)
    info = machine_info()
    load_before = load_average()
    print(f"original protocol benchmark: {args.runs} runs, teacher {args.epochs_teacher} epochs, "
          f"students {args.epochs_student} epochs (scale {args.scale:g}), "
          f"device {args.device}, sides: {args.only}, {args.repeat} repeat(s), "
          f"whole processes: {'yes' if args.whole_process else 'no'}")
    print(f"machine: {info['cpu_model']}, {info['cpu_count']} CPUs ({info['cpus_usable']} "
          f"usable){', GPU ' + info['gpu'] if info['gpu'] else ''}; torch {info['torch']}, "
          f"Python {info['python']}")
    print(thread_note(args, info, default_threads))
    print(f"load average (1/5/15 min) before: {load_before}", flush=True)
    repeats, all_loads = [], {}
    for r in range(args.repeat):
        print(f"repeat {r + 1}/{args.repeat}", flush=True)
        figures = run_benchmark(args.runs, args.epochs_teacher, args.epochs_student,
                                args.only, args.device, verbose=True, timer=timer)
        repeat = {"seconds": figures["seconds"], "load": figures["load"],
                  "overlap": figures["overlap"]}
        loads = {f"repeat {r + 1}, {side}'s {stage}": load
                 for side, stages in figures["load"].items() for stage, load in stages.items()}
        if args.whole_process:
            whole = run_whole_processes(sides, args.runs, args.scale, args.epochs_teacher,
                                        args.epochs_student, args.device, args.threads, timer,
                                        verbose=True)
            repeat["whole_process"] = whole
            loads.update({f"repeat {r + 1}, {side}'s whole process": load
                          for side, load in whole["load"].items()})
        repeats.append(repeat)
        all_loads.update(loads)
        print(f"  load average {load_average()}", flush=True)
    load_after = load_average()
    summary = summarise(repeats)
    print()
    print(f"median of {args.repeat} interleaved repeat(s), with the spread (min–max):")
    print(format_times(summary))
    if repeats[0]["overlap"]:
        print("(kdteach's parts 2, 3 and 4 count only the wait for what trained alongside the "
              "part before: compare the sums, not the stages)")
    if summary["ratios"]:
        ratios = summary["ratios"]
        text = f"original/kdteach: sum of the stages {ratios['total']:.1f}×"
        if "whole_process" in ratios:
            text += f", whole process {ratios['whole_process']:.1f}×"
        print(text + " (ratios of the medians)")
    floor = None
    if args.floor and args.device == "cpu" and "original" in sides:
        rates = step_rates()  # loaded once, for the floor and its text
        floor = protocol_floor(rates, args.runs, args.epochs_teacher, args.epochs_student)
        print(rates.format_floor(floor, summary["total"]["original"]["median"]))
    print()
    print(format_mse(figures["mse"]))
    print()
    print(thread_note(args, info, default_threads))
    print(f"load average (1/5/15 min) before {load_before}, after {load_after}")
    measured = {label: load for label, load in all_loads.items()
                if load["other_cores"] is not None}
    if measured:
        label = max(measured, key=lambda k: measured[k]["other_cores"])
        print(f"busiest timed part: other processes used "
              f"{100 * measured[label]['other_cores']:.0f} % of one core during {label}")
    else:
        print("how busy the rest of the machine was is unknown here (no /proc/stat)")
    warnings = load_warnings(all_loads)
    for line in warnings:
        print(line)
    if warnings:
        print(f"WARNING: {len(warnings)} timed part(s) shared the machine with other processes "
              "(more than {:.0f} % of one core); measure again on a quiet machine".format(
                  100 * BUSY_WARNING_CORES))
    out = {
        "settings": {"runs": args.runs, "scale": args.scale,
                     "epochs_teacher": args.epochs_teacher,
                     "epochs_student": args.epochs_student, "batch_size": BATCH_SIZE,
                     "device": args.device, "only": args.only, "repeat": args.repeat,
                     "whole_process": args.whole_process, "threads": args.threads},
        "machine": {**info, "fresh_process_threads": args.threads or default_threads,
                    "load_before": load_before, "load_after": load_after},
        "seconds": median_seconds(summary),
        "summary": summary,
        "floor": floor,
        "mse": figures["mse"],
        "repeats": repeats,
        "load_warnings": warnings,
    }
    if args.json:
        path = Path(args.json)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(out, indent=2))
        os.replace(tmp, path)
        print(f"wrote {args.json}")
    return out


if __name__ == "__main__":
    main()
