"""An experiment: the data, the teachers and the students of one set of settings, with a
checkpoint cache, and the one way to run a stage (:meth:`Experiment.run`).

>>> exp = Experiment(get_settings("quick"))          # doctest: +SKIP
>>> part1 = exp.run("standard_teacher")             # doctest: +SKIP
>>> part1.summary                                    # doctest: +SKIP

What the stages are is the table of :mod:`kdteach.protocol.stages`; where every random
number comes from, :mod:`kdteach.protocol.seeds`. Each stage runs on its own: the teachers
and earlier stages it needs are loaded from the cache, or trained again (with progress
bars) when missing (:mod:`kdteach.protocol.checkpoints`). Every training records the
test MSE after each epoch beside its loss terms (term ``"heldout"`` of the history): a
diagnostic that is only looked at, never used to choose anything.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import pandas as pd
import torch

from kdteach.core.data import Dataset, dataset_for, fresh_inputs, validation_split
from kdteach.core.models import MLP, StudentNet
from kdteach.core.train import evaluate
from kdteach.protocol import checkpoints, overlap
from kdteach.protocol import stages as stage_table
from kdteach.protocol.cache import NotCached, as_cache
from kdteach.protocol.keys import teacher_key
from kdteach.protocol.recipes import StudentJob, check_teacher_kind
from kdteach.protocol.results import StageResult, TrainedStudents
from kdteach.protocol.seeds import blank_student
from kdteach.protocol.settings import Settings, get_settings


class Experiment:
    """The original protocol for one set of settings, its teachers and stages memoised.

    ``cache``: ``True`` (default folder), ``False`` (off), a folder, or a ``Cache``.
    ``may_train=False``: only load; what the cache does not hold raises
    :class:`~kdteach.protocol.cache.NotCached` (``python -m kdteach cache --check``).
    """

    def __init__(self, settings: Settings | None = None, cache=True, progress: bool = True,
                 may_train: bool = True):
        self.settings = settings or get_settings()
        self.may_train = may_train
        self.device = self.settings.torch_device
        self.cache = as_cache(cache)
        self.progress = progress
        self._data: Dataset | None = None
        self._teachers: dict = {}  # kind → [net per run]
        self._teacher_histories: dict = {}  # kind → long history
        self._alongside = overlap.Alongside()  # what second threads are getting
        self._building: dict = {}  # ("teachers", kind) etc. → the lock of the one building it
        self._stages: dict[str, StageResult] = {}

    # -- the data --------------------------------------------------------------------

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

    def training_data(self, part: str = "train") -> tuple:
        """``(X, y)`` of the whole training set (``"train"``) or of its fit part
        (``"fit"``, the validation part held out)."""
        if part == "fit":
            return self.validation()[:2]
        if part != "train":
            raise ValueError(f"part must be 'train' or 'fit', got {part!r}")
        return self.data.X_train, self.data.y_train

    def validation(self) -> tuple:
        """``(X_fit, y_fit, X_val, y_val)``: the training set split for choosing weights."""
        s = self.settings
        return validation_split(self.data, s.val_size, s.val_seed)

    def fresh_inputs(self) -> torch.Tensor:
        """Unlabelled inputs from the data's input distribution (``fresh_factor`` per
        training input), scaled like the training inputs."""
        s = self.settings
        return fresh_inputs(self.data, s.fresh_factor * len(self.data.X_train), s.fresh_seed)

    def teachers(self, kind: str) -> list[MLP]:
        """The trained teachers (``"teacher"``, ``"expert"`` or ``"regularised"``) of every
        run: from the cache when every run is there, else all runs trained together (the same
        numbers as a clean run, to the bit) and stored. If
        :meth:`teachers_in_background` is getting them, waits for it."""
        self._alongside.join(("teachers", kind))  # any thread may wait; then memoised
        return self._get_teachers(kind)

    def has_teachers(self, kind: str) -> bool:
        """Whether :meth:`teachers` would train nothing: memoised, or every run in the cache."""
        return kind in self._teachers or (self.cache.enabled and all(
            self.cache.path(f"{kind}-run{run}", teacher_key(self.settings, kind, run)).exists()
            for run in range(self.settings.n_runs)))

    def teacher_history(self, kind: str) -> pd.DataFrame:
        """The teachers' per-epoch training loss and test MSE, every run."""
        self.teachers(kind)
        return self._teacher_histories[kind]

    def teachers_in_background(self, *kinds: str) -> None:
        """Start getting the teachers of each of ``kinds`` (from the cache, or trained), one
        kind after the other, in one second thread, so that other work goes on meanwhile;
        ``teachers(kind)`` waits for that thread and re-raises any error. Each model is
        trained as it would be in this thread."""
        for kind in kinds:
            check_teacher_kind(kind)
        kinds = [kind for kind in kinds
                 if kind not in self._teachers and ("teachers", kind) not in self._alongside]
        if kinds:
            self.data  # noqa: B018 -- built once, before a second thread reads it
            self._alongside.start([("teachers", kind) for kind in kinds],
                                  lambda stop: [self._get_teachers(kind, stop) for kind in kinds])

    def _lock(self, what: tuple) -> threading.RLock:
        """The lock that lets one thread at most build ``what``; the others wait for it."""
        return self._building.setdefault(what, threading.RLock())

    def _get_teachers(self, kind: str, stop: threading.Event | None = None) -> list[MLP]:
        check_teacher_kind(kind)
        with self._lock(("teachers", kind)):
            if kind not in self._teachers:
                nets, history = checkpoints.load_or_train_teachers(
                    self, kind, self._alongside.stop_event(stop))
                self._teachers[kind], self._teacher_histories[kind] = nets, history
            return self._teachers[kind]

    # -- students --------------------------------------------------------------------

    def students(self, part: str, jobs: list[StudentJob], X=None, y=None,
                 epochs: int | None = None, stopping: tuple | None = None,
                 stop_epochs: dict | None = None) -> TrainedStudents:
        """Every job of ``jobs`` for every run, trained at once on ``(X, y)`` (default: the
        training set) for ``epochs`` (default: the profile's student epochs), cached as
        ``students-<part>``. ``stopping=((X_val, y_val), patience)`` stops each model early
        on its validation MSE and restores its best epoch's weights;
        ``stop_epochs={job name: [epochs per run]}`` trains each model for its own number
        of epochs instead. If :meth:`students_in_background` is training ``part``, waits
        for it."""
        if ("students", part) in self._alongside:  # started with the table's jobs of the part
            return self._alongside.join(("students", part))
        return self._get_students(part, jobs, X, y, epochs, stopping, stop_epochs=stop_epochs)

    def students_in_background(self, stage: str) -> None:
        """Start training the students of ``stage`` (its jobs in the stage table, on the
        training set, as the stage itself would) in a second thread; the stage waits."""
        jobs = stage_table.stage(stage).jobs(self.settings)
        if stage not in self._stages and ("students", stage) not in self._alongside:
            self.data  # noqa: B018 -- built once, before a second thread reads it
            self._alongside.start([("students", stage)],
                                  lambda stop: self._get_students(stage, jobs, stop=stop))

    def stage_in_background(self, name: str) -> None:
        """Start running the stage ``name`` (and the stages it depends on) in a second thread;
        ``run(name)`` waits for it and re-raises any error. For a lesson's long stage, so
        that it trains while the cells before it run and are read; every model is trained
        as it would be in this thread, so the numbers are the same."""
        stage_table.stage(name)
        if name not in self._stages and ("stage", name) not in self._alongside:
            self.data  # noqa: B018 -- built once, before a second thread reads it
            self._alongside.start([("stage", name)],
                                  lambda stop: self._alongside.stage_until(self.run, name, stop))

    def _get_students(self, part, jobs, X=None, y=None, epochs=None, stopping=None,
                      stop: threading.Event | None = None, stop_epochs=None) -> TrainedStudents:
        X = self.data.X_train if X is None else X
        y = self.data.y_train if y is None else y
        epochs = self.settings.epochs_student if epochs is None else epochs
        with self._lock(("students", part)):
            return checkpoints.load_or_train_students(
                self, part, jobs, X, y, epochs, stopping, self._alongside.stop_event(stop),
                stop_epochs)

    def check_may_train(self, what: str) -> None:
        """Go on to train ``what``, or raise NotCached when this experiment only loads."""
        if not self.may_train:
            raise NotCached(f"{what} ({self.settings.profile} profile) not in {self.cache.folder}")

    def student_from_state(self, state: dict) -> StudentNet:
        """A student holding saved weights, on the experiment's device, in eval mode."""
        net = blank_student(self.settings.n_features).to(self.device)
        net.load_state_dict(state)
        return net.eval()

    def evaluate(self, models: dict, X=None, y=None) -> dict:
        """``{name: {"mse": [per run], "r2": [per run]}}`` of ``{name: [net per run]}`` on
        ``(X, y)`` (default: the test set)."""
        X = self.data.X_test if X is None else X
        y = self.data.y_test if y is None else y
        results = {}
        for name, nets in models.items():
            scores = [evaluate(net, X, y) for net in nets]
            results[name] = {"mse": [x["mse"] for x in scores], "r2": [x["r2"] for x in scores]}
        return results

    # -- stages ----------------------------------------------------------------------

    def run(self, name: str) -> StageResult:
        """The stage ``name`` of :data:`kdteach.protocol.stages.STAGES`: memoised; the stages
        it depends on run first (each loads from the cache what it can). Lesson 01,
        section 3 runs the first one."""
        stage = stage_table.stage(name)
        if self._alongside.elsewhere(("stage", name)):  # started by stage_in_background
            return self._alongside.join(("stage", name))
        with self._lock(("stage", name)):  # one thread builds it; another waits, then reads
            if name not in self._stages:
                for dependency in stage.depends_on:
                    self.run(dependency)
                start = time.perf_counter()
                result = stage.build(self, stage)
                self._stages[name] = dataclasses.replace(result,
                                                         seconds=time.perf_counter() - start)
        return self._stages[name]

    def cached(self, name: str) -> StageResult | None:
        """The stage ``name`` if it can be had without training anything (run before, or
        every model it and its dependencies need is in the cache), else None: for a check
        a lesson shows only when someone has already paid for it (lesson 05's full grid)."""
        if name in self._stages:
            return self._stages[name]
        self._alongside.join_all()  # nothing trains in a second thread while this only loads
        may_train, self.may_train = self.may_train, False
        try:
            return self.run(name)
        except NotCached:
            return None
        finally:
            self.may_train = may_train

    @property
    def completed(self) -> dict[str, StageResult]:
        """The stages run so far, in the order they finished."""
        return dict(self._stages)

    def reproduce(self, stages=stage_table.ORIGINAL, overlap_teachers: bool = False
                  ) -> dict[str, StageResult]:
        """Every stage in order, with a progress bar over the stages.

        ``overlap_teachers=True``: train the expert teachers in a second thread while part 1
        (standard teachers and their students) runs, part 3 in a second thread while part 2
        runs, and part 4's students while part 3 is waited for
        (:func:`kdteach.protocol.overlap.start_alongside`), with one intra-op thread for
        every stage. Each model is trained exactly as
        without overlap at one thread, so the numbers are the one-thread numbers; on a
        machine with two free cores the work takes about the time of the longer thread.
        ``StageResult.seconds`` of parts 2 and 4 then count only the wait for what was
        trained alongside, not its whole training; that of part 3 is its own time in the
        second thread.
        """
        return overlap.reproduce(self, stages, overlap_teachers)

    def cancel_background(self) -> None:
        """Stop every training started in a second thread and wait for it."""
        self._alongside.cancel_all()
