"""What the lessons need from the cache, and how much of it a cache holds.

A lesson runs in seconds when the cache holds what it trains: the stages it shows and the
prepared students of its sliders (:func:`lesson_needs`). ``python -m kdteach prepare``
trains them all before a class; :func:`cache_state` (lesson 00, ``python -m kdteach cache
--check``) looks, training nothing, and says whether the cache is complete, partial or
empty for a profile, and about how long the rest takes to train.

That last figure comes from ``training_times.json`` beside this module: the seconds each
need took when ``benchmarks/prepare_times.py`` trained it from an empty cache, one need
after another as the lessons run them, on the machine it names. A faster machine, or a
GPU, takes less; a need whose teachers are already cached, less too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kdteach.lesson import slider_grid
from kdteach.protocol.cache import NotCached
from kdteach.protocol.experiment import Experiment
from kdteach.protocol.settings import Settings, get_settings
from kdteach.protocol.stages import STAGES, lesson_stages

TIMES_FILE = Path(__file__).with_name("training_times.json")
SLIDER_LESSONS = {"retrain": "03", "lgr": "04"}  # the lesson that shows each slider grid
# checks a lesson shows only when they are in the cache (or asked for): lesson 05 runs the
# full three-way grid only with CHECK_THE_BET = True, to check successive halving's choice
OPTIONAL = frozenset({"stage three_way_search_jac"})


@dataclass(frozen=True)
class Need:
    """One thing a lesson loads from the cache: ``name`` (stable, e.g. ``stage
    standard_teacher``), the lesson that shows it, and ``get``, which loads it (or trains
    it, on an experiment that may train)."""

    name: str
    lesson: str
    get: Callable[[], object]

    @property
    def optional(self) -> bool:
        """Whether the lesson runs without it (it shows it only when cached)."""
        return self.name in OPTIONAL

    def __str__(self) -> str:
        return f"{self.name} (lesson {self.lesson}{', optional' if self.optional else ''})"


def lesson_needs(exp: Experiment) -> list[Need]:
    """Everything the lessons load, lesson by lesson in the order they run: the stages a
    lesson runs (in table order), then its sliders' prepared students (run 1's, as the
    lessons show them)."""
    needs = [Need(f"stage {name}", STAGES[name].lesson[:2], lambda name=name: exp.run(name))
             for name in lesson_stages()]
    needs += [Need(f"slider grid {grid}", SLIDER_LESSONS[grid],
                   lambda grid=grid: slider_grid.slider_grid(exp, grid, run=0))
              for grid in slider_grid.GRIDS]
    return sorted(needs, key=lambda need: need.lesson)  # stable: table order within a lesson


def training_times(profile: str) -> tuple[dict[str, float], str]:
    """The measured seconds per need for ``profile`` and the machine they were measured
    on; empty when not measured for that profile."""
    try:
        recorded = json.loads(TIMES_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, ""
    return recorded.get("profiles", {}).get(profile, {}), recorded.get("machine", "")


@dataclass
class CacheState:
    """What a cache holds of the lessons' needs for one profile. ``missing`` lists what a
    lesson trains when it runs; ``optional`` what is missing but only trained on request
    (:data:`OPTIONAL`), and its seconds."""

    profile: str
    folders: list[Path]
    cached: list[Need] = field(default_factory=list)
    missing: list[Need] = field(default_factory=list)
    missing_seconds: float | None = None  # from training_times.json; None if not measured
    machine: str = ""
    optional: list[Need] = field(default_factory=list)
    optional_seconds: float | None = None

    @property
    def state(self) -> str:
        """``complete``, ``partial`` or ``empty`` (what is optional does not count)."""
        if not self.missing:
            return "complete"
        return "empty" if not [n for n in self.cached if not n.optional] else "partial"

    def report(self) -> str:
        where = " then ".join(str(f) for f in self.folders)
        needed = [n for n in self.cached if not n.optional]
        lines = [f"cache ({where}): {self.state} for the {self.profile} profile, "
                 f"{len(needed)} of {len(needed) + len(self.missing)} things the lessons load"]
        if self.missing:
            by_lesson: dict[str, list[str]] = {}
            for need in self.missing:
                by_lesson.setdefault(need.lesson, []).append(need.name)
            lines += [f"  lesson {lesson} still needs: {', '.join(names)}"
                      for lesson, names in by_lesson.items()]
            if self.missing_seconds is not None:
                lines.append(f"the lessons will train them as they run: about "
                             f"{_duration(self.missing_seconds)} on {self.machine}; "
                             f"`python -m kdteach prepare --profile {self.profile}` trains "
                             "them all at once")
            else:
                lines.append(f"the lessons will train them as they run; `python -m kdteach "
                             f"prepare --profile {self.profile}` trains them all at once")
        if self.optional:
            when = ("" if self.optional_seconds is None
                    else f" (about {_duration(self.optional_seconds)} more)")
            lines.append(f"not in the cache, trained only when asked or by `prepare`{when}: "
                         + ", ".join(str(n) for n in self.optional))
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{seconds / 60:.0f} minutes"


def is_the_profile(settings: Settings) -> bool:
    """Whether ``settings`` are their profile's, unchanged (the measured times apply)."""
    plain = get_settings(settings.profile, settings.device).as_dict()
    return settings.as_dict() == plain


def cache_state(settings: Settings, cache=True) -> CacheState:
    """Look in the cache for every need of the lessons under ``settings``, training
    nothing."""
    exp = Experiment(settings, cache=cache, progress=False, may_train=False)
    times, machine = (training_times(settings.profile) if is_the_profile(settings)
                      else ({}, ""))
    found = CacheState(settings.profile, list(exp.cache.folders), machine=machine)
    for need in lesson_needs(exp):
        try:
            need.get()
            found.cached.append(need)
        except NotCached:
            (found.optional if need.optional else found.missing).append(need)
    if times and all(need.name in times for need in found.missing):
        found.missing_seconds = sum(times[need.name] for need in found.missing)
    if times and all(need.name in times for need in found.optional):
        found.optional_seconds = sum(times[need.name] for need in found.optional)
    return found


def train_needs(exp: Experiment) -> dict[str, float]:
    """Load or train every need, one after another as the lessons do; the seconds each
    took (what ``benchmarks/prepare_times.py`` records from an empty cache)."""
    seconds = {}
    for need in lesson_needs(exp):
        start = time.perf_counter()
        need.get()
        seconds[need.name] = round(time.perf_counter() - start, 1)
    return seconds
