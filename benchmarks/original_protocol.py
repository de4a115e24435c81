"""Time the original notebook's protocol two ways in one process: its own loops, and kdteach.

The baseline below re-implements what the original notebook does, step for step, so that
its cost can be measured on the same machine, in the same process, with the same thread
settings as kdteach:

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

kdteach runs the same stages with ``Experiment(settings, cache=False, progress=False)``.
Stages are interleaved (the original's part k, then kdteach's part k) so that a change in the
machine's load during the run hits both sides alike. Test MSEs are printed only to show
that both sides learned; at a reduced ``--scale`` they are not the original's numbers.

    python benchmarks/original_protocol.py                 # 1/10 of the original's epochs, 5 runs
    python benchmarks/original_protocol.py --scale 1       # the original's 700/600 epochs
    python benchmarks/original_protocol.py --only original --json original.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time

import numpy as np
import torch
from sklearn.metrics import mean_squared_error
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

from kdteach.experiments import (  # the original's model names and stage order
    DISTILLED,
    DISTILLED_EXPERT,
    EXPERT,
    LGR,
    SCRATCH,
    STAGES,
    TEACHER,
)

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
    from kdteach.config import get_settings
    from kdteach.experiments import Experiment

    settings = get_settings("full", device=device, n_runs=runs,
                            epochs_teacher=epochs_teacher, epochs_student=epochs_student)
    exp = Experiment(settings, cache=False, progress=False)
    _ = exp.data  # built before the clock starts, as the original's data are
    return exp


def run_kdteach_stage(exp, stage: str) -> float:
    """One kdteach stage; the global RNG is left as it was, so the interleaved original
    baseline draws the same shuffles it would draw alone."""
    with torch.random.fork_rng(devices=[]):
        return exp.run(stage).seconds


def kdteach_mse(exp) -> dict[str, list[float]]:
    from kdteach.experiments import all_results

    return {name: list(d["mse"]) for name, d in all_results(exp._stages).items()}


def run_benchmark(runs: int = 5, epochs_teacher: int = 70, epochs_student: int = 60,
                  only: str = "both", device="cpu", verbose: bool = False) -> dict:
    """Every stage, interleaved: ``{"seconds": {side: {stage: s}}, "mse": {side: {...}}}``."""
    from kdteach.data import make_dataset

    sides = ("original", "kdteach") if only == "both" else (only,)
    original = exp = None
    if "original" in sides:
        original = OriginalProtocol(make_dataset(), runs, epochs_teacher, epochs_student, device)
    if "kdteach" in sides:
        exp = kdteach_experiment(runs, epochs_teacher, epochs_student, device)
    seconds = {side: {} for side in sides}
    for stage in STAGES:
        if original is not None:
            seconds["original"][stage] = original.run(stage)
        if exp is not None:
            seconds["kdteach"][stage] = run_kdteach_stage(exp, stage)
        if verbose:
            done = ", ".join(f"{side} {seconds[side][stage]:.1f} s" for side in sides)
            print(f"  {stage}: {done} (load average {load_average()})", flush=True)
    mse = {}
    if original is not None:
        mse["original"] = original.mse
    if exp is not None:
        mse["kdteach"] = kdteach_mse(exp)
    return {"seconds": seconds, "mse": mse}


# ------------------------------------------------------------------ report


def fastest(repeats: list[dict]) -> dict:
    """Each side's and stage's minimum over repeats of ``{side: {stage: seconds}}``."""
    return {side: {stage: min(r[side][stage] for r in repeats) for stage in times}
            for side, times in repeats[0].items()}


def machine_info() -> dict:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "processor": platform.processor() or platform.machine(),
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


def format_times(seconds: dict) -> str:
    orig, kd = seconds.get("original", {}), seconds.get("kdteach", {})
    lines = [f"{'stage':<26}{'original loop s':>13}{'kdteach s':>12}{'original/kdteach':>14}"]
    rows = [(stage, orig.get(stage), kd.get(stage)) for stage in STAGES]
    rows.append(("total",
                 sum(orig.values()) if orig else None,
                 sum(kd.values()) if kd else None))
    for name, s, k in rows:
        ratio = s / k if s is not None and k else None
        lines.append(f"{name:<26}{_fmt(s, '13.1f')}{_fmt(k, '12.1f')}{_fmt(ratio, '14.1f')}")
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


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=0.1,
                   help="fraction of the original's 700/600 epochs (default 0.1: 70/60)")
    p.add_argument("--runs", type=int, default=5, help="paired runs (default 5, the original's)")
    p.add_argument("--only", choices=("both", "original", "kdteach"), default="both")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads for both sides (default: torch's choice)")
    p.add_argument("--repeat", type=int, default=1,
                   help="run the whole comparison N times; the table shows each stage's "
                        "fastest time (the one least disturbed by other load); default 1")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = p.parse_args(argv)
    if args.runs < 1 or args.repeat < 1:
        p.error("--runs and --repeat must be >= 1")
    if args.runs < 2 and args.only != "original":
        p.error("kdteach's stages end with paired t-tests, which need --runs >= 2")
    try:
        args.epochs_teacher, args.epochs_student = scaled_epochs(args.scale)
    except ValueError as e:
        p.error(str(e))
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = load_average()
    print(f"original protocol benchmark: {args.runs} runs, teacher {args.epochs_teacher} epochs, "
          f"students {args.epochs_student} epochs (scale {args.scale:g}), "
          f"device {args.device}, sides: {args.only}", flush=True)
    repeats = []
    for r in range(args.repeat):
        figures = run_benchmark(args.runs, args.epochs_teacher, args.epochs_student,
                                args.only, args.device, verbose=True)
        repeats.append(figures["seconds"])
        if args.repeat > 1:
            total = {side: round(sum(t.values()), 1) for side, t in figures["seconds"].items()}
            print(f"repeat {r + 1}/{args.repeat}: total seconds {total}, "
                  f"load average {load_average()}", flush=True)
    figures["seconds"] = fastest(repeats)
    load_after = load_average()
    info = machine_info()
    print()
    if args.repeat > 1:
        print(f"fastest of {args.repeat} repeats, per side and stage:")
    print(format_times(figures["seconds"]))
    print()
    print(format_mse(figures["mse"]))
    print()
    print(f"torch {info['torch']}, threads {info['threads']} "
          f"(interop {info['interop_threads']}), CPUs {info['cpu_count']} "
          f"(usable {info['cpus_usable']}), python {info['python']}")
    print(f"load average (1/5/15 min) before {load_before}, after {load_after}")
    out = {
        "settings": {"runs": args.runs, "scale": args.scale,
                     "epochs_teacher": args.epochs_teacher,
                     "epochs_student": args.epochs_student,
                     "batch_size": BATCH_SIZE, "device": args.device, "only": args.only},
        "machine": {**info, "load_before": load_before, "load_after": load_after},
        **figures,
        "repeats": repeats,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
        print(f"wrote {args.json}")
    return out


if __name__ == "__main__":
    main()
