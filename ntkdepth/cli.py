"""The ``ntkdepth`` command: list the experiments, run one with a preset.

    ntkdepth list
    ntkdepth run NAME [--preset smoke|cpu|paper] [--set key=value ...] [--out DIR]
    ntkdepth show NAME              # the settings of an experiment and their presets
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ntkdepth.config import ConfigError, describe, parse_overrides, to_dict

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
    from ntkdepth.runs import RunDir

    exp = get(args.name)
    config = exp.config(args.preset, parse_overrides(args.set or []))
    out = Path(args.out) if args.out else Path("runs") / exp.name / args.preset
    run_dir = RunDir(out, experiment=exp.name, preset=args.preset, config=to_dict(config))
    print(f"ntkdepth run {exp.name} --preset {args.preset} -> {out}/", flush=True)
    start = time.perf_counter()
    headline = exp.module.run(config, run_dir)
    run_dir.finish()  # a folder holding another run keeps it until this one is complete
    elapsed = time.perf_counter() - start
    print(f"done in {elapsed:.1f} s; outputs in {out}/")
    for key, value in (headline or {}).items():
        print(f"  {key}: {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ntkdepth", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments and their presets").set_defaults(fn=_cmd_list)
    show = sub.add_parser("show", help="an experiment's settings and preset values")
    show.add_argument("name")
    show.set_defaults(fn=_cmd_show)
    run = sub.add_parser("run", help="run an experiment")
    run.add_argument("name")
    run.add_argument("--preset", default="cpu", help="smoke, cpu or paper (default: cpu)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one setting")
    run.add_argument("--out", help="output directory (default: runs/NAME/PRESET)")
    run.set_defaults(fn=_cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ConfigError, FileNotFoundError, MemoryError, FloatingPointError) as err:
        # Settings, missing data, a width that does not fit, a diverging run: the
        # message says what to change; a traceback would not help.
        print(f"ntkdepth: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
