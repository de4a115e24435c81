"""``python -m kdteach reproduce``: the original notebook's four stages, headless, with files.

``python -m kdteach stages`` lists every stage of the series; ``figures`` writes the
lessons' figures at talk size; ``prepare`` trains into the cache everything the lessons
need, and ``cache --check`` says what is still missing; ``lessons DIR`` writes the lesson
and exercise notebooks into a folder of the learner's (from the installed package).

Writes to ``--out`` (default ``results/``): ``results.json``, ``results.csv`` (one row
per model and run) and the original's figures as PNG. Every file is written under a
temporary name and renamed into place, and only once every stage has finished, so an
interrupted run leaves no partial results (its completed teachers stay in the cache).
Bad arguments print a one-line error and exit with code 2; a run that fails (training
diverged, memory ran out, the results could not be written) prints one line and exits
with code 1. Warnings are one line each, ``kdteach: <message>``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_IMPORTED = time.perf_counter()  # the fallback start of the command where /proc is missing


def seconds_since_start() -> float:
    """Wall-clock seconds since this process started, Python's own start-up included (from
    Linux's /proc); elsewhere, since this module was imported."""
    since_import = time.perf_counter() - _IMPORTED
    try:
        with open("/proc/self/stat") as f:
            after_name = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        started = int(after_name[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time
    except (OSError, ValueError, IndexError):
        return since_import
    since_start = uptime - started
    # a start-up longer than a minute means /proc and this process disagree (e.g. a
    # container whose uptime is the host's): trust the import time instead
    return since_start if since_import <= since_start <= since_import + 60 else since_import


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line plus usage, exit 2 (argparse's convention)
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _add_settings_arguments(command, cache: bool = True) -> None:
    """The arguments that choose the settings (and, unless ``cache=False``, whether to use
    the cache), the same for every command."""
    from kdteach.protocol.settings import DEVICES, PROFILES

    command.add_argument("--profile", choices=PROFILES, default=None,
                         help="full (the original notebook's protocol, the default) or quick "
                              "(a fast check whose numbers are not the original's); default "
                              "KDTEACH_PROFILE or full")
    command.add_argument("--runs", type=_positive_int, help="number of paired runs")
    command.add_argument("--epochs-teacher", type=_positive_int, help="teacher epochs")
    command.add_argument("--epochs-student", type=_positive_int, help="student epochs")
    command.add_argument("--device", choices=DEVICES, default=None, help="auto, cpu or cuda")
    if cache:
        command.add_argument("--no-cache", action="store_true",
                             help="neither read nor write the cache")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m kdteach", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    rep = commands.add_parser("reproduce", help="run the four stages and write the results")
    _add_settings_arguments(rep)
    rep.add_argument("--out", default="results", help="output folder (default: results/)")
    rep.add_argument("--quiet", action="store_true", help="no progress bars and no tables")

    fig = commands.add_parser("figures", help="write every lesson figure at talk size (16:9), "
                                              "as PNG and SVG")
    fig.add_argument("--out", required=True, help="output folder for the figures")
    fig.add_argument("--only", nargs="+", metavar="NAME", help="just these figures (file names "
                     "without suffix, e.g. 03_grid_search)")
    fig.add_argument("--with-checks", action="store_true",
                     help="also the figures of optional checks not in the cache (lesson 05's "
                          "full three-way grid: trains it)")
    _add_settings_arguments(fig)
    fig.add_argument("--quiet", action="store_true", help="no progress bars")

    prep = commands.add_parser("prepare", help="train into the cache everything the lessons and "
                                               "their sliders need (before a class)")
    _add_settings_arguments(prep, cache=False)
    prep.add_argument("--quiet", action="store_true", help="no progress bars")

    cache = commands.add_parser("cache", help="what the cache holds for the lessons")
    cache.add_argument("--check", action="store_true", required=True,
                       help="list what the lessons would still train; exit 1 if anything")
    _add_settings_arguments(cache, cache=False)

    lessons = commands.add_parser("lessons", help="write the lessons and the exercise notebooks "
                                                  "into a folder (never over your own edits)")
    lessons.add_argument("folder", help="where to write them (created if missing)")
    lessons.add_argument("--solutions", action="store_true",
                         help="also the solved exercises, in solutions/ (for lecturers)")
    lessons.add_argument("--force", action="store_true",
                         help="replace notebooks you have changed, too")

    from kdteach.protocol.settings import PROFILES

    table = commands.add_parser("stages", help="list the stages: what each compares, what it "
                                               "needs first and which students it trains")
    table.add_argument("--profile", choices=PROFILES, default=None,
                       help="the profile whose students are listed (default KDTEACH_PROFILE "
                            "or full)")
    return parser


def stage_table(settings) -> str:
    """The stage table as text: one block per stage, in the order ``reproduce`` and the
    lessons run them."""
    from kdteach.protocol.stages import STAGES

    blocks = []
    for stage in STAGES.values():
        jobs = [job.name for job in stage.jobs(settings)]
        blocks.append("\n".join([
            f"{stage.name}  ({stage.part})",
            f"  {stage.title}",
            f"  needs first: {', '.join(stage.depends_on) or 'nothing'}",
            f"  shown in: {stage.lesson or 'no lesson'}",
            "  students on the training set: "
            + (", ".join(jobs) if jobs else "none fixed in advance"),
        ]))
    return "\n\n".join(blocks)


def _check_writable(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=".kdteach-probe-", dir=folder)
    os.close(fd)
    os.unlink(probe)


class ResultsNotWritten(OSError):
    """The results could not be written to ``--out``; what was there before is unchanged."""


def results_document(settings, stages: dict) -> dict:
    from kdteach.protocol.results import merge

    merged = merge(stages.values())
    return {
        "profile": settings.profile,
        "settings": settings.as_dict(),
        "timings_s": {name: round(r.seconds, 3) for name, r in stages.items()},
        "models": merged.results,
        "tests": {name: t.as_dict() for name, t in merged.tests.items()},
    }


def write_outputs(out: Path, settings, stages: dict) -> list[Path]:
    """Write results.json, results.csv and the figures into ``out``: all to temporary
    files first, then each renamed into place; :class:`ResultsNotWritten` on failure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from kdteach.lesson import plots
    from kdteach.protocol.files import PartlyReplaced, write_all_atomic

    document = results_document(settings, stages)
    rows = pd.concat([r.runs for r in stages.values()], ignore_index=True)
    rows = rows.drop_duplicates(subset=["model", "run"], keep="first")

    def json_writer(tmp):
        with open(tmp, "w") as f:
            json.dump(document, f, indent=2)

    targets = [(out / "results.json", json_writer),
               (out / "results.csv", lambda tmp: rows.to_csv(tmp, index=False))]
    plots.use_style()
    figures = {}
    if "grid_search" in stages:
        figures["grid_search.png"] = plots.grid_search_bars(stages["grid_search"])
    if "gradient_regularisation" in stages:
        figures["final_comparison.png"] = plots.final_boxplot(stages["gradient_regularisation"])
    for name, fig in figures.items():
        targets.append(
            (out / name, lambda tmp, fig=fig: fig.savefig(tmp, dpi=120, format="png"))
        )
    try:
        return write_all_atomic(targets)
    except PartlyReplaced as exc:
        raise ResultsNotWritten(
            f"cannot move the results into {out}/ ({exc.strerror or exc}); "
            "some files there may be from this run and others from before: run it again"
        ) from None
    except OSError as exc:
        raise ResultsNotWritten(
            f"cannot write the results to {out}/ ({exc.strerror or exc}); free some space "
            "or choose another --out (the files already there are unchanged)"
        ) from None
    finally:
        for fig in figures.values():
            plt.close(fig)


def prepare(args):
    """Settings and output folder from the arguments; ValueError/RuntimeError when bad."""
    from kdteach.protocol.settings import get_settings

    overrides = {
        "n_runs": args.runs,
        "epochs_teacher": args.epochs_teacher,
        "epochs_student": args.epochs_student,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    settings = get_settings(args.profile, args.device, **overrides)  # None: KDTEACH_PROFILE
    if settings.n_runs < 2:
        raise ValueError("--runs must be at least 2: the paired t-tests need two runs")
    if not hasattr(args, "out"):  # prepare, cache: they write only to the cache
        return settings, None
    out = Path(args.out)
    try:
        _check_writable(out)
    except OSError as exc:
        raise ValueError(f"cannot write to --out {out}: {exc.strerror or exc}") from None
    return settings, out


QUICK_NOTICE = ("kdteach: quick profile: 2 runs of few epochs, every model undertrained; its "
                "numbers and conclusions are not the original notebook's (use --profile full)")


def overlap_teachers(settings) -> bool:
    """On a CPU with two cores or more, ``reproduce`` trains the expert teachers alongside
    part 1, one intra-op thread each (the lessons' one-thread numbers, sooner)."""
    from kdteach.core.resources import usable_cpus

    return settings.torch_device.type == "cpu" and usable_cpus() >= 2


def reproduce(settings, out: Path, args) -> int:
    from kdteach.protocol.experiment import Experiment

    if settings.profile == "quick" and not args.quiet:
        print(QUICK_NOTICE, flush=True)
    exp = Experiment(settings, cache=not args.no_cache, progress=not args.quiet)
    if not args.quiet:
        print(f"cache: {_folders(exp.cache)}", flush=True)
    start = time.perf_counter()
    stages = exp.reproduce(overlap_teachers=overlap_teachers(settings))
    total = time.perf_counter() - start
    written = write_outputs(out, settings, stages)
    if not args.quiet:
        for result in stages.values():
            print("\n" + result.report())
        device = settings.torch_device
        print(f"\nAll stages: {total:.1f} s on {device} ({settings.profile} profile)")
        for path in written:
            print(f"wrote {path}")
    whole = seconds_since_start()
    timing = (f"stages {total:.1f} s, whole command {whole:.1f} s ({whole - total:.1f} s beyond "
              "the stages: start-up, imports, results and figures)")
    if args.quiet:
        print(f"wrote {len(written)} files to {out}/; {timing}")
    else:
        print(timing[0].upper() + timing[1:])
    return 0


def figures(settings, out: Path, args) -> int:
    """``python -m kdteach figures``: the lessons' figures at talk size, from the cache."""
    from kdteach.lesson.figures import write_figures
    from kdteach.protocol.experiment import Experiment

    exp = Experiment(settings, cache=not args.no_cache, progress=not args.quiet)
    if not args.quiet:
        print(f"cache: {_folders(exp.cache)}", flush=True)
    written = write_figures(exp, out, names=args.only, progress=not args.quiet,
                            with_checks=args.with_checks)
    for entry in written.left_out:
        print(f"left out {entry.name}: the optional check {entry.check} is not in the "
              "cache (--with-checks trains it)")
    drawn = {path.stem for path in written.paths}
    print(f"wrote {len(written.paths)} files ({len(drawn)} figures, PNG and SVG) to {out}/")
    return 0


def prepare_lessons(settings, args) -> int:
    """``python -m kdteach prepare``: train what the lessons need into the cache, with the
    overlap of ``reproduce``; afterwards every lesson opens and runs in seconds."""
    from kdteach.core.resources import intra_op_threads
    from kdteach.lesson.preparation import lesson_needs
    from kdteach.protocol.experiment import Experiment
    from kdteach.protocol.stages import lesson_stages

    exp = Experiment(settings, progress=not args.quiet)
    print(f"cache: {_folders(exp.cache)}", flush=True)
    start = time.perf_counter()
    # one intra-op thread on a CPU, as the lessons run (``make lab``): the same last bits
    with intra_op_threads(1 if settings.torch_device.type == "cpu" else None):
        exp.reproduce(lesson_stages(), overlap_teachers=overlap_teachers(settings))
        for need in lesson_needs(exp):
            need.get()
    print(f"the cache {exp.cache.folder} now holds everything the lessons need "
          f"({settings.profile} profile); {time.perf_counter() - start:.1f} s")
    return 0


def _folders(cache) -> str:
    """The cache's folders as one line: where it reads, and where new entries go."""
    if not cache.enabled:
        return "off"
    if len(cache.folders) == 1:
        return str(cache.folder)
    return (" then ".join(str(f) for f in cache.folders)
            + " (new entries go to the first that can be written)")


def check_cache(settings, args) -> int:
    """``python -m kdteach cache --check``: load what the lessons need, train nothing; one
    line per need, then the cache's state; exit 1 if anything is missing."""
    from kdteach.lesson.preparation import cache_state

    found = cache_state(settings)
    for what in found.cached:
        print(f"cached   {what}")
    for what in found.missing:
        print(f"missing  {what}")
    for what in found.optional:
        print(f"optional {what}")
    print(found.report())
    return 0 if not found.missing else EXIT_FAILED


def write_lessons(args) -> int:
    """``python -m kdteach lessons DIR``: the course's notebooks into DIR; exit 1 when a
    notebook the learner changed was kept, 2 when DIR cannot be used."""
    from kdteach.lesson.course_files import write_lessons as write

    try:
        done = write(args.folder, solutions=args.solutions, force=args.force)
    except OSError as exc:
        return _fail(f"error: cannot write the notebooks to {args.folder}: "
                     f"{exc.strerror or exc}", EXIT_USAGE)
    print(done.report())
    return EXIT_FAILED if done.kept else 0


def _one_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _fail(message: str, code: int) -> int:
    print(f"python -m kdteach: {message}", file=sys.stderr)
    return code


def _memory_message(exc: BaseException, settings) -> str | None:
    """The one-line message for running out of memory, or ``None`` for other errors."""
    from kdteach.core import resources

    if isinstance(exc, resources.NotEnoughMemory):
        return str(exc)
    kind = resources.ran_out_of(exc)
    if kind is None:
        return None
    what = f"running the experiment with {settings.n_runs} runs"
    return resources.out_of_memory_message(kind, what)


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return "kdteach: " + " ".join(str(message).split()) + "\n"


@contextlib.contextmanager
def one_line_warnings():
    """Show each warning as one line, ``kdteach: <message>``, without the source line
    Python adds by default; the previous format is restored afterwards (so a notebook
    that calls :func:`main` keeps Python's usual warnings)."""
    previous = warnings.formatwarning
    warnings.formatwarning = _format_warning
    try:
        yield
    finally:
        warnings.formatwarning = previous


def run(args) -> int:
    """Run the parsed command; every expected failure is one line on stderr and an exit
    code: 2 for bad arguments, 1 for a failed run, 130 for an interrupt."""
    if args.command == "stages":
        from kdteach.protocol.settings import get_settings

        print(stage_table(get_settings(args.profile, "cpu")))
        return 0
    if args.command == "lessons":
        return write_lessons(args)
    try:
        settings, out = prepare(args)
        if args.command == "figures":
            from kdteach.lesson.figures import by_name

            by_name(args.only)  # an unknown figure name is a usage error, found before training
    except (ValueError, RuntimeError) as exc:
        return _fail(f"error: {_one_line(exc)}", EXIT_USAGE)
    try:
        if args.command == "figures":
            return figures(settings, out, args)
        if args.command == "prepare":
            return prepare_lessons(settings, args)
        if args.command == "cache":
            return check_cache(settings, args)
        return reproduce(settings, out, args)
    except FloatingPointError as exc:
        return _fail(f"training failed: {_one_line(exc)}", EXIT_FAILED)
    except ResultsNotWritten as exc:
        return _fail(f"error: {exc}", EXIT_FAILED)
    except (MemoryError, RuntimeError) as exc:
        message = _memory_message(exc, settings)
        if message is None:
            raise
        return _fail(f"error: {message}", EXIT_FAILED)
    except KeyboardInterrupt:
        kept = ("the figures already written stay in place" if args.command == "figures" else
                "no result files were written (completed checkpoints stay in the cache)")
        print(f"\npython -m kdteach: interrupted; {kept}", file=sys.stderr)
        return EXIT_INTERRUPTED


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with one_line_warnings():
        return run(args)


if __name__ == "__main__":
    sys.exit(main())
