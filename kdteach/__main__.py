"""``python -m kdteach reproduce``: the seed's four stages, headless, with tables and files.

Writes to ``--out`` (default ``results/``): ``results.json``, ``results.csv`` (one row
per model and run) and the seed's figures as PNG. Every file is written under a
temporary name and renamed into place, and only once every stage has finished, so an
interrupted run leaves no partial results (its completed teachers stay in the cache).
Bad arguments print a one-line error and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


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


def build_parser() -> argparse.ArgumentParser:
    from .config import DEVICES, PROFILES

    parser = _Parser(prog="python -m kdteach", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    rep = commands.add_parser("reproduce", help="run the four stages and write the results")
    rep.add_argument("--profile", choices=PROFILES, default=None,
                     help="quick (CI) or full (the seed's protocol); default KDTEACH_PROFILE "
                          "or quick")
    rep.add_argument("--runs", type=_positive_int, help="number of paired runs")
    rep.add_argument("--epochs-teacher", type=_positive_int, help="teacher epochs")
    rep.add_argument("--epochs-student", type=_positive_int, help="student epochs")
    rep.add_argument("--device", choices=DEVICES, default=None, help="auto, cpu or cuda")
    rep.add_argument("--out", default="results", help="output folder (default: results/)")
    rep.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    rep.add_argument("--quiet", action="store_true", help="no progress bars and no tables")

    fig = commands.add_parser("figures", help="write every lesson figure at talk size (16:9), "
                                              "as PNG and SVG")
    fig.add_argument("--out", required=True, help="output folder for the figures")
    fig.add_argument("--only", nargs="+", metavar="NAME", help="just these figures (file names "
                     "without suffix, e.g. 03_grid_search)")
    fig.add_argument("--profile", choices=PROFILES, default=None,
                     help="quick or full; default KDTEACH_PROFILE or quick")
    fig.add_argument("--runs", type=_positive_int, help="number of paired runs")
    fig.add_argument("--epochs-teacher", type=_positive_int, help="teacher epochs")
    fig.add_argument("--epochs-student", type=_positive_int, help="student epochs")
    fig.add_argument("--device", choices=DEVICES, default=None, help="auto, cpu or cuda")
    fig.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    fig.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _check_writable(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=".kdteach-probe-", dir=folder)
    os.close(fd)
    os.unlink(probe)


def _write_atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def results_document(settings, stages: dict) -> dict:
    from .experiments import all_results, all_tests

    return {
        "profile": settings.profile,
        "settings": settings.as_dict(),
        "timings_s": {name: round(r.seconds, 3) for name, r in stages.items()},
        "models": all_results(stages),
        "tests": {name: t.as_dict() for name, t in all_tests(stages).items()},
    }


def write_outputs(out: Path, settings, stages: dict) -> list[Path]:
    """Write results.json, results.csv and the figures into ``out``, each atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from . import plots

    document = results_document(settings, stages)
    rows = pd.concat([r.runs for r in stages.values()], ignore_index=True)
    rows = rows.drop_duplicates(subset=["model", "run"], keep="first")
    written = []

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
    for path, writer in targets:
        _write_atomic(path, writer)
        written.append(path)
    for fig in figures.values():
        plt.close(fig)
    return written


def prepare(args):
    """Settings and output folder from the arguments; ValueError/RuntimeError when bad."""
    from .config import get_settings

    overrides = {
        "n_runs": args.runs,
        "epochs_teacher": args.epochs_teacher,
        "epochs_student": args.epochs_student,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    profile = args.profile or os.environ.get("KDTEACH_PROFILE") or "quick"
    settings = get_settings(profile, args.device, **overrides)
    if settings.n_runs < 2:
        raise ValueError("--runs must be at least 2: the paired t-tests need two runs")
    out = Path(args.out)
    try:
        _check_writable(out)
    except OSError as exc:
        raise ValueError(f"cannot write to --out {out}: {exc.strerror or exc}") from None
    return settings, out


def reproduce(settings, out: Path, args) -> int:
    from .experiments import Experiment

    exp = Experiment(settings, cache=not args.no_cache, progress=not args.quiet)
    start = time.perf_counter()
    stages = exp.reproduce()
    total = time.perf_counter() - start
    written = write_outputs(out, settings, stages)
    if not args.quiet:
        for result in stages.values():
            print("\n" + result.report())
        device = settings.torch_device
        print(f"\nAll stages: {total:.1f} s on {device} ({settings.profile} profile)")
        for path in written:
            print(f"wrote {path}")
    else:
        print(f"wrote {len(written)} files to {out}/ in {total:.1f} s")
    return 0


def figures(args) -> int:
    """``python -m kdteach figures``: the lessons' figures at talk size, from the cache."""
    from .experiments import Experiment
    from .talk_figures import by_name, write_figures

    try:
        settings, out = prepare(args)
        entries = by_name(args.only)
    except (ValueError, RuntimeError) as exc:
        print(f"python -m kdteach: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    exp = Experiment(settings, cache=not args.no_cache, progress=not args.quiet)
    try:
        written = write_figures(exp, out, names=[e.name for e in entries],
                                progress=not args.quiet)
    except FloatingPointError as exc:
        print(f"python -m kdteach: training failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\npython -m kdteach: interrupted; the figures already written stay in place",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"wrote {len(written)} files ({len(entries)} figures, PNG and SVG) to {out}/")
    return 0


def _one_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "figures":
        return figures(args)
    try:
        settings, out = prepare(args)
    except (ValueError, RuntimeError) as exc:
        print(f"python -m kdteach: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return reproduce(settings, out, args)
    except FloatingPointError as exc:
        print(f"python -m kdteach: training failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "\npython -m kdteach: interrupted; no result files were written "
            "(completed checkpoints stay in the cache)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
