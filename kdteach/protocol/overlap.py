"""Work in a second thread: what ``reproduce``, and a lesson that asks for it, trains
alongside a stage on a second core.

A model trained here is trained exactly as it would be in the main thread (one intra-op
thread each), so overlap changes when a number is ready, never the number.
"""

from __future__ import annotations

import threading

from tqdm.auto import tqdm

from kdteach.core.resources import intra_op_threads


class Cancelled(Exception):
    """A training in a second thread was asked to stop (the work it was for failed)."""


class Background:
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


class Alongside:
    """The work an experiment has started in second threads, by what each one gets:
    ``("teachers", kind)``, ``("students", part)`` or ``("stage", name)``. One Background
    may get several (teachers of several kinds, one kind after the other)."""

    def __init__(self):
        self._pending: dict[tuple, Background] = {}
        self._local = threading.local()  # .stop: the stop event of the stage this thread runs

    def __contains__(self, what: tuple) -> bool:
        return what in self._pending

    def start(self, whats: list[tuple], work) -> None:
        """Run ``work(stop)`` in a new second thread, as what gets each of ``whats``."""
        job = Background(work)
        for what in whats:
            self._pending[what] = job

    def elsewhere(self, what: tuple) -> bool:
        """Whether a second thread other than this one is getting ``what``."""
        job = self._pending.get(what)
        return job is not None and job.thread is not threading.current_thread()

    def join(self, what: tuple):
        """Wait for the work on ``what``, if any; its result, or its error raised here. It is
        forgotten only once it has finished, so a second waiter waits for it too."""
        job = self._pending.get(what)
        if job is None:
            return None
        result = job.join()
        self._pending.pop(what, None)
        return result

    def join_all(self) -> None:
        for what in list(self._pending):
            self.join(what)

    def cancel_all(self) -> None:
        """Stop every training started in a second thread and wait for it."""
        while self._pending:
            self._pending.popitem()[1].cancel()

    def stage_until(self, run, name: str, stop: threading.Event):
        """``run(name)`` in this (second) thread, its trainings ending once ``stop`` is set."""
        self._local.stop = stop
        return run(name)

    def stop_event(self, stop: threading.Event | None) -> threading.Event | None:
        """What ends a training early: ``stop``, else that of the stage this thread runs."""
        return stop if stop is not None else getattr(self._local, "stop", None)


def reproduce(exp, stages, overlap: bool) -> dict:
    """:meth:`Experiment.reproduce <kdteach.protocol.experiment.Experiment.reproduce>`:
    every stage in order, with a progress bar over the stages; with ``overlap``, at one
    intra-op thread and with :func:`start_alongside`'s work in a second thread, none of it
    left running behind an error."""
    if not overlap:
        return _run_stages(exp, stages, overlap=False)
    with intra_op_threads(1):
        try:
            return _run_stages(exp, stages, overlap=True)
        except BaseException:
            exp.cancel_background()
            raise


def _run_stages(exp, stages, overlap: bool) -> dict:
    out = {}
    bar = tqdm(stages, desc="stages", disable=not exp.progress)
    for name in bar:
        if overlap:
            start_alongside(exp, name, stages)
        bar.set_postfix_str(name)
        out[name] = exp.run(name)
    return out


def stop_when(event: threading.Event | None):
    """An ``on_epoch`` callback that ends a training once ``event`` is set."""
    if event is None:
        return None

    def check(epoch, history):
        if event.is_set():
            raise Cancelled(f"stopped after epoch {epoch}")

    return check


def start_alongside(exp, stage: str, stages) -> None:
    """What ``reproduce(overlap_teachers=True)`` starts in a second thread as ``stage`` of
    ``stages`` begins: with the first stage, the expert teachers; with part 2, part 3
    (which needs only the experts) while part 2's students train; with part 3, part 4's
    students (its jobs as the stage table declares them) while part 3 is waited for. So
    the two cores stay busy until the last stage; without part 3, part 4's students start
    with part 2."""
    if stage == stages[0] and "expert_teacher" in stages:
        exp.teachers_in_background("expert")
    lgr = "gradient_regularisation" in stages
    if stage == "expert_teacher" and "grid_search" in stages:
        exp.stage_in_background("grid_search")
    elif stage == "expert_teacher" and lgr:
        exp.students_in_background("gradient_regularisation")
    if stage == "grid_search" and lgr:
        exp.students_in_background("gradient_regularisation")
