"""An experiment's output directory: everything a run made, in one place.

``RunDir`` writes the resolved config (``config.json``), machine-readable
results (``results.json``, CSV tables), figures (PNG) and a short
``summary.md``. Expensive stages are stored under ``stages/`` as ``.npz``
files, each carrying the hash of the settings that made it and recomputed
when that hash is not the run's, so a run that is interrupted and started
again with the same config and output directory recomputes nothing it
finished.

A folder never mixes two runs. A run whose output folder holds another run
(a ``config.json`` with other settings) is built in the sibling folder
``.NAME.partial`` and swapped in by :meth:`RunDir.finish` once it is
complete: until then the previous run stays as it was, and a failed run
leaves it untouched. Work kept across settings (``cache/``, e.g. a width
sweep's finished runs, named by their own settings) is shared with the new
run. Every file is written whole or not at all (:mod:`ntkdepth.storage`).
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import os
import platform
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ntkdepth.storage import (
    DamagedFileError,
    _notify,
    atomic_write,
    jsonable,
    load_npz,
    read_json,
    save_npz,
    settings_hash,
    write_text,
)

__all__ = ["OutputFolder", "RunDir", "environment"]

_STAGE_KEY = "__settings_hash__"
# What a run writes besides the files it names in config.json ("outputs").
_RUN_ENTRIES = ("config.json", "stages", "cache")
_RUN_SUFFIXES = (".json", ".csv", ".png", ".md", ".npz", ".tmp")


def _read_config(path: Path):
    """The config.json of a run folder, or None where there is none or it is unreadable."""
    try:
        data = read_json(path / "config.json")
    except (FileNotFoundError, NotADirectoryError):
        return None
    return data if isinstance(data, dict) else None


def _link_tree(src: Path, dst: Path) -> None:
    """Hard links (copies where links fail) of every file under ``src`` that ``dst`` lacks."""
    for root, _, files in os.walk(src):
        target = dst / Path(root).relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for f in files:
            if not (target / f).exists():
                try:
                    os.link(Path(root) / f, target / f)
                except OSError:
                    shutil.copy2(Path(root) / f, target / f)


class OutputFolder:
    """A folder an experiment's outputs are written to: tables, JSON, figures, ``summary.md``.

    Every file is written whole or not at all; :meth:`file` names where a file
    is once the run is finished (``final``), which :class:`RunDir` may build
    elsewhere (``path``) until then.
    """

    def __init__(self, path: Path | str):
        self.path = self.final = Path(path)
        self._outputs: set[str] = set()

    def _write_json(self, name: str, data: Any) -> Path:
        import json

        return write_text(self.path / name, json.dumps(jsonable(data), indent=2) + "\n")

    def file(self, name: str) -> Path:
        """Where the run's file ``name`` is once the run is finished (for messages and headlines)."""
        self._outputs.add(name)
        return self.final / name

    def write_text(self, name: str, text: str) -> Path:
        self._outputs.add(name)
        return write_text(self.path / name, text)

    def write_json(self, name: str, data: Any) -> Path:
        self._outputs.add(name)
        return self._write_json(name, data)

    def write_csv(self, name: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
        buf = io.StringIO(newline="")
        writer = csv.writer(buf)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_format_cell(v) for v in row])
        self._outputs.add(name)
        return atomic_write(self.path / name, lambda tmp: tmp.write_text(buf.getvalue(), newline=""))

    def save_figure(self, fig, name: str, dpi: int = 150) -> Path:
        self._outputs.add(name)
        fmt = Path(name).suffix.lstrip(".") or None
        return atomic_write(self.path / name,
                            lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=fmt))

    def write_summary(self, text: str) -> Path:
        self._outputs.add("summary.md")
        return write_text(self.path / "summary.md", text.rstrip() + "\n")


class RunDir(OutputFolder):
    """The output directory of one experiment run.

    ``path`` is where the outputs are written while the run goes on: the
    output folder itself, or its sibling ``.NAME.partial`` where the output
    folder holds another run; :meth:`finish` moves them to ``final``.
    """

    def __init__(self, path: Path | str, *, experiment: str, preset: str, config: dict[str, Any]):
        self.final = Path(path)
        self.experiment = experiment
        self.config = config
        self.config_hash = settings_hash({"experiment": experiment, "config": config})
        self._partial = self.final.parent / f".{self.final.name}.partial"
        self._previous = self.final.parent / f".{self.final.name}.previous"
        self._recover()
        previous = _read_config(self.final)
        if previous is not None and previous.get("config_hash") != self.config_hash:
            # The folder holds another run: build this one beside it, swap when complete.
            held = _read_config(self._partial)
            if held is None or held.get("config_hash") != self.config_hash:
                shutil.rmtree(self._partial, ignore_errors=True)
            self._partial.mkdir(parents=True, exist_ok=True)
            if (self.final / "cache").is_dir():
                _link_tree(self.final / "cache", self._partial / "cache")
            self.path = self._partial
        else:
            shutil.rmtree(self._partial, ignore_errors=True)  # a run of other settings, unfinished
            self.path = self.final
            self.path.mkdir(parents=True, exist_ok=True)
        self._outputs = set()
        self._record = {
            "experiment": experiment,
            "preset": preset,
            "config": config,
            "config_hash": self.config_hash,
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "finished": None,
            "environment": environment(),
        }
        self._write_json("config.json", self._record)

    def record_data(self, name: str, record: dict[str, Any]) -> None:
        """Names the data the run read in ``config.json`` under ``data[name]``: files with their MD5
        and what was used (words, images, splits, vocabulary)."""
        self._record.setdefault("data", {})[name] = jsonable(record)
        self._write_json("config.json", self._record)

    def _recover(self) -> None:
        """Completes or undoes a swap that a killed process left half done."""
        if self._previous.exists():
            if self.final.is_dir() and not any(self.final.iterdir()):
                self.final.rmdir()  # made empty by a check that the folder can be written
            if self.final.exists():
                shutil.rmtree(self._previous)
            else:
                self._previous.rename(self.final)

    def finish(self) -> Path:
        """Marks the run complete and, if it was built beside the output folder, swaps it in."""
        self._record["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self._record["outputs"] = sorted(self._outputs)
        self._write_json("config.json", self._record)
        if self.path != self.final:
            old = _read_config(self.final) or {}
            known = set(old.get("outputs", ())) | set(_RUN_ENTRIES)
            for entry in self.final.iterdir():
                # Anything that is not the previous run's output stays in the folder.
                ours = entry.name in known or (
                    "outputs" not in old and entry.is_file() and entry.suffix in _RUN_SUFFIXES)
                if not ours and not (self.path / entry.name).exists():
                    entry.rename(self.path / entry.name)
            self.final.rename(self._previous)
            _notify(self._previous)  # a write point: a process killed here is recovered by _recover
            self.path.rename(self.final)
            shutil.rmtree(self._previous)
            self.path = self.final
        return self.final

    def settings(self, exclude: Iterable[str] = (), **extra) -> dict[str, Any]:
        """The run's config without the keys ``exclude`` and with ``extra``: what shapes a cached thing.

        Caches are keyed by everything that can shape them; leave out only keys
        that provably do not (e.g. the list of widths for one width's runs).
        """
        exclude = set(exclude)
        unknown = exclude - set(self.config)
        if unknown:
            raise KeyError(f"settings {sorted(unknown)} are not in the config")
        return {"experiment": self.experiment,
                **{k: v for k, v in self.config.items() if k not in exclude}, **extra}

    def cache_dir(self, name: str, identity: dict[str, Any]) -> Path:
        """A folder for work identified by ``identity`` alone, kept when other settings change.

        ``identity`` must hold every setting that shapes the work (see
        :meth:`settings`). A width sweep keys its runs by the settings that
        shape one run, not by the list of widths: adding a width to a finished
        sweep trains only the new width. The folder is named by the hash of
        ``identity`` and holds it in ``identity.json``, checked on reuse.
        """
        import json

        digest = settings_hash(identity)
        path = self.path / "cache" / f"{name}-{digest}"
        path.mkdir(parents=True, exist_ok=True)
        meta = path / "identity.json"
        if meta.exists():
            stored = read_json(meta, f"delete the folder {path} and run again")
            if settings_hash(stored) != digest:
                raise DamagedFileError(meta, f"it describes other settings than its folder's name "
                                       f"{digest}", f"delete the folder {path} and run again")
        else:
            write_text(meta, json.dumps(jsonable(identity), indent=2, sort_keys=True) + "\n")
        return path

    def stage(self, name: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Returns the arrays of stage ``name``, computing and storing them once per config.

        The stored file carries the run's settings hash; a file made under other
        settings is recomputed, one that cannot be read raises
        :class:`~ntkdepth.storage.DamagedFileError`.
        """
        stages = self.path / "stages"
        p = stages / f"{name}.npz"
        if p.exists():
            arrays = load_npz(p)
            if str(arrays.pop(_STAGE_KEY, "")) == self.config_hash:
                return arrays
        arrays = {k: np.asarray(v) for k, v in compute().items()}
        if _STAGE_KEY in arrays:
            raise ValueError(f"a stage may not hold an array named {_STAGE_KEY!r}")
        stages.mkdir(exist_ok=True)
        save_npz(p, {**arrays, _STAGE_KEY: np.asarray(self.config_hash)})
        return arrays


def _format_cell(v):
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return v


def environment() -> dict[str, Any]:
    """Where a run or a benchmark ran: versions, devices, CPUs, load, the checkout's commit."""
    import subprocess

    import jax
    import jaxlib

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    root = Path(__file__).resolve().parent.parent

    def git(*cmd) -> str:
        try:
            return subprocess.run(["git", "-C", str(root), *cmd], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") if (root / ".git").exists() else ""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "thread_env": {k: os.environ[k] for k in ("XLA_FLAGS", "OPENBLAS_NUM_THREADS",
                                                   "OMP_NUM_THREADS") if k in os.environ},
        "loadavg_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "ntkdepth_commit": commit or None,
        "ntkdepth_modified": bool(git("status", "--porcelain", "--", "ntkdepth")) if commit else None,
    }
