"""The original notebook's four stages, and the lessons' added stages, on the stacked
engine with a checkpoint cache.

>>> exp = Experiment(get_settings("quick"))          # doctest: +SKIP
>>> part1 = exp.standard_teacher()                   # doctest: +SKIP
>>> part1.summary                                    # doctest: +SKIP

The paired protocol: run ``i`` calls ``torch.manual_seed(i)``, builds the student's
initial weights, then the teacher, in the original notebook's order; every student of
run ``i`` (scratch, distilled, each grid point, L_GR, and the lessons' students) starts
from that one initial state, so the t-tests compare like with like. Every model keeps its
own shuffle order, fixed by its run and its name.

Each stage runs on its own: the teachers and earlier stages it needs are loaded from the
cache, or trained again (with progress bars) when missing. Every training records the
test MSE after each epoch beside its loss terms (term ``"heldout"`` of the history): a
diagnostic that is only looked at, never used to choose anything.
"""

from __future__ import annotations

import threading
import time
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from kdteach.core.data import Dataset, dataset_for, fresh_inputs, validation_split
from kdteach.core.losses import DistillationLoss
from kdteach.core.models import MLP, ExpertTeacherNet, RegularisedTeacherNet, StudentNet, TeacherNet
from kdteach.core.resources import intra_op_threads
from kdteach.core.stats import PairedTest, paired_test, summary_table
from kdteach.core.train import HELDOUT, evaluate, train, train_many
from kdteach.lesson import slider_grid
from kdteach.protocol.cache import as_cache
from kdteach.protocol.names import (
    DISTILLED,
    DISTILLED_EXPERT,
    DISTILLED_REGULARISED,
    EXPERT,
    FEAT,
    FIT,
    FRESH,
    HP_ONLY,
    JAC,
    LGR,
    REGULARISED,
    SCRATCH,
    STOPPED,
    TEACHER,
    THREE_WAY,
    grid_name,
    run_label,
)
from kdteach.protocol.settings import Settings, get_settings

__all__ = [
    "DISTILLED", "DISTILLED_EXPERT", "DISTILLED_REGULARISED", "EXPERT", "FRESH", "HP_ONLY",
    "LGR", "REGULARISED", "SCRATCH", "TEACHER", "grid_name",
]

STAGES = ("standard_teacher", "expert_teacher", "grid_search", "gradient_regularisation")
LESSON_STAGES = ("fresh_inputs_teacher", "fresh_inputs_expert", "expert_ablation",
                 "model_selection")
FURTHER_STAGES = ("jacobian_matching", "feature_distillation", "three_way_search_jac",
                  "early_stopping")
STAGE_TITLES = {
    "standard_teacher": "Part 1: a standard teacher",
    "expert_teacher": "Part 2: an expert teacher",
    "grid_search": "Part 3: grid search over the hard/L_HP weights",
    "gradient_regularisation": "Part 4: gradient regularisation (L_GR)",
    "fresh_inputs_teacher": "Distilling on fresh inputs (standard teacher)",
    "fresh_inputs_expert": "Distilling on fresh inputs (expert teacher)",
    "expert_ablation": "Depth or regularisation? The expert taken apart",
    "model_selection": "Choosing the grid's weights on a validation split",
    "jacobian_matching": "Matching the expert's input derivatives (L_JAC)",
    "feature_distillation": "Matching a hidden layer through an adapter (L_FEAT)",
    "three_way_search_jac": "A three-way weight search over (hard, hp, jac)",
    "three_way_search_gr": "A three-way weight search over (hard, hp, gr)",
    "early_stopping": "Early stopping on the validation split",
}


@dataclass(frozen=True)
class TeacherRecipe:
    """How a kind of teacher is built and trained."""

    name: str
    net: type
    weight_decay: str  # the Settings field holding its weight decay
    shuffle_role: str  # whose batches it sees (the ablation sees the standard teacher's)


TEACHER_RECIPES = {
    "teacher": TeacherRecipe(TEACHER, TeacherNet, "weight_decay_teacher", "teacher"),
    "expert": TeacherRecipe(EXPERT, ExpertTeacherNet, "weight_decay_expert", "expert"),
    "regularised": TeacherRecipe(REGULARISED, RegularisedTeacherNet, "weight_decay_expert",
                                 "teacher"),
}
TEACHER_KINDS = {kind: recipe.name for kind, recipe in TEACHER_RECIPES.items()}


def shuffle_seed(run: int, role: str) -> int:
    """The shuffle seed of one model: fixed by its run and its role, nothing else."""
    return zlib.crc32(f"run{run}/{role}".encode())


# Initial weights come from torch's global generator: one thread at a time may seed and draw.
_GLOBAL_RNG = threading.Lock()


def initial_student(run: int, n_features: int = 10) -> StudentNet:
    """Run ``run``'s student initial weights: ``torch.manual_seed(run)``, then a StudentNet."""
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(run)
        return StudentNet(n_features)


def check_teacher_kind(kind: str) -> None:
    if kind not in TEACHER_RECIPES:
        raise ValueError(f"unknown teacher kind {kind!r}; valid: {', '.join(TEACHER_RECIPES)}")


def initial_teacher(kind: str, run: int, n_features: int = 10) -> MLP:
    """A teacher's initial weights in the original's order: for the standard teacher (and
    its regularised twin) the student template is drawn first; the expert is drawn right
    after ``torch.manual_seed(run)``."""
    check_teacher_kind(kind)
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(run)
        if kind != "expert":
            StudentNet(n_features)
        return TEACHER_RECIPES[kind].net(n_features)


@dataclass(frozen=True)
class StudentJob:
    """One student of a stage: its name, its loss and the kind of teacher it learns from."""

    name: str
    loss: DistillationLoss
    teacher: str | None = None
    shuffle_as: str | None = None  # another student's name, to see exactly its batches


@dataclass
class StageResult:
    """What a stage produced: per-run rows, the summary, tests, models, histories."""

    stage: str
    settings: Settings
    results: dict  # {model: {"mse": [per run], "r2": [per run]}}, the original's shape
    summary: pd.DataFrame
    tests: dict  # {description: PairedTest}
    models: dict = field(default_factory=dict)  # {model: [trained net per run]}
    history: pd.DataFrame | None = None  # model, run (from 1), epoch, term, loss
    weights: dict = field(default_factory=dict)  # {model: loss weights}
    seconds: float = 0.0
    best: str | None = None  # the grid point with the lowest mean *test* MSE (optimistic)
    chosen: str | None = None  # the grid point chosen on the validation split
    validation: pd.DataFrame | None = None  # model_selection: validation and test MSE

    @property
    def title(self) -> str:
        return STAGE_TITLES[self.stage]

    @property
    def runs(self) -> pd.DataFrame:
        """Tidy: one row per (model, run) with its loss weights, test MSE and R²; runs
        are numbered from 1."""
        rows = []
        for name, data in self.results.items():
            w = self.weights.get(name, {})
            for run, (mse, r2) in enumerate(zip(data["mse"], data["r2"]), start=1):
                rows.append({"stage": self.stage, "model": name, "run": run,
                             **{t: w.get(t, np.nan) for t in ("hard", "hp", "gr")},
                             **{t: w[t] for t in ("jac", "feat") if t in w},
                             "mse": mse, "r2": r2})
        return pd.DataFrame(rows)

    def per_run(self, names=None) -> pd.DataFrame:
        """Test MSE with one row per run (numbered from 1) and one column per model."""
        table = self.runs.pivot(index="run", columns="model", values="mse")
        names = list(names) if names is not None else list(self.results)
        return table[names]

    def report(self) -> str:
        """The stage's table and comparisons as text."""
        lines = [f"=== {self.title} ({self.settings.n_runs} runs) ===", self.summary.to_string()]
        if self.best:
            lines.append(f"Lowest mean test MSE (chosen on the test set, optimistic): {self.best}")
        if self.chosen:
            lines.append(f"Chosen on the validation split: {self.chosen}")
        lines += [t.describe() for t in self.tests.values()]
        return "\n".join(lines)


def _state(net) -> dict:
    return {k: v.detach().cpu() for k, v in net.state_dict().items()}


def _history_frame(history, keys: list[tuple[str, int]]) -> pd.DataFrame:
    """The long history with ``model`` and ``run`` (from 1) as data, from the
    (name, 0-based run) of every stacked network in order."""
    frame = history.to_frame()
    by_label = dict(zip(history.labels, keys))
    model_run = frame.pop("model").map(by_label)
    frame.insert(0, "run", [run + 1 for _, run in model_run])
    frame.insert(0, "model", [name for name, _ in model_run])
    return frame


class Cancelled(Exception):
    """A training in a second thread was asked to stop (the work it was for failed)."""


class _Background:
    """Run ``work(stop)`` in a daemon thread; ``join()`` waits and re-raises its exception;
    ``cancel()`` sets the ``stop`` event (a training checks it after each epoch) and waits."""

    def __init__(self, work):
        self.error: BaseException | None = None
        self.result = None
        self.stop = threading.Event()

        def target():
            try:
                self.result = work(self.stop)
            except BaseException as exc:  # noqa: BLE001 -- handed to the joining thread
                self.error = exc

        self.thread = threading.Thread(target=target, name="kdteach-alongside", daemon=True)
        self.thread.start()

    def join(self):
        """Wait (any thread may), re-raise the work's error or return its result."""
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.result

    def cancel(self) -> None:
        self.stop.set()
        self.thread.join()


def _stop_when(event: threading.Event | None):
    """An ``on_epoch`` callback that ends a training once ``event`` is set."""
    if event is None:
        return None

    def check(epoch, history):
        if event.is_set():
            raise Cancelled(f"stopped after epoch {epoch}")

    return check


class Experiment:
    """The original protocol for one set of settings, its teachers and stages memoised.

    ``cache``: ``True`` (default folder), ``False`` (off), a folder, or a ``Cache``.
    """

    def __init__(self, settings: Settings | None = None, cache=True, progress: bool = True):
        self.settings = settings or get_settings()
        self.device = self.settings.torch_device
        self.cache = as_cache(cache)
        self.progress = progress
        self._data: Dataset | None = None
        self._teachers: dict = {}
        self._teachers_pending: dict = {}  # kind → _Background getting them
        self._students_pending: dict = {}  # stage → _Background training its students
        self._teacher_histories: dict = {}
        self._stages: dict = {}
        self.best_epochs: dict = {}  # {stage: {student: [best epoch per run]}}
        self._slider_grids: dict = {}  # {(grid name, run): prepared payload}

    # -- building blocks ---------------------------------------------------

    @property
    def data(self) -> Dataset:
        if self._data is None:
            self._data = dataset_for(self.settings)
        return self._data

    @property
    def heldout(self) -> tuple:
        """The set whose MSE every training records per epoch: the test set (looked at,
        never used to choose)."""
        return self.data.X_test, self.data.y_test

    def validation(self) -> tuple:
        """``(X_fit, y_fit, X_val, y_val)``: the training set split for choosing weights."""
        s = self.settings
        return validation_split(self.data, s.val_size, s.val_seed)

    def fresh_inputs(self) -> torch.Tensor:
        """Unlabelled inputs from the data's input distribution (``fresh_factor`` per
        training input), scaled like the training inputs."""
        s = self.settings
        return fresh_inputs(self.data, s.fresh_factor * len(self.data.X_train), s.fresh_seed)

    def _data_key(self) -> dict:
        s = self.settings
        return {
            "n_samples": s.n_samples, "n_features": s.n_features, "noise": s.noise,
            "data_seed": s.data_seed, "test_size": s.test_size, "split_seed": s.split_seed,
            "batch_size": s.batch_size, "device": self.device.type, "heldout": "test",
        }

    def teacher_key(self, kind: str, run: int) -> dict:
        s = self.settings
        recipe = TEACHER_RECIPES[kind]
        return {
            "what": f"{kind}-teacher", "run": run, "epochs": s.epochs_teacher,
            "lr": s.lr_teacher, "weight_decay": getattr(s, recipe.weight_decay),
            "shuffle": recipe.shuffle_role, **self._data_key(),
        }

    def teachers(self, kind: str) -> list[MLP]:
        """The trained teachers (``"teacher"``, ``"expert"`` or ``"regularised"``) of every
        run: from the cache, else the missing runs are trained together and stored. If
        :meth:`teachers_in_background` is getting them, waits for it."""
        pending = self._teachers_pending.get(kind)
        if pending is not None:  # any thread may wait; the teachers are then memoised
            pending.join()
            self._teachers_pending.pop(kind, None)
        return self._teachers_now(kind)

    def teachers_in_background(self, kind: str) -> None:
        """Start getting the teachers of ``kind`` (from the cache, or trained) in a second
        thread, so that other work can go on meanwhile; ``teachers(kind)`` waits for them and
        re-raises any error. Each model is trained as it would be in this thread."""
        if kind in self._teachers or kind in self._teachers_pending:
            return
        check_teacher_kind(kind)
        self.data  # noqa: B018 -- built once, before a second thread reads it
        self._teachers_pending[kind] = _Background(lambda stop: self._teachers_now(kind, stop))

    def students_in_background(self, stage: str, jobs: list[StudentJob]) -> None:
        """Start training the students of ``stage`` (``jobs``, on the training set, as the
        stage itself would) in a second thread; the stage's own call waits for them."""
        if stage not in self._stages and stage not in self._students_pending:
            self.data  # noqa: B018 -- built once, before a second thread reads it
            self._students_pending[stage] = _Background(
                lambda stop: self._train_students_now(stage, jobs, stop=stop))

    def _cancel_background(self) -> None:
        """Stop every training started in a second thread and wait for it."""
        for pending in (self._students_pending, self._teachers_pending):
            while pending:
                pending.popitem()[1].cancel()

    def _teachers_now(self, kind: str, stop: threading.Event | None = None) -> list[MLP]:
        if kind in self._teachers:
            return self._teachers[kind]
        s, n_feat = self.settings, self.settings.n_features
        check_teacher_kind(kind)
        recipe = TEACHER_RECIPES[kind]
        nets: list = [None] * s.n_runs
        frames: list = [None] * s.n_runs
        for run in range(s.n_runs):
            payload = self.cache.load(f"{kind}-run{run}", self.teacher_key(kind, run))
            if payload is not None:
                net = initial_teacher(kind, run, n_feat).to(self.device)
                net.load_state_dict(payload["state"])
                nets[run] = net.eval()
                frames[run] = pd.DataFrame(payload["history"])
        missing = [run for run in range(s.n_runs) if nets[run] is None]
        if missing:
            labels = [f"{run_label(run)}: {recipe.name}" for run in missing]
            trained, history = train_many(
                [initial_teacher(kind, run, n_feat).to(self.device) for run in missing],
                self.data.X_train,
                self.data.y_train,
                num_epochs=s.epochs_teacher,
                lr=s.lr_teacher,
                weight_decay=getattr(s, recipe.weight_decay),
                batch_size=s.batch_size,
                seeds=[shuffle_seed(run, recipe.shuffle_role) for run in missing],
                labels=labels,
                heldout=self.heldout,
                progress=self.progress,
                desc=f"{recipe.name} x{len(missing)} runs",
                on_epoch=_stop_when(stop),
            )
            frame = _history_frame(history, [(recipe.name, run) for run in missing])
            for run, net in zip(missing, trained):
                own = frame[frame["run"] == run + 1].reset_index(drop=True)
                payload = {"state": _state(net),
                           "history": {c: own[c].tolist() for c in own.columns}}
                self.cache.save(f"{kind}-run{run}", self.teacher_key(kind, run), payload)
                nets[run], frames[run] = net, own
        self._teachers[kind] = nets
        self._teacher_histories[kind] = pd.concat(frames, ignore_index=True)
        return nets

    def teacher_history(self, kind: str) -> pd.DataFrame:
        """The teachers' per-epoch training loss and test MSE, every run."""
        self.teachers(kind)
        return self._teacher_histories[kind]

    def _train_students(self, stage: str, jobs: list[StudentJob], X=None, y=None,
                        epochs: int | None = None, stopping: tuple | None = None
                        ) -> tuple[dict, pd.DataFrame]:
        pending = self._students_pending.pop(stage, None)
        if pending is not None:  # started by students_in_background, with the same jobs
            return pending.join()
        return self._train_students_now(stage, jobs, X, y, epochs, stopping)

    def _train_students_now(self, stage: str, jobs: list[StudentJob], X=None, y=None,
                            epochs: int | None = None, stopping: tuple | None = None,
                            stop: threading.Event | None = None
                            ) -> tuple[dict, pd.DataFrame]:
        """Train every job of ``jobs`` for every run, all at once, on ``(X, y)`` (default:
        the training set) for ``epochs`` (default: the profile's student epochs).

        ``stopping=((X_val, y_val), patience)`` stops each model early on its validation
        MSE and restores its best epoch's weights; the best epochs (1-based, per job and
        run) are kept in ``self.best_epochs[stage]``.

        Returns ``{name: [net per run]}`` and the long-form history. Cached per stage.
        """
        s = self.settings
        X = self.data.X_train if X is None else X
        y = self.data.y_train if y is None else y
        epochs = s.epochs_student if epochs is None else epochs
        kinds = sorted({job.teacher for job in jobs if job.teacher})
        key = {
            "what": f"students-{stage}",
            "runs": s.n_runs,
            "epochs": epochs,
            "lr": s.lr_student,
            "weight_decay": s.weight_decay_student,
            "jobs": [(job.name, job.loss.weights, job.teacher)
                     + ((job.shuffle_as,) if job.shuffle_as else ()) for job in jobs],
            "teachers": {k: [self.teacher_key(k, r) for r in range(s.n_runs)] for k in kinds},
            "inputs": [len(X), float(X.sum()), float(y.sum())],
            **self._data_key(),
        }
        if stopping is not None:
            (X_val, y_val), patience = stopping
            key["stopping"] = [len(X_val), float(X_val.sum()), float(y_val.sum()), patience]
        payload = self.cache.load(f"students-{stage}", key)
        if payload is None:
            teachers = {kind: self.teachers(kind) for kind in kinds}
            nets, losses, teacher_list, seeds, labels, keys = [], [], [], [], [], []
            for run in range(s.n_runs):
                for job in jobs:
                    nets.append(initial_student(run, s.n_features).to(self.device))
                    losses.append(job.loss)
                    teacher_list.append(teachers[job.teacher][run] if job.teacher else None)
                    seeds.append(shuffle_seed(run, job.shuffle_as or job.name))
                    labels.append(f"{run_label(run)}: {job.name}")
                    keys.append((job.name, run))
            trained, history = train_many(
                nets, X, y, losses, teacher_list,
                num_epochs=epochs,
                lr=s.lr_student,
                weight_decay=s.weight_decay_student,
                batch_size=s.batch_size,
                seeds=seeds,
                labels=labels,
                heldout=self.heldout,
                progress=self.progress,
                desc=f"{len(jobs)} student(s) x{s.n_runs} runs",
                on_epoch=_stop_when(stop),
                **({} if stopping is None else {"val": stopping[0], "patience": stopping[1]}),
            )
            models = {job.name: trained[j :: len(jobs)] for j, job in enumerate(jobs)}
            frame = _history_frame(history, keys)
            if stopping is not None:
                best = [int(b) for b in history.best_epoch]
                self.best_epochs[stage] = {job.name: best[j :: len(jobs)]
                                           for j, job in enumerate(jobs)}
            self.cache.save(f"students-{stage}", key, {
                "best_epochs": self.best_epochs.get(stage, {}),
                "states": {name: [_state(net) for net in nets] for name, nets in models.items()},
                "history": {c: frame[c].tolist() for c in frame.columns},
            })
            return models, frame
        if payload.get("best_epochs"):
            self.best_epochs[stage] = payload["best_epochs"]
        models = {name: [self._student_from_state(state) for state in states]
                  for name, states in payload["states"].items()}
        return models, pd.DataFrame(payload["history"])

    def _student_from_state(self, state: dict) -> StudentNet:
        """A student holding saved weights, on the experiment's device, in eval mode."""
        net = StudentNet(self.settings.n_features).to(self.device)
        net.load_state_dict(state)
        return net.eval()

    def _evaluate(self, models: dict, X=None, y=None) -> dict:
        X = self.data.X_test if X is None else X
        y = self.data.y_test if y is None else y
        results = {}
        for name, nets in models.items():
            scores = [evaluate(net, X, y) for net in nets]
            results[name] = {"mse": [x["mse"] for x in scores], "r2": [x["r2"] for x in scores]}
        return results

    def _stage(self, name: str, build) -> StageResult:
        if name not in self._stages:
            start = time.perf_counter()
            result = build()
            result.seconds = time.perf_counter() - start
            self._stages[name] = result
        return self._stages[name]

    def _result(self, stage, results, tests, models, history=None, weights=None,
                sort=False, label="Model", **extra) -> StageResult:
        return StageResult(stage=stage, settings=self.settings, results=results,
                           summary=summary_table(results, sort=sort, label=label), tests=tests,
                           models=models, history=history, weights=weights or {}, **extra)

    def fit_summary(self, models: dict) -> pd.DataFrame:
        """Mean MSE on the training set and on the test set, in evaluation mode (dropout
        off), of ``{name: [net per run]}``: how well each model fits the data it saw
        against data it never saw, beside the noise floor σ²."""
        d, rows = self.data, []
        for name, nets in models.items():
            train_mse = np.mean([evaluate(net, d.X_train, d.y_train)["mse"] for net in nets])
            test_mse = np.mean([evaluate(net, d.X_test, d.y_test)["mse"] for net in nets])
            rows.append({"model": name, "training MSE": train_mse, "test MSE": test_mse,
                         "training MSE / σ²": train_mse / self.settings.noise ** 2})
        return pd.DataFrame(rows).set_index("model")

    # -- the original's four stages ------------------------------------------

    def kd_job(self, name: str, teacher: str) -> StudentJob:
        return StudentJob(name, DistillationLoss.from_weights(self.settings.kd_weights), teacher)

    def standard_teacher(self) -> StageResult:
        """Part 1: a teacher, a student from scratch, a student distilled (0.3/0.7)."""

        def build():
            jobs = [StudentJob(SCRATCH, DistillationLoss(hard=1.0)),
                    self.kd_job(DISTILLED, "teacher")]
            students, history = self._train_students("standard_teacher", jobs)
            models = {TEACHER: self.teachers("teacher"), **students}
            results = self._evaluate(models)
            tests = {"distilled vs scratch": paired_test(results, DISTILLED, SCRATCH, "less")}
            return self._result("standard_teacher", results, tests, models, history,
                                {job.name: job.loss.weights for job in jobs})

        return self._stage("standard_teacher", build)

    def expert_teacher(self) -> StageResult:
        """Part 2: an expert teacher (deeper, dropout, more weight decay) and a student
        distilled from it."""

        def build():
            part1 = self.standard_teacher()
            job = self.kd_job(DISTILLED_EXPERT, "expert")
            experts = self.teachers("expert")
            students, history = self._train_students("expert_teacher", [job])
            own = self._evaluate({EXPERT: experts, **students})
            r1 = part1.results
            results = {TEACHER: r1[TEACHER], EXPERT: own[EXPERT], SCRATCH: r1[SCRATCH],
                       DISTILLED: r1[DISTILLED], DISTILLED_EXPERT: own[DISTILLED_EXPERT]}
            tests = {
                "expert teacher vs teacher": paired_test(results, EXPERT, TEACHER, "less"),
                "distilled vs scratch": paired_test(results, DISTILLED, SCRATCH, "less"),
                "distilled from expert vs scratch": paired_test(
                    results, DISTILLED_EXPERT, SCRATCH, "less"),
            }
            return self._result("expert_teacher", results, tests, {EXPERT: experts, **students},
                                history, {DISTILLED_EXPERT: job.loss.weights,
                                          DISTILLED: job.loss.weights})

        return self._stage("expert_teacher", build)

    def grid_jobs(self) -> list[StudentJob]:
        return [StudentJob(grid_name(w), DistillationLoss.from_weights(w), "expert")
                for w in self.settings.grid_weights]

    def grid_search(self) -> StageResult:
        """Part 3: students distilled from each run's expert with hard = h, hp = 1 − h.

        ``best`` is the original's choice, made on the test set (optimistic); the honest
        choice on a validation split is :meth:`model_selection`.
        """

        def build():
            jobs = self.grid_jobs()
            students, history = self._train_students("grid_search", jobs)
            results = self._evaluate(students)
            summary = summary_table(results, sort=True, label="Weights")
            best, worst = str(summary.iloc[0]["Weights"]), str(summary.iloc[-1]["Weights"])
            tests = {}
            if best != worst:
                tests["best vs worst grid point"] = paired_test(results, best, worst, "less",
                                                                descriptive=True)
            return self._result("grid_search", results, tests, students, history,
                                {job.name: job.loss.weights for job in jobs}, sort=True,
                                label="Weights", best=best)

        return self._stage("grid_search", build)

    def lgr_jobs(self) -> list[StudentJob]:
        return [StudentJob(LGR, DistillationLoss.from_weights(self.settings.gr_weights),
                           "expert")]

    def gradient_regularisation(self) -> StageResult:
        """Part 4: a student that also matches the expert's input gradients (L_GR)."""

        def build():
            part2, grid = self.expert_teacher(), self.grid_search()
            (job,) = self.lgr_jobs()
            students, history = self._train_students("gradient_regularisation", [job])
            own = self._evaluate(students)
            results = {
                SCRATCH: part2.results[SCRATCH],
                DISTILLED_EXPERT: part2.results[DISTILLED_EXPERT],
                grid.best: grid.results[grid.best],
                LGR: own[LGR],
                EXPERT: part2.results[EXPERT],
            }
            tests = {
                # the original's comparison; its partner was chosen on the test set
                "L_GR vs best L_HP": paired_test(results, LGR, grid.best, "two-sided",
                                                 descriptive=True),
                # 0.2/0.5 act like 0.29/0.71 under Adam: the matched L_HP student is 0.3/0.7
                "L_GR vs matched L_HP (0.3/0.7)": paired_test(results, LGR, DISTILLED_EXPERT,
                                                              "two-sided"),
                "L_GR vs scratch": paired_test(results, LGR, SCRATCH, "less"),
            }
            return self._result("gradient_regularisation", results, tests, students, history,
                                {LGR: job.loss.weights, grid.best: grid.weights[grid.best],
                                 DISTILLED_EXPERT: part2.weights[DISTILLED_EXPERT]},
                                sort=True, best=grid.best)

        return self._stage("gradient_regularisation", build)

    # -- the lessons' stages -------------------------------------------------

    def fresh_inputs_stage(self, kind: str) -> StageResult:
        """Students that learn from the teacher's outputs alone (no labels): on the
        training inputs, and on the training inputs plus fresh unlabelled inputs, with the
        same number of optimiser steps. Paired with the stage's scratch student."""
        if kind not in ("teacher", "expert"):
            raise ValueError(f"kind must be 'teacher' or 'expert', got {kind!r}")
        stage = f"fresh_inputs_{kind}"

        def build():
            s = self.settings
            base = self.standard_teacher() if kind == "teacher" else self.expert_teacher()
            only = StudentJob(HP_ONLY[kind], DistillationLoss(hp=1.0), kind)
            fresh = StudentJob(FRESH[kind], DistillationLoss(hp=1.0), kind)
            X_all = torch.cat([self.data.X_train, self.fresh_inputs()])
            # pure L_HP never reads y: the fresh inputs carry no label, and get none
            y_unused = torch.zeros(len(X_all), 1, device=X_all.device)
            steps_epochs = max(1, round(s.epochs_student * len(self.data.X_train) / len(X_all)))
            m1, h1 = self._train_students(f"{stage}-train", [only])
            m2, h2 = self._train_students(f"{stage}-fresh", [fresh], X_all, y_unused,
                                          epochs=steps_epochs)
            models = {**m1, **m2}
            own = self._evaluate(models)
            teacher = TEACHER_KINDS[kind]
            distilled = DISTILLED if kind == "teacher" else DISTILLED_EXPERT
            results = {teacher: base.results[teacher], SCRATCH: base.results[SCRATCH],
                       distilled: base.results[distilled], **own}
            tests = {
                "fresh inputs vs training inputs only": paired_test(
                    results, FRESH[kind], HP_ONLY[kind], "less"),
                "fresh inputs vs scratch": paired_test(results, FRESH[kind], SCRATCH, "less"),
                "fresh inputs vs 0.3/0.7 distilled": paired_test(
                    results, FRESH[kind], distilled, "two-sided"),
                # added after the first full run showed students beside their teachers
                "fresh inputs vs the teacher": paired_test(
                    results, FRESH[kind], teacher, "two-sided", descriptive=True),
            }
            return self._result(stage, results, tests, models, pd.concat([h1, h2]),
                                {only.name: only.loss.weights, fresh.name: fresh.loss.weights})

        return self._stage(stage, build)

    def expert_ablation(self) -> StageResult:
        """The standard teacher's layers trained with the expert's dropout and weight decay
        (same initial weights and batches as the standard teacher), and a student
        distilled from it: is the expert better because it is deeper or regularised?"""

        def build():
            part2 = self.expert_teacher()
            regularised = self.teachers("regularised")
            job = self.kd_job(DISTILLED_REGULARISED, "regularised")
            students, history = self._train_students("expert_ablation", [job])
            own = self._evaluate({REGULARISED: regularised, **students})
            r2 = part2.results
            results = {TEACHER: r2[TEACHER], REGULARISED: own[REGULARISED], EXPERT: r2[EXPERT],
                       SCRATCH: r2[SCRATCH], DISTILLED: r2[DISTILLED],
                       DISTILLED_REGULARISED: own[DISTILLED_REGULARISED],
                       DISTILLED_EXPERT: r2[DISTILLED_EXPERT]}
            tests = {
                "regularised teacher vs teacher": paired_test(results, REGULARISED, TEACHER),
                "regularised teacher vs expert": paired_test(results, REGULARISED, EXPERT),
                "distilled from regularised vs from teacher": paired_test(
                    results, DISTILLED_REGULARISED, DISTILLED),
                "distilled from regularised vs from expert": paired_test(
                    results, DISTILLED_REGULARISED, DISTILLED_EXPERT),
            }
            return self._result("expert_ablation", results, tests,
                                {REGULARISED: regularised, **students}, history,
                                {DISTILLED_REGULARISED: job.loss.weights})

        return self._stage("expert_ablation", build)

    def model_selection(self) -> StageResult:
        """The grid's weights chosen honestly: every grid point is trained again on the fit
        part of the training set and scored on its validation part; the point with the
        lowest mean validation MSE is chosen, and its part-3 student's test MSE (trained on
        the whole training set, like every other student) is reported."""

        def build():
            grid, part4 = self.grid_search(), self.gradient_regularisation()
            X_fit, y_fit, X_val, y_val = self.validation()
            fit_models, history = self._train_students("model_selection", self.grid_jobs(),
                                                       X_fit, y_fit)
            val = self._evaluate(fit_models, X_val, y_val)
            table = pd.DataFrame({
                "Weights": list(val),
                "Mean validation MSE": [np.mean(v["mse"]) for v in val.values()],
                "Mean test MSE": [np.mean(grid.results[n]["mse"]) for n in val],
            })
            chosen = str(table.loc[table["Mean validation MSE"].idxmin(), "Weights"])
            table = table.sort_values("Mean validation MSE").reset_index(drop=True)
            results = {chosen: grid.results[chosen],
                       DISTILLED_EXPERT: part4.results[DISTILLED_EXPERT],
                       LGR: part4.results[LGR], SCRATCH: part4.results[SCRATCH]}
            tests = {
                "validation-chosen vs scratch": paired_test(results, chosen, SCRATCH, "less"),
                "L_GR vs validation-chosen L_HP": paired_test(results, LGR, chosen, "two-sided"),
            }
            return self._result("model_selection", results, tests, fit_models, history,
                                {chosen: grid.weights[chosen]}, chosen=chosen,
                                best=grid.best, validation=table)

        return self._stage("model_selection", build)

    # -- going further (notebook 05) ------------------------------------------------

    def _against_chosen(self, stage: str, job: StudentJob, controls: dict) -> StageResult:
        """Train ``job`` from the expert and compare it, paired, with the L_HP student
        chosen on validation and the named ``controls`` ({test name: model})."""
        selection = self.model_selection()
        part4 = self.gradient_regularisation()
        students, history = self._train_students(stage, [job])
        own = self._evaluate(students)
        chosen = selection.chosen
        results = {job.name: own[job.name], chosen: selection.results[chosen],
                   **{m: part4.results[m] for m in controls.values() if m in part4.results},
                   SCRATCH: part4.results[SCRATCH]}
        tests = {f"{job.name} vs validation-chosen L_HP": paired_test(results, job.name, chosen),
                 **{name: paired_test(results, job.name, m) for name, m in controls.items()}}
        return self._result(stage, results, tests, students, history,
                            {job.name: job.loss.weights, chosen: selection.weights[chosen]},
                            sort=True, chosen=chosen)

    def jacobian_matching(self) -> StageResult:
        """A student that matches the expert's output Jacobian ∂y/∂x (Sobolev training)
        with the L_GR student's weights, hard 0.2 / hp 0.5 / jac 0.3."""
        job = StudentJob(JAC, DistillationLoss(hard=0.2, hp=0.5, jac=0.3), "expert")
        return self._stage("jacobian_matching", lambda: self._against_chosen(
            "jacobian_matching", job,
            {"L_JAC vs L_GR": LGR, "L_JAC vs matched L_HP (0.3/0.7)": DISTILLED_EXPERT}))

    def feature_distillation(self) -> StageResult:
        """A student whose last hidden layer, through a learned adapter, matches the
        expert's (FitNets), with the original's named weights hard 0.3 / hp 0.4 / feat 0.3."""
        job = StudentJob(FEAT, DistillationLoss.from_weights(self.settings.feat_weights),
                         "expert")
        return self._stage("feature_distillation", lambda: self._against_chosen(
            "feature_distillation", job, {"L_FEAT vs the original's 0.3/0.7": DISTILLED_EXPERT}))

    def three_way_points(self, term: str = "jac") -> list[dict]:
        """Every (hard, hp, ``term``) with weights in steps of 0.1 summing to 1: 66 points."""
        points = []
        for i in range(11):
            for j in range(11 - i):
                points.append({"hard": i / 10, "hp": j / 10, term: round(1 - i / 10 - j / 10, 10)})
        return points

    def three_way_search(self, term: str = "jac") -> StageResult:
        """The three-way weight search the original found too slow: every point of
        :meth:`three_way_points` trained from the expert on the fit part of the training
        set, chosen on the validation part; the chosen point is then trained on the whole
        training set and compared, paired, with the L_HP student chosen on validation."""
        stage = f"three_way_search_{term}"

        def name(w):
            return f"H={w['hard']:g}_HP={w['hp']:g}_{term.upper()}={w[term]:g}"

        def build():
            selection = self.model_selection()
            points = self.three_way_points(term)
            X_fit, y_fit, X_val, y_val = self.validation()
            jobs = [StudentJob(name(w), DistillationLoss.from_weights(w), "expert")
                    for w in points]
            fit_models, _ = self._train_students(stage + "-fit", jobs, X_fit, y_fit)
            val = self._evaluate(fit_models, X_val, y_val)
            table = pd.DataFrame([{**w, "Weights": name(w),
                                   "Mean validation MSE": float(np.mean(val[name(w)]["mse"]))}
                                  for w in points])
            best = table.loc[table["Mean validation MSE"].idxmin()]
            weights = {t: float(best[t]) for t in ("hard", "hp", term)}
            job = StudentJob(THREE_WAY, DistillationLoss.from_weights(weights), "expert")
            students, history = self._train_students(stage, [job])
            own = self._evaluate(students)
            chosen = selection.chosen
            results = {THREE_WAY: own[THREE_WAY], chosen: selection.results[chosen],
                       SCRATCH: selection.results[SCRATCH]}
            tests = {"3-way vs validation-chosen L_HP": paired_test(results, THREE_WAY, chosen),
                     "3-way vs scratch": paired_test(results, THREE_WAY, SCRATCH, "less")}
            return self._result(stage, results, tests, students, history,
                                {THREE_WAY: job.loss.weights}, sort=True,
                                chosen=str(best["Weights"]), validation=table)

        return self._stage(stage, build)

    def early_stopping(self) -> StageResult:
        """The scratch student and the 0.3/0.7 expert student, trained on the fit part of
        the training set twice from the same start and batches: for all epochs, and with
        early stopping on the validation part (``patience`` epochs), best epoch restored."""

        def build():
            s = self.settings
            selection = self.model_selection()
            X_fit, y_fit, X_val, y_val = self.validation()
            kd = DistillationLoss.from_weights(s.kd_weights)
            plain = [StudentJob(FIT["scratch"], DistillationLoss(hard=1.0)),
                     StudentJob(FIT["distilled"], kd, "expert")]
            # the stopped students see exactly the plain ones' batches
            stopped = [StudentJob(STOPPED["scratch"], DistillationLoss(hard=1.0),
                                  shuffle_as=FIT["scratch"]),
                       StudentJob(STOPPED["distilled"], kd, "expert", FIT["distilled"])]
            m1, h1 = self._train_students("early_stopping-plain", plain, X_fit, y_fit)
            m2, h2 = self._train_students("early_stopping", stopped, X_fit, y_fit,
                                          stopping=((X_val, y_val), s.patience))
            models = {**m1, **m2}
            results = {**self._evaluate(models), selection.chosen:
                       selection.results[selection.chosen]}
            tests = {
                "early stopped vs all epochs (scratch)": paired_test(
                    results, STOPPED["scratch"], FIT["scratch"]),
                "early stopped vs all epochs (distilled)": paired_test(
                    results, STOPPED["distilled"], FIT["distilled"]),
                "early stopped distilled vs validation-chosen L_HP": paired_test(
                    results, STOPPED["distilled"], selection.chosen),
            }
            return self._result("early_stopping", results, tests, models,
                                pd.concat([h1, h2]), chosen=selection.chosen)

        return self._stage("early_stopping", build)

    def cost_comparison(self, students: list[str], min_run_time: float = 1.0,
                        threads: int = 1) -> tuple[pd.DataFrame, dict]:
        """What each model costs beside what it gets right: the costs table of
        :func:`kdteach.core.costs.model_costs` for run 1's teacher, expert and student (every
        student has the same architecture, so one row per named student repeats the
        student's costs), and ``{name: [test MSE per run]}`` for the same models."""
        from kdteach.core.costs import LABEL, model_costs

        found = {}
        for stage in self._stages.values():
            for name, data in stage.results.items():
                found.setdefault(name, data["mse"])
        missing = [n for n in students if n not in found]
        if missing:
            raise ValueError(f"run the stages of {missing} first; have {sorted(found)}")
        student = initial_student(0, self.settings.n_features)
        table = model_costs({TEACHER: self.teachers("teacher")[0],
                             EXPERT: self.teachers("expert")[0], "Student": student},
                            min_run_time=min_run_time, threads=threads)
        row = table[table[LABEL] == "Student"]
        table = pd.concat([table[table[LABEL] != "Student"],
                           *[row.assign(**{LABEL: name}) for name in students]],
                          ignore_index=True)
        part2 = self.expert_teacher()
        mse = {TEACHER: part2.results[TEACHER]["mse"], EXPERT: part2.results[EXPERT]["mse"],
               **{name: found[name] for name in students}}
        return table, mse

    # -- running ---------------------------------------------------------------

    def run(self, stage: str) -> StageResult:
        if stage in STAGES or stage in ("expert_ablation", "model_selection",
                                        "jacobian_matching", "feature_distillation",
                                        "early_stopping"):
            return getattr(self, stage)()
        if stage.startswith("three_way_search_"):
            return self.three_way_search(stage.rsplit("_", 1)[1])
        if stage in ("fresh_inputs_teacher", "fresh_inputs_expert"):
            return self.fresh_inputs_stage(stage.rsplit("_", 1)[1])
        raise ValueError(f"unknown stage {stage!r}; valid stages: "
                         f"{', '.join(STAGES + LESSON_STAGES + FURTHER_STAGES)}")

    def reproduce(self, stages=STAGES, overlap_teachers: bool = False
                  ) -> dict[str, StageResult]:
        """Every stage in order, with a progress bar over the stages.

        ``overlap_teachers=True``: train the expert teachers in a second thread while part 1
        (standard teachers and their students) runs, then part 4's students in a second
        thread while parts 2 and 3 run, and run every stage with one intra-op thread. Each
        model is trained exactly as without overlap at one thread, so the numbers are the
        one-thread numbers; on a machine with two free cores the work takes about the time
        of the longer thread. ``StageResult.seconds`` of parts 2 and 4 then count only the
        wait for what was trained alongside, not its whole training.
        """
        if not overlap_teachers:
            return self._run_stages(stages)
        with intra_op_threads(1):
            try:
                return self._run_stages(stages, overlap=True)
            except BaseException:
                self._cancel_background()  # no training left running behind an error
                raise

    def start_work_alongside(self, stage: str, stages=STAGES) -> None:
        """What ``reproduce(overlap_teachers=True)`` starts in a second thread as ``stage``
        of ``stages`` begins: with the first stage, the expert teachers; with part 2, part
        4's students, which need only the experts."""
        if stage == stages[0] and "expert_teacher" in stages:
            self.teachers_in_background("expert")
        if stage == "expert_teacher" and "gradient_regularisation" in stages:
            self.students_in_background("gradient_regularisation", self.lgr_jobs())

    def _run_stages(self, stages, overlap: bool = False) -> dict[str, StageResult]:
        out = {}
        bar = tqdm(stages, desc="stages", disable=not self.progress)
        for stage in bar:
            if overlap:
                self.start_work_alongside(stage, stages)
            bar.set_postfix_str(stage)
            out[stage] = self.run(stage)
        return out

    # -- one student, retrained live --------------------------------------------

    def student_jobs(self) -> list[StudentJob]:
        """Every student the stages train on the training set, in stage order."""
        s = self.settings
        return [
            StudentJob(SCRATCH, DistillationLoss(hard=1.0)),
            self.kd_job(DISTILLED, "teacher"),
            self.kd_job(DISTILLED_EXPERT, "expert"),
            *self.grid_jobs(),
            StudentJob(LGR, DistillationLoss.from_weights(s.gr_weights), "expert"),
            StudentJob(HP_ONLY["teacher"], DistillationLoss(hp=1.0), "teacher"),
            StudentJob(HP_ONLY["expert"], DistillationLoss(hp=1.0), "expert"),
            self.kd_job(DISTILLED_REGULARISED, "regularised"),
        ]

    def role(self, loss: DistillationLoss, teacher: str | None) -> str:
        """The name that fixes a retrained student's shuffle: the stage student with the
        same loss weights and teacher when there is one (so it sees the same batches and,
        with the profile's epochs and batch size, ends with the same weights), else a
        name made from the weights and the teacher."""
        teacher = teacher if loss.needs_teacher else None
        for job in self.student_jobs():
            if job.loss == loss and job.teacher == teacher:
                return job.name
        weights = ", ".join(f"{t}={w:g}" for t, w in loss.weights.items())
        return f"Student ({weights}" + (f", from {teacher})" if teacher else ")")

    def retrain_student(self, weights: dict, run: int = 0, teacher: str = "expert",
                        epochs: int | None = None, batch_size: int | None = None,
                        progress: bool | None = None, engine: str = "loop",
                        on_epoch=None) -> dict:
        """Train one student of run ``run`` from its shared initial weights with the loss
        ``weights`` (``hard``, ``hp``, ``gr``), distilled from that run's cached ``teacher``,
        using the readable one-model loop (``engine="loop"``, :func:`~kdteach.core.train.train`)
        or the stacked engine (``engine="stacked"``, :func:`~kdteach.core.train.train_many`, the
        engine of the stages and of the prepared slider grids). The stacked engine trains
        the student beside an identical twin, because a stack of one takes other matmul
        kernels than a stack of several, whose sums round differently: with the twin, a
        student trained now agrees with the one :meth:`prepared_student` looks up to
        about 1e-7 after a dozen epochs (bit for bit where the stacks are small), without
        it only to about 1e-3. Over hundreds of epochs even 1e-7 can grow into a visible
        difference, as between the two engines (notebook 03, section 4).
        ``on_epoch(epoch, history)`` is called after every epoch (the history holds the
        twin as a second column).

        ``epochs`` and ``batch_size`` default to the profile's; 0 epochs is allowed (the
        untrained student). Raises ValueError for what cannot be trained (every weight 0,
        a run that does not exist, a batch larger than the training set).

        Returns a dict: ``weights``, ``teacher``, ``epochs``, ``batch_size``, ``run``,
        ``role`` (the stage student it matches, if any), ``mse``, ``r2`` (test set),
        ``net``, ``history`` (a long DataFrame of the loss terms and the test MSE) and
        ``source`` (``"trained now"``).
        """
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        s = self.settings
        epochs = s.epochs_student if epochs is None else epochs
        if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 0:
            raise ValueError(f"epochs must be a whole number >= 0, got {epochs!r}")
        if not (isinstance(run, int) and 0 <= run < s.n_runs):
            raise ValueError(f"run must be one of {run_label(0)}..{run_label(s.n_runs - 1)} "
                             f"(index 0..{s.n_runs - 1}), got index {run!r}")
        check_teacher_kind(teacher)
        loss = DistillationLoss.from_weights(weights)  # ValueError for impossible weights
        role = self.role(loss, teacher)
        teacher_net = self.teachers(teacher)[run] if loss.needs_teacher else None
        net = initial_student(run, s.n_features).to(self.device)
        batch_size = s.batch_size if batch_size is None else batch_size
        common = dict(num_epochs=int(epochs), lr=s.lr_student,
                      weight_decay=s.weight_decay_student, batch_size=batch_size,
                      heldout=self.heldout, on_epoch=on_epoch,
                      progress=self.progress if progress is None else progress,
                      desc=f"{loss!r}")
        if engine == "loop":
            history = train(net, self.data.X_train, self.data.y_train, loss, teacher_net,
                            seed=shuffle_seed(run, role), **common)
        else:  # a stack of two twins: one model alone would take another matmul kernel
            (net, _), history = train_many(
                [net, net], self.data.X_train, self.data.y_train, [loss] * 2,
                [teacher_net] * 2, seeds=[shuffle_seed(run, role)] * 2,
                labels=[f"{loss!r}", "twin"], **common)
        scores = evaluate(net, self.data.X_test, self.data.y_test)
        frame = history.to_frame()
        frame = frame[frame["model"] == history.labels[0]].drop(columns="model")
        frame = frame.reset_index(drop=True)
        frame.insert(0, "run", run + 1)
        return {"weights": _shown_weights(loss), "teacher": teacher if loss.needs_teacher else None,
                "epochs": int(epochs), "batch_size": batch_size, "run": run, "role": role,
                "mse": scores["mse"], "r2": scores["r2"], "net": net, "history": frame,
                "source": TRAINED_NOW}

    # -- the widgets' prepared students -------------------------------------------

    def slider_grid_key(self, name: str, run: int = 0) -> dict:
        s = self.settings
        groups = slider_grid.groups(name, s)
        return {
            "what": f"slider-grid-{name}", "run": run, "engine": "stacked",
            "groups": [(g.batch_size, g.epochs, g.snapshots, list(g.weights)) for g in groups],
            "lr": s.lr_student, "weight_decay": s.weight_decay_student,
            "teacher": self.teacher_key("expert", run), **self._data_key(),
        }

    def slider_grid(self, name: str, run: int = 0) -> dict:
        """The prepared students of a widget's sliders (``"retrain"``: notebook 03's
        :func:`~kdteach.lesson.widgets.retrain_explorer`; ``"lgr"``: notebook 04's
        :func:`~kdteach.lesson.widgets.lgr_explorer`) for run ``run``, from run ``run``'s expert:
        loaded from the cache, else trained (each group of
        :func:`kdteach.lesson.slider_grid.groups` in one stacked training, with snapshots at
        every epochs-slider position) and stored.

        Every student sees the batches :meth:`retrain_student` would give it (the same
        role, hence the same shuffle seed), so a looked-up student is the one
        ``retrain_student(..., engine="stacked")`` trains (see :meth:`prepared_student`).

        Returns the payload: ``{"entries": [...]}``, one entry per student with its
        ``weights``, ``batch_size``, ``role``, ``snapshots`` (epochs), ``states`` (one
        state_dict per snapshot), ``mse`` and ``r2`` (test set, per snapshot) and
        ``history`` (``{term: tensor of one value per epoch}``).
        """
        if not (isinstance(run, int) and 0 <= run < self.settings.n_runs):
            raise ValueError(f"run must be an index 0..{self.settings.n_runs - 1}, got {run!r}")
        key = self.slider_grid_key(name, run)
        if (name, run) not in self._slider_grids:
            self._slider_grids[(name, run)] = self.cache.load_or_build(
                f"slider-grid-{name}-run{run}", key, lambda: self._train_slider_grid(name, run))
        return self._slider_grids[(name, run)]

    def _train_slider_grid(self, name: str, run: int) -> dict:
        s = self.settings
        expert = self.teachers("expert")[run]
        entries = []
        for group in slider_grid.groups(name, s):
            losses = [DistillationLoss.from_weights(w) for w in group.weights]
            roles = [self.role(loss, "expert") for loss in losses]
            trained, history = train_many(
                [initial_student(run, s.n_features).to(self.device) for _ in losses],
                self.data.X_train, self.data.y_train, losses,
                [expert if loss.needs_teacher else None for loss in losses],
                num_epochs=group.epochs, lr=s.lr_student, weight_decay=s.weight_decay_student,
                batch_size=group.batch_size, seeds=[shuffle_seed(run, r) for r in roles],
                labels=[f"{loss!r}" for loss in losses], heldout=self.heldout,
                snapshot_epochs=group.snapshots, progress=self.progress,
                desc=f"slider grid: {len(losses)} students, batch {group.batch_size}")
            for m, (loss, role) in enumerate(zip(losses, roles)):
                states = [history.snapshots[e][m] for e in group.snapshots]
                scores = [self._score_state(state) for state in states]
                terms = [*loss.terms, "total"]
                curves = {t: torch.tensor(np.array([v[m] for v in history.epochs[t]]),
                                          dtype=torch.float64) for t in terms}
                curves[HELDOUT] = torch.tensor(np.array([v[m] for v in history.heldout]),
                                               dtype=torch.float64)
                entries.append({
                    "weights": _shown_weights(loss), "batch_size": group.batch_size,
                    "role": role, "snapshots": group.snapshots, "states": states,
                    "mse": [x["mse"] for x in scores], "r2": [x["r2"] for x in scores],
                    "history": curves,
                })
        return {"entries": entries}

    def _score_state(self, state: dict) -> dict:
        return evaluate(self._student_from_state(state), self.data.X_test, self.data.y_test)

    def prepared_student(self, name: str, weights: dict, run: int = 0,
                         epochs: int | None = None, batch_size: int | None = None
                         ) -> dict | None:
        """The student of the prepared grid ``name`` with these loss ``weights``, epochs
        and batch size (defaults: the profile's), distilled from run ``run``'s expert, in
        the dict :meth:`retrain_student` returns, with ``source`` ``"prepared"``; None
        when the grid has no such student or has not been prepared (:meth:`slider_grid`
        is never started from here: preparing is announced, never a surprise).

        Raises ValueError for weights that cannot be trained, like
        :meth:`retrain_student`. The looked-up student is the one
        ``retrain_student(..., engine="stacked")`` trains, up to the rounding of the
        batched matrix products (see there).
        """
        loss = DistillationLoss.from_weights(weights)  # ValueError for impossible weights
        s = self.settings
        epochs = s.epochs_student if epochs is None else epochs
        batch_size = s.batch_size if batch_size is None else batch_size
        grid = self._slider_grids.get((name, run))
        if grid is None:
            if name not in slider_grid.GRIDS or not (isinstance(run, int)
                                                     and 0 <= run < s.n_runs):
                return None
            grid = self.cache.load(f"slider-grid-{name}-run{run}",
                                   self.slider_grid_key(name, run))
            if grid is None:
                return None
            self._slider_grids[(name, run)] = grid
        wanted = slider_grid.weights_key(loss.weights)
        for entry in grid["entries"]:
            if (entry["batch_size"] == batch_size and epochs in entry["snapshots"]
                    and slider_grid.weights_key(entry["weights"]) == wanted):
                return self._prepared_result(entry, run, int(epochs))
        return None

    def _prepared_result(self, entry: dict, run: int, epochs: int) -> dict:
        i = entry["snapshots"].index(epochs)
        net = self._student_from_state(entry["states"][i])
        frames = [pd.DataFrame({"run": run + 1, "epoch": np.arange(1, epochs + 1), "term": term,
                                "loss": values[:epochs].numpy()})
                  for term, values in entry["history"].items()]
        weights = dict(entry["weights"])
        loss = DistillationLoss.from_weights(weights)
        return {"weights": weights, "teacher": "expert" if loss.needs_teacher else None,
                "epochs": epochs, "batch_size": entry["batch_size"], "run": run,
                "role": entry["role"], "mse": entry["mse"][i], "r2": entry["r2"][i],
                "net": net, "history": pd.concat(frames, ignore_index=True),
                "source": PREPARED}


ENGINES = ("loop", "stacked")
TRAINED_NOW = "trained now"  # a retrained student's ``source``
PREPARED = "prepared"  # a student looked up in a prepared slider grid


def _shown_weights(loss: DistillationLoss) -> dict:
    """The weights a retrained student reports: hard, hp and gr always, jac/feat if used."""
    shown = ("hard", "hp", "gr") + tuple(t for t in ("jac", "feat") if t in loss.weights)
    return {t: float(loss.weights.get(t, 0.0)) for t in shown}


def last_epoch(history: pd.DataFrame) -> pd.DataFrame:
    """Each model's loss terms and test MSE in its last epoch, averaged over runs: one row
    per model, one column per term (``heldout`` is the test MSE)."""
    last = history[history["epoch"] == history.groupby("model")["epoch"].transform("max")]
    table = last.groupby(["model", "term"], sort=False)["loss"].mean().unstack("term")
    table.columns.name = None
    return table[[t for t in ("hard", "hp", "gr", "total", "heldout") if t in table.columns]]


def all_results(stages: dict[str, StageResult]) -> dict:
    """Every model's per-run MSE and R² across stages, under the original's names."""
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
