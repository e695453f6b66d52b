"""An experiment's tables, figures and summary, written from its results alone: ``report`` reads the
results as stored in ``results.json``, so ``ntkdepth report FOLDER`` redraws a finished run
without recomputing (docs/contributing.md#adding-an-experiment).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ntkdepth.config import ConfigError, from_mapping, recorded_config, shorten
from ntkdepth.runs import FinishedRun
from ntkdepth.storage import jsonable, read_json

__all__ = ["table", "table_records", "table_column", "markdown_table", "as_numbers", "claim", "time_label",
           "run_experiment", "report_results", "redraw"]


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> dict:
    """A table of results: ``{"columns": [...], "rows": [[...], ...]}``, each row as long as ``columns``."""
    columns = list(columns)
    rows = [list(r) for r in rows]
    for i, row in enumerate(rows):
        if len(row) != len(columns):
            raise ValueError(f"row {i} has {len(row)} cells for {len(columns)} columns {columns}")
    return {"columns": columns, "rows": rows}


def table_records(t: dict) -> list[dict]:
    """The rows of a :func:`table` as dictionaries keyed by column."""
    return [dict(zip(t["columns"], row)) for row in t["rows"]]


def table_column(t: dict, name: str) -> np.ndarray:
    """``[rows]``: the column ``name`` of a :func:`table` as floats ("inf" and "nan" read back)."""
    k = t["columns"].index(name)
    return np.array([row[k] for row in t["rows"]], dtype=np.float64)


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table: the header ``columns``, its rule, and a line for each row of
    formatted cells (``"|"`` in a cell is the caller's to escape)."""
    columns = list(columns)
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for i, row in enumerate(rows):
        row = list(row)
        if len(row) != len(columns):
            raise ValueError(f"row {i} has {len(row)} cells for {len(columns)} columns {columns}")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def as_numbers(obj):
    """``obj`` (results as read back from JSON) with the strings "inf", "-inf" and "nan" as floats."""
    if isinstance(obj, dict):
        return {k: as_numbers(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [as_numbers(v) for v in obj]
    return float(obj) if obj in ("inf", "-inf", "nan") else obj


def claim(holds: bool, true: str, false: str) -> str:
    """``true`` where the numbers show it, else ``false``: a finding that follows its numbers."""
    return true if holds else false


def time_label(t: float, tex: bool = False) -> str:
    """A stopping time as written in tables: ``inf`` (or TeX's infinity) for ``t = inf``."""
    if np.isinf(t):
        return r"$\infty$" if tex else "inf"
    return f"{t:g}"


def _round_trip(results: dict) -> dict:
    if not isinstance(results, dict):
        raise TypeError(f"run() must return a dict of results, not {type(results).__name__}")
    return json.loads(json.dumps(jsonable(results)))


def report_results(module, config, results: dict, out) -> dict:
    """Writes the tables of ``results`` as CSV, then the experiment's own report; its headline."""
    from ntkdepth.plotting import style

    for name, t in (results.get("tables") or {}).items():
        out.write_csv(name, t["columns"], t["rows"])
    with style():
        return module.report(config, results, out) or {}


def run_experiment(module, config, out) -> dict:
    """Runs an experiment into ``out`` (a :class:`~ntkdepth.runs.RunDir`): results, tables, report.

    Returns the headline numbers ``report`` gives for the command line.
    """
    results = _round_trip(module.run(config, out))
    out.write_json("results.json", results)
    return report_results(module, config, results, out)


def redraw(folder: Path | str) -> dict:
    """Rewrites a finished run's CSV tables, figures and summary from its config and results.

    ``folder`` holds ``config.json`` (the experiment and its settings) and
    ``results.json``; nothing is recomputed. Returns the report's headline.
    """
    from ntkdepth.experiments import get

    folder = Path(folder)
    shown = shorten(str(folder), 200)
    if not folder.exists():
        raise ConfigError(f"{shown} does not exist; name the output folder of a finished run")
    if not folder.is_dir():
        raise ConfigError(f"{shown} is a file; name the output folder of a finished run")
    for name in ("config.json", "results.json"):
        if not (folder / name).is_file():
            raise ConfigError(f"{shown} has no {name}: not the folder of a finished run")
    again = f"run the experiment into {shown} again"
    record = read_json(folder / "config.json", again)
    results = read_json(folder / "results.json", again)
    if not (isinstance(record, dict) and isinstance(record.get("experiment"), str)
            and isinstance(record.get("config"), dict)):
        raise ConfigError(f"{shown}/config.json is not the record of a run (it names no experiment and "
                          f"its settings); {again}")
    if not isinstance(results, dict):
        raise ConfigError(f"{shown}/results.json holds a {type(results).__name__}, not the results of a "
                          f"run; {again}")
    experiment = get(record["experiment"])
    module = experiment.module
    settings = recorded_config(module.Config, record["config"])
    config = from_mapping(module.Config, settings, source=f"{shown}/config.json", what=f"experiment {experiment.name!r}")
    try:
        return report_results(module, config, results, FinishedRun(folder, record))
    except (KeyError, IndexError, TypeError, AttributeError) as err:
        # The report reads only results.json: a shape it does not know came from elsewhere.
        raise ConfigError(f"{shown}/results.json does not hold the results of {experiment.name} as this "
                          f"version writes them ({type(err).__name__}: {shorten(str(err))}); {again}") from None
