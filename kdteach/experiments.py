"""The seed's four experiment stages, run on the stacked engine with a checkpoint cache.

>>> exp = Experiment(get_settings("quick"))          # doctest: +SKIP
>>> part1 = exp.standard_teacher()                   # doctest: +SKIP
>>> part1.summary                                    # doctest: +SKIP

The paired protocol (NOTES.md): run ``i`` calls ``torch.manual_seed(i)``, builds the
student's initial weights, then the teacher, exactly in the seed's order; every student
of run ``i`` — scratch, distilled, each grid point, L_GR — starts from that one initial
state, so the t-tests compare like with like. Every model keeps its own shuffle order.

Each stage runs on its own: the teachers and earlier stages it needs are loaded from
the cache, or trained again (with progress bars) when missing.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .cache import as_cache
from .config import Settings, get_settings
from .data import Dataset, dataset_for
from .losses import DistillationLoss
from .models import MLP, ExpertTeacherNet, StudentNet, TeacherNet
from .stats import PairedTest, paired_test, summary_table
from .train import evaluate, train_many

TEACHER = "Teacher"
SCRATCH = "Student (Scratch)"
DISTILLED = "Student (Distilled)"
EXPERT = "Expert Teacher"
DISTILLED_EXPERT = "Student (Distilled from Expert)"
LGR = "Student (Distilled with L_GR)"

STAGES = ("standard_teacher", "expert_teacher", "grid_search", "gradient_regularisation")
STAGE_TITLES = {
    "standard_teacher": "Part 1: a standard teacher",
    "expert_teacher": "Part 2: an expert teacher",
    "grid_search": "Part 3: grid search over the hard/L_HP weights",
    "gradient_regularisation": "Part 4: gradient regularisation (L_GR)",
}
TEACHER_KINDS = {"teacher": TEACHER, "expert": EXPERT}


def grid_name(weights: dict) -> str:
    """The seed's label of a grid point, e.g. ``H=0.1_HP=0.9``."""
    return f"H={weights['hard']:g}_HP={weights['hp']:g}"


def shuffle_seed(run: int, role: str) -> int:
    """The shuffle seed of one model: fixed by its run and its role, nothing else."""
    return zlib.crc32(f"run{run}/{role}".encode())


def initial_student(run: int, n_features: int = 10) -> StudentNet:
    """Run ``run``'s student initial weights: ``torch.manual_seed(run)``, then a StudentNet."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run)
        return StudentNet(n_features)


def initial_teacher(kind: str, run: int, n_features: int = 10) -> MLP:
    """A teacher's initial weights in the seed's order: for the standard teacher the
    student template is drawn first; the expert is drawn right after the seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run)
        if kind == "teacher":
            StudentNet(n_features)
            return TeacherNet(n_features)
        if kind == "expert":
            return ExpertTeacherNet(n_features)
    raise ValueError(f"unknown teacher kind {kind!r}; valid: {', '.join(TEACHER_KINDS)}")


@dataclass
class StageResult:
    """What a stage produced: per-run rows, the seed's summary, tests, models, histories."""

    stage: str
    settings: Settings
    results: dict  # {model: {"mse": [per run], "r2": [per run]}}, the seed's shape
    summary: pd.DataFrame
    tests: dict  # {description: PairedTest}
    models: dict = field(default_factory=dict)  # {model: [trained net per run]}
    history: pd.DataFrame | None = None  # model, run, epoch, term, loss
    weights: dict = field(default_factory=dict)  # {model: loss weights}
    seconds: float = 0.0
    best: str | None = None  # the grid's best point

    @property
    def title(self) -> str:
        return STAGE_TITLES[self.stage]

    @property
    def runs(self) -> pd.DataFrame:
        """Tidy: one row per (model, run) with its loss weights, test MSE and R²."""
        rows = []
        for name, data in self.results.items():
            w = self.weights.get(name, {})
            for run, (mse, r2) in enumerate(zip(data["mse"], data["r2"])):
                rows.append(
                    {
                        "stage": self.stage,
                        "model": name,
                        "run": run,
                        "hard": w.get("hard", np.nan),
                        "hp": w.get("hp", np.nan),
                        "gr": w.get("gr", np.nan),
                        "mse": mse,
                        "r2": r2,
                    }
                )
        return pd.DataFrame(rows)

    def report(self) -> str:
        """The stage's table and tests as text, like the seed prints them."""
        lines = [f"=== {self.title} ({self.settings.n_runs} runs) ===", self.summary.to_string()]
        if self.best:
            lines.append(f"Best weights: {self.best}")
        lines += [t.describe() for t in self.tests.values()]
        return "\n".join(lines)


def _student_payload(models: dict, history: pd.DataFrame) -> dict:
    return {
        "states": {
            name: [{k: v.detach().cpu() for k, v in net.state_dict().items()} for net in nets]
            for name, nets in models.items()
        },
        "history": {c: history[c].tolist() for c in history.columns},
    }


class Experiment:
    """The seed's protocol for one set of settings, its teachers and stages memoised.

    ``cache``: ``True`` (default folder), ``False`` (off), a folder, or a ``Cache``.
    """

    def __init__(self, settings: Settings | None = None, cache=True, progress: bool = True):
        self.settings = settings or get_settings()
        self.device = self.settings.torch_device
        self.cache = as_cache(cache)
        self.progress = progress
        self._data: Dataset | None = None
        self._teachers: dict = {}
        self._stages: dict = {}

    # -- building blocks ---------------------------------------------------

    @property
    def data(self) -> Dataset:
        if self._data is None:
            self._data = dataset_for(self.settings)
        return self._data

    def _data_key(self) -> dict:
        s = self.settings
        return {
            "n_samples": s.n_samples, "n_features": s.n_features, "noise": s.noise,
            "data_seed": s.data_seed, "test_size": s.test_size, "split_seed": s.split_seed,
            "batch_size": s.batch_size, "device": self.device.type,
        }

    def teacher_key(self, kind: str, run: int) -> dict:
        s = self.settings
        wd = s.weight_decay_teacher if kind == "teacher" else s.weight_decay_expert
        return {
            "what": f"{kind}-teacher", "run": run, "epochs": s.epochs_teacher,
            "lr": s.lr_teacher, "weight_decay": wd, **self._data_key(),
        }

    def teachers(self, kind: str) -> list[MLP]:
        """The trained teachers (``"teacher"`` or ``"expert"``) of every run: from the cache,
        else the missing runs are trained together and stored."""
        if kind in self._teachers:
            return self._teachers[kind]
        s, n_feat = self.settings, self.settings.n_features
        nets: list = [None] * s.n_runs
        for run in range(s.n_runs):
            payload = self.cache.load(f"{kind}-run{run}", self.teacher_key(kind, run))
            if payload is not None:
                net = initial_teacher(kind, run, n_feat).to(self.device)
                net.load_state_dict(payload["state"])
                nets[run] = net.eval()
        missing = [run for run in range(s.n_runs) if nets[run] is None]
        if missing:
            wd = s.weight_decay_teacher if kind == "teacher" else s.weight_decay_expert
            trained, _ = train_many(
                [initial_teacher(kind, run, n_feat).to(self.device) for run in missing],
                self.data.X_train,
                self.data.y_train,
                num_epochs=s.epochs_teacher,
                lr=s.lr_teacher,
                weight_decay=wd,
                batch_size=s.batch_size,
                seeds=[shuffle_seed(run, kind) for run in missing],
                labels=[f"run {run + 1}: {TEACHER_KINDS[kind]}" for run in missing],
                progress=self.progress,
                desc=f"{TEACHER_KINDS[kind]} x{len(missing)} runs",
            )
            for run, net in zip(missing, trained):
                state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
                self.cache.save(f"{kind}-run{run}", self.teacher_key(kind, run), {"state": state})
                nets[run] = net
        self._teachers[kind] = nets
        return nets

    def _train_students(self, stage: str, jobs: list[tuple]) -> tuple[dict, pd.DataFrame]:
        """Train every (name, loss, teacher kind) of ``jobs`` for every run, all at once.

        Returns ``{name: [net per run]}`` and the long-form history. Cached per stage.
        """
        s = self.settings
        kinds = sorted({kind for _, _, kind in jobs if kind})
        key = {
            "what": f"students-{stage}",
            "runs": s.n_runs,
            "epochs": s.epochs_student,
            "lr": s.lr_student,
            "weight_decay": s.weight_decay_student,
            "jobs": [(name, loss.weights, kind) for name, loss, kind in jobs],
            "teachers": {k: [self.teacher_key(k, r) for r in range(s.n_runs)] for k in kinds},
            **self._data_key(),
        }
        payload = self.cache.load(f"students-{stage}", key)
        if payload is None:
            teachers = {kind: self.teachers(kind) for kind in kinds}
            nets, losses, teacher_list, seeds, labels = [], [], [], [], []
            for run in range(s.n_runs):
                for name, loss, kind in jobs:
                    nets.append(initial_student(run, s.n_features).to(self.device))
                    losses.append(loss)
                    teacher_list.append(teachers[kind][run] if kind else None)
                    seeds.append(shuffle_seed(run, name))
                    labels.append(f"run {run + 1}: {name}")
            trained, history = train_many(
                nets,
                self.data.X_train,
                self.data.y_train,
                losses,
                teacher_list,
                num_epochs=s.epochs_student,
                lr=s.lr_student,
                weight_decay=s.weight_decay_student,
                batch_size=s.batch_size,
                seeds=seeds,
                labels=labels,
                progress=self.progress,
                desc=f"{len(jobs)} student(s) x{s.n_runs} runs",
            )
            models = {name: trained[j :: len(jobs)] for j, (name, _, _) in enumerate(jobs)}
            frame = history.to_frame()
            run_name = frame.pop("model").str.extract(r"run (\d+): (.*)")
            frame.insert(0, "run", run_name[0].astype(int) - 1)
            frame.insert(0, "model", run_name[1])
            self.cache.save(f"students-{stage}", key, _student_payload(models, frame))
            return models, frame
        models = {}
        for name, states in payload["states"].items():
            nets = []
            for state in states:
                net = StudentNet(s.n_features).to(self.device)
                net.load_state_dict(state)
                nets.append(net.eval())
            models[name] = nets
        return models, pd.DataFrame(payload["history"])

    def _evaluate(self, models: dict) -> dict:
        d = self.data
        results = {}
        for name, nets in models.items():
            scores = [evaluate(net, d.X_test, d.y_test) for net in nets]
            results[name] = {"mse": [x["mse"] for x in scores], "r2": [x["r2"] for x in scores]}
        return results

    def _stage(self, name: str, build) -> StageResult:
        if name not in self._stages:
            start = time.perf_counter()
            result = build()
            result.seconds = time.perf_counter() - start
            self._stages[name] = result
        return self._stages[name]

    # -- the four stages ---------------------------------------------------

    def standard_teacher(self) -> StageResult:
        """Part 1: a teacher, a student from scratch, a student distilled (0.3/0.7)."""

        def build():
            s = self.settings
            kd = DistillationLoss.from_weights(s.kd_weights)
            teachers = self.teachers("teacher")
            students, history = self._train_students(
                "standard_teacher",
                [(SCRATCH, DistillationLoss(hard=1.0), None), (DISTILLED, kd, "teacher")],
            )
            models = {TEACHER: teachers, **students}
            results = self._evaluate(models)
            return StageResult(
                stage="standard_teacher",
                settings=s,
                results=results,
                summary=summary_table(results),
                tests={"distilled vs scratch": paired_test(results, DISTILLED, SCRATCH, "less")},
                models=models,
                history=history,
                weights={SCRATCH: {"hard": 1.0}, DISTILLED: kd.weights},
            )

        return self._stage("standard_teacher", build)

    def expert_teacher(self) -> StageResult:
        """Part 2: an expert teacher (dropout, deeper) and a student distilled from it."""

        def build():
            s = self.settings
            part1 = self.standard_teacher()
            kd = DistillationLoss.from_weights(s.kd_weights)
            experts = self.teachers("expert")
            students, history = self._train_students(
                "expert_teacher", [(DISTILLED_EXPERT, kd, "expert")]
            )
            own = self._evaluate({EXPERT: experts, **students})
            r1 = part1.results
            results = {
                TEACHER: r1[TEACHER],
                EXPERT: own[EXPERT],
                SCRATCH: r1[SCRATCH],
                DISTILLED: r1[DISTILLED],
                DISTILLED_EXPERT: own[DISTILLED_EXPERT],
            }
            return StageResult(
                stage="expert_teacher",
                settings=s,
                results=results,
                summary=summary_table(results),
                tests={
                    "expert teacher vs teacher": paired_test(results, EXPERT, TEACHER, "less"),
                    "distilled vs scratch": paired_test(results, DISTILLED, SCRATCH, "less"),
                    "distilled from expert vs scratch": paired_test(
                        results, DISTILLED_EXPERT, SCRATCH, "less"
                    ),
                },
                models={EXPERT: experts, **students},
                history=history,
                weights={DISTILLED_EXPERT: kd.weights, DISTILLED: kd.weights},
            )

        return self._stage("expert_teacher", build)

    def grid_search(self) -> StageResult:
        """Part 3: students distilled from each run's expert with hard = h, hp = 1 - h."""

        def build():
            s = self.settings
            jobs = [
                (grid_name(w), DistillationLoss.from_weights(w), "expert")
                for w in s.grid_weights
            ]
            students, history = self._train_students("grid_search", jobs)
            results = self._evaluate(students)
            summary = summary_table(results, sort=True, label="Weights")
            best = str(summary.iloc[0]["Weights"])
            worst = str(summary.iloc[-1]["Weights"])
            tests = {}
            if best != worst:
                tests["best vs worst grid point"] = paired_test(results, best, worst, "less")
            return StageResult(
                stage="grid_search",
                settings=s,
                results=results,
                summary=summary,
                tests=tests,
                models=students,
                history=history,
                weights={name: loss.weights for name, loss, _ in jobs},
                best=best,
            )

        return self._stage("grid_search", build)

    def gradient_regularisation(self) -> StageResult:
        """Part 4: a student that also matches the expert's input gradients (L_GR)."""

        def build():
            s = self.settings
            part2, grid = self.expert_teacher(), self.grid_search()
            lgr = DistillationLoss.from_weights(s.gr_weights)
            students, history = self._train_students(
                "gradient_regularisation", [(LGR, lgr, "expert")]
            )
            own = self._evaluate(students)
            results = {
                SCRATCH: part2.results[SCRATCH],
                DISTILLED_EXPERT: part2.results[DISTILLED_EXPERT],
                grid.best: grid.results[grid.best],
                LGR: own[LGR],
                EXPERT: part2.results[EXPERT],
            }
            return StageResult(
                stage="gradient_regularisation",
                settings=s,
                results=results,
                summary=summary_table(results, sort=True),
                tests={
                    "L_GR vs best L_HP": paired_test(results, LGR, grid.best, "two-sided"),
                    "L_GR vs scratch": paired_test(results, LGR, SCRATCH, "less"),
                },
                models=students,
                history=history,
                weights={LGR: lgr.weights, grid.best: grid.weights[grid.best]},
                best=grid.best,
            )

        return self._stage("gradient_regularisation", build)

    def run(self, stage: str) -> StageResult:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; valid stages: {', '.join(STAGES)}")
        return getattr(self, stage)()

    def reproduce(self, stages=STAGES) -> dict[str, StageResult]:
        """Every stage in order, with a progress bar over the stages."""
        out = {}
        bar = tqdm(stages, desc="stages", disable=not self.progress)
        for stage in bar:
            bar.set_postfix_str(stage)
            out[stage] = self.run(stage)
        return out


def all_results(stages: dict[str, StageResult]) -> dict:
    """Every model's per-run MSE and R² across stages, under the seed's names."""
    merged = {}
    for result in stages.values():
        for name, data in result.results.items():
            merged.setdefault(name, data)
    return merged


def all_tests(stages: dict[str, StageResult]) -> dict[str, PairedTest]:
    merged = {}
    for result in stages.values():
        merged.update(result.tests)
    return merged
