"""The ``ntkdepth`` command: list, show, run and redraw experiments, and fetch their data.

``python -m ntkdepth`` is the same command (docs/experiments.md).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import tempfile
import time
from pathlib import Path

from ntkdepth.config import ConfigError, describe, parse_overrides, shorten, to_dict

__all__ = ["main"]


def _cmd_list(args) -> int:
    from ntkdepth.experiments import discover

    experiments = discover()
    width = max(len(n) for n in experiments)
    for name, exp in experiments.items():
        print(f"{name:<{width}}  [{', '.join(exp.presets)}]  {exp.description}")
    return 0


def _cmd_show(args) -> int:
    from ntkdepth.experiments import get

    exp = get(args.name)
    print(f"{exp.name}: {exp.description}\n")
    presets = {p: to_dict(exp.config(p)) for p in exp.presets}
    for key, tp, default, help_text in describe(exp.module.Config):
        values = "  ".join(f"{p}={presets[p][key]!r}" for p in presets)
        print(f"  {key} ({tp}): {help_text}\n      {values}")
    return 0


def _cmd_run(args) -> int:
    from ntkdepth.experiments import get
    from ntkdepth.reporting import run_experiment
    from ntkdepth.runs import RunDir

    exp = get(args.name)
    config = exp.config(args.preset, parse_overrides(args.set or []))
    out = Path(args.out) if args.out else Path("runs") / exp.name / args.preset
    if args.distributed:  # one process of several (docs/distributed.md)
        from ntkdepth.training.distributed import initialize_distributed, is_writer

        initialize_distributed()
        if not is_writer():  # process 0 writes the outputs; sweeps share its folder
            out = Path(tempfile.mkdtemp(prefix="ntkdepth-process-"))
    run_dir = RunDir(out, experiment=exp.name, preset=args.preset, config=to_dict(config),
                     force=args.force, what="--out" if args.out else "the default output folder")
    args.written = run_dir.final  # where a full disk is reported
    print(f"ntkdepth run {exp.name} --preset {args.preset} -> {shorten(str(out), 200)}/", flush=True)
    start = time.perf_counter()
    cwd = os.getcwd()
    try:
        headline = run_experiment(exp.module, config, run_dir)
        run_dir.finish()  # a folder holding another run keeps it until this one is complete
    except BaseException:
        run_dir.abandon()  # a run that computed nothing leaves nothing behind
        raise
    if run_dir.replaced and Path(cwd).is_relative_to(run_dir.final):
        print(f"note: the run replaced the folder {run_dir.final} as a whole; a shell inside it sees the "
              f"new run after `cd {run_dir.final}`")
        os.chdir(run_dir.final)
    elapsed = time.perf_counter() - start
    print(f"done in {elapsed:.1f} s; outputs in {shorten(str(out), 200)}/")
    for key, value in (headline or {}).items():
        print(f"  {key}: {value}")
    return 0


def _cmd_report(args) -> int:
    from ntkdepth.reporting import redraw

    headline = redraw(args.folder)
    print(f"redrawn from {Path(args.folder) / 'results.json'}")
    for key, value in headline.items():
        print(f"  {key}: {value}")
    return 0


def _cmd_data_fetch(args) -> int:
    if args.dataset == "mnist":
        from ntkdepth.data.mnist import fetch_mnist

        paths = fetch_mnist(args.dir, args.splits, progress=not args.quiet)
    else:
        if args.splits != ["train", "test"]:
            raise ConfigError("--splits applies to mnist only")
        from ntkdepth.data.text8 import fetch_text8

        paths = [fetch_text8(args.dir, progress=not args.quiet)]
    for p in paths:
        print(p)
    return 0


def _cmd_data_where(args) -> int:
    from ntkdepth.data.files import DATA_ENV, data_roots, user_data_dir

    env = os.environ.get(DATA_ENV)
    print(f"fetch into: {user_data_dir()}  ({'$' + DATA_ENV if env else 'per-user cache; set $' + DATA_ENV + ' to change'})")
    for i, root in enumerate(data_roots()):
        role = "read first" if i == 0 else "read-only fallback"
        state = "" if root.is_dir() else "  (absent)"
        print(f"{role}: {root}{state}")
    return 0


def _presets_help() -> str:
    from ntkdepth.experiments import PRESETS, discover

    extra: dict[str, list[str]] = {}
    try:
        for name, exp in discover().items():
            for preset in exp.presets[len(PRESETS):]:
                extra.setdefault(preset, []).append(name)
    except (ConfigError, FileNotFoundError):  # a broken script is named when it is run
        pass
    own = "; ".join(f"{p} ({', '.join(names)})" for p, names in sorted(extra.items()))
    return (f"{', '.join(PRESETS)} (default: cpu)" + (f"; some experiments have their own: {own}" if own else "")
            + "; ntkdepth list shows each experiment's")


def build_parser() -> argparse.ArgumentParser:
    from ntkdepth import __version__

    parser = argparse.ArgumentParser(prog="ntkdepth", description=__doc__.split("\n")[0].replace("``", ""))
    parser.add_argument("--version", action="version", version=f"ntkdepth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("list", help="list the experiments and their presets").set_defaults(fn=_cmd_list)
    show = sub.add_parser("show", help="an experiment's settings and preset values")
    show.add_argument("name")
    show.set_defaults(fn=_cmd_show)
    run = sub.add_parser("run", help="run an experiment")
    run.add_argument("name")
    run.add_argument("--preset", default="cpu", help=_presets_help())
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override one setting; a list is written like widths=[64,256]")
    run.add_argument("--out", help="output directory (default: runs/NAME/PRESET); it may hold a run, "
                                   "nothing else")
    run.add_argument("--force", action="store_true",
                     help="replace a run of another experiment or preset that --out holds")
    run.add_argument("--distributed", action="store_true",
                     help="one of several processes: jax.distributed.initialize() (see docs/distributed.md)")
    run.set_defaults(fn=_cmd_run)
    report = sub.add_parser(
        "report", help="redraw a finished run's tables, figures and summary from its results.json"
    )
    report.add_argument("folder", help="the run's output folder (holds config.json, results.json)")
    report.set_defaults(fn=_cmd_report)
    data = sub.add_parser("data", help="datasets: fetch them, see where they live")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    fetch = data_sub.add_parser(
        "fetch", help="download the official files (MD5-checked) into the user data directory"
    )
    fetch.add_argument("dataset", choices=["mnist", "text8"])
    fetch.add_argument("--dir", help="target folder (default: DATASET/ in the user data directory)")
    fetch.add_argument("--splits", nargs="+", choices=["train", "test"], default=["train", "test"],
                       help="MNIST splits (default: both)")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    fetch.set_defaults(fn=_cmd_data_fetch)
    data_sub.add_parser("where", help="where datasets are read from and fetched to").set_defaults(
        fn=_cmd_data_where
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from ntkdepth.data.files import DataError
    from ntkdepth.storage import DiskFullError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # `ntkdepth` alone: what it does and its commands
        parser.print_help()
        return 0
    try:
        return args.fn(args)
    except (ConfigError, DataError, FileNotFoundError, MemoryError, FloatingPointError) as err:
        # Settings, missing or unusable data, a width that does not fit, a diverging
        # run: the message says what to change; a traceback would not help.
        print(f"ntkdepth: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except OSError as err:
        if err.errno == errno.ENOSPC:
            if not isinstance(err, DiskFullError):  # written by a library (a checkpoint, say)
                err = DiskFullError(err.filename or getattr(args, "written", None) or ".")
            print(f"ntkdepth: error: {err.strerror}; free some space and run the same command again "
                  "(what was finished is kept)", file=sys.stderr)
            return 2
        if err.errno == errno.ENAMETOOLONG:
            print(f"ntkdepth: error: the path {shorten(str(err.filename), 200)} is too long for the file "
                  "system; choose a shorter one", file=sys.stderr)
            return 2
        if args.fn is not _cmd_data_fetch:
            raise
        # A failed download: no network, a wrong checksum, a full disk. The fetch
        # removed what it had written.
        print(f"ntkdepth: error: {err}; nothing was written", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
