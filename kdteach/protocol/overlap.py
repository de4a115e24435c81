"""Work in a second thread: what ``reproduce`` trains alongside a stage on a second core.

A model trained here is trained exactly as it would be in the main thread (one intra-op
thread each), so overlap changes when a number is ready, never the number.
"""

from __future__ import annotations

import threading


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
    ``stages`` begins: with the first stage, the expert teachers; with part 2, part 4's
    students (its jobs as the stage table declares them), which need only the experts."""
    if stage == stages[0] and "expert_teacher" in stages:
        exp.teachers_in_background("expert")
    if stage == "expert_teacher" and "gradient_regularisation" in stages:
        exp.students_in_background("gradient_regularisation")
