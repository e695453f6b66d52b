"""An experiment's output folder: everything a run made in one place, stages kept for resuming, and
nothing touched that no run wrote (README.md, "Experiments").
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import errno
import io
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ntkdepth.config import ConfigError, shorten
from ntkdepth.storage import (
    DamagedFileError,
    atomic_write,
    jsonable,
    load_npz,
    notify_write,
    read_json,
    save_npz,
    settings_hash,
    write_json,
    write_text,
)

__all__ = ["FinishedRun", "OutputFolder", "RunDir", "environment", "resolve_folder"]

_STAGE_KEY = "__settings_hash__"
_RECORD = "config.json"
# The entries of a run recorded before config.json listed them: the folders any run may hold
# (its outputs, listed when it finished, are added).
_UNLISTED_RUN_ENTRIES = (_RECORD, "stages", "cache")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _is_temporary_of(name: str, entries: set[str]) -> bool:
    """Whether ``name`` is the temporary file that :func:`~ntkdepth.storage.atomic_write` leaves
    of one of ``entries`` when the process is killed in the middle of a write."""
    m = re.fullmatch(r"\.(.+)\.\d+\.tmp(\.[^/]*)?", name)
    return bool(m) and m.group(1) in entries


def _listed(record: dict | None) -> set[str]:
    """The entries of a run folder that its record (config.json) names as the run's."""
    if record is None:
        return set()
    entries = record.get("entries")
    if not isinstance(entries, list):  # recorded before the entries were listed
        outputs = record.get("outputs")
        entries = [*_UNLISTED_RUN_ENTRIES, *(o.split("/")[0] for o in outputs or () if isinstance(o, str))]
    return {e for e in entries if isinstance(e, str) and e not in ("", ".", "..") and "/" not in e} | {_RECORD}


def _read_record(folder: Path) -> tuple[dict | None, bool]:
    """``(record, foreign)``: the run record in ``folder/config.json`` (None where there is none),
    and whether a config.json is there that is not a run's record."""
    path = folder / _RECORD
    if path.is_symlink() or path.exists() and not path.is_file():
        return None, True
    try:
        data = read_json(path, f"so which entries of {folder} a run wrote is unknown; if the folder "
                               "holds nothing of yours, delete it and run again, else choose another folder")
    except FileNotFoundError as err:
        if isinstance(err, DamagedFileError):
            raise
        return None, False
    ours = isinstance(data, dict) and isinstance(data.get("experiment"), str) and "config_hash" in data
    return (data, False) if ours else (None, True)


def _inspect(folder: Path) -> tuple[dict | None, list[str]]:
    """``(record, foreign)``: the run record of ``folder`` and its entries that no run listed
    (sorted; folders end in ``/``). A folder that does not exist has neither."""
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return None, []
    record, foreign_record = _read_record(folder)
    listed = _listed(record)
    foreign = []
    for name in names:
        path = folder / name
        ours = (name in listed and not (name == _RECORD and foreign_record)
                or _is_temporary_of(name, listed | {_RECORD}))
        if not ours or path.is_symlink():  # a run writes no links
            foreign.append(name + "/" if path.is_dir() and not path.is_symlink() else name)
    return record, foreign


def _entry_list(entries: list[str], limit: int = 12) -> str:
    shown = ", ".join(shorten(e, 80) for e in entries[:limit])
    return shown + (f" and {len(entries) - limit} more" if len(entries) > limit else "")


def _foreign_error(where: str, foreign: list[str], remedy: str) -> ConfigError:
    n = len(foreign)
    return ConfigError(f"{where} holds {n} entr{'y' if n == 1 else 'ies'} that no ntkdepth run wrote "
                       f"({_entry_list(foreign)}); a run replaces only what runs wrote: {remedy}")


def resolve_folder(path: Path | str, what: str = "the output folder") -> Path:
    """``path`` as an absolute path without ``.``, ``..`` or links; :class:`~ntkdepth.config.ConfigError` where it
    names a file, lies under one, is the root, or is too long for the file system."""
    given = shorten(str(path), 200)
    try:
        folder = Path(path).expanduser().resolve()
        for p in [folder, *folder.parents]:
            if p.exists():
                if not p.is_dir():
                    where = "is" if p == folder else f"lies under {p}, which is"
                    raise ConfigError(f"{what} {given} {where} a file, not a folder; choose a folder")
                break
    except RuntimeError as err:  # a loop of symbolic links
        raise ConfigError(f"{what} {given} cannot be resolved ({err}); choose another folder") from None
    except OSError as err:
        if err.errno == errno.ENAMETOOLONG:
            raise ConfigError(
                f"{what} {given} is too long for the file system ({len(str(path)):,} characters; a "
                "name may have at most 255 bytes): choose a shorter path") from None
        raise ConfigError(f"{what} {given} cannot be used ({err.strerror or err}); choose another "
                          "folder") from None
    if folder.parent == folder:
        raise ConfigError(f"{what} {given} is the root of the file system; choose a folder of its own")
    return folder


def _check_writable(folder: Path, what: str) -> None:
    """Refuses ``folder`` (or, where it does not exist yet, the folder it would be made in) when
    no file can be created there; creates nothing that stays."""
    existing = next(p for p in [folder, *folder.parents] if p.exists())
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ConfigError(f"{what} cannot be written ({err.strerror or err}); choose a writable "
                          "folder") from None


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

    def _claim(self, entry: str) -> None:
        """Called before the entry ``entry`` of the folder is written (a file or a folder)."""

    def _stored(self, entry: str) -> None:
        """Called once a file of the entry ``entry`` is written whole."""

    def _write_json(self, name: str, data: Any) -> Path:
        return write_json(self.path / name, data)

    def _write(self, name: str, write: Callable[[Path], Path]) -> Path:
        self._outputs.add(name)
        entry = Path(name).parts[0]
        self._claim(entry)
        path = write(self.path / name)
        self._stored(entry)
        return path

    def file(self, name: str) -> Path:
        """Where the run's file ``name`` is once the run is finished (for messages and headlines)."""
        self._outputs.add(name)
        return self.final / name

    def write_text(self, name: str, text: str) -> Path:
        return self._write(name, lambda path: write_text(path, text))

    def write_json(self, name: str, data: Any) -> Path:
        return self._write(name, lambda path: self._write_json(name, data))

    def write_csv(self, name: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
        buf = io.StringIO(newline="")
        writer = csv.writer(buf)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_format_cell(v) for v in row])
        text = buf.getvalue()
        return self._write(name, lambda path: atomic_write(path, lambda tmp: tmp.write_text(text, newline=""),
                                                           len(text.encode())))

    def save_figure(self, fig, name: str, dpi: int = 150) -> Path:
        fmt = Path(name).suffix.lstrip(".") or None
        return self._write(name, lambda path: atomic_write(
            path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=fmt)))

    def write_summary(self, text: str) -> Path:
        return self._write("summary.md", lambda path: write_text(path, text.rstrip() + "\n"))


class FinishedRun(OutputFolder):
    """A finished run's folder, its outputs redrawn: a file its ``config.json`` does not list yet
    is added to the list before it is written, and one that no run wrote is never overwritten."""

    def __init__(self, path: Path | str, record: dict[str, Any]):
        super().__init__(path)
        self._record = record
        self._entries = _listed(record)

    def _claim(self, entry: str) -> None:
        if entry in self._entries:
            return
        if os.path.lexists(self.path / entry):
            raise ConfigError(f"{self.path / entry} was not written by the run in {self.path}: move it "
                              "out of the folder and redraw again")
        self._entries.add(entry)
        self._record["entries"] = sorted(self._entries)
        self._record["outputs"] = sorted({*self._record.get("outputs", ()), *self._outputs})
        self._write_json(_RECORD, self._record)


class RunDir(OutputFolder):
    """The output directory of one experiment run.

    ``path`` is where the outputs are written while the run goes on: the
    output folder itself, or its sibling ``.NAME.partial`` where the output
    folder holds a run of other settings; :meth:`finish` moves them to
    ``final``. The folder is resolved first (``.``, ``..``, links) and
    refused (:class:`~ntkdepth.config.ConfigError`) where it holds entries
    that no run listed, or a run of another experiment or preset unless
    ``force``; ``what`` names it in messages (e.g. ``"--out"``). Nothing is
    created before the run writes its first file.
    """

    def __init__(self, path: Path | str, *, experiment: str, preset: str, config: dict[str, Any],
                 force: bool = False, what: str = "the output folder"):
        self.final = resolve_folder(path, what)
        given = shorten(str(path), 200)
        self._where = f"{what} {given}" + ("" if given == str(self.final) else f" ({self.final})")
        self.experiment = experiment
        self.config = config
        self.config_hash = settings_hash({"experiment": experiment, "config": config})
        self._partial = self.final.with_name(f".{self.final.name}.partial")
        self._previous = self.final.with_name(f".{self.final.name}.previous")
        self._outputs = set()
        self._recover()
        record, foreign = _inspect(self.final)
        if foreign:
            raise _foreign_error(self._where, foreign, "choose an empty or new folder, or move those "
                                 "entries out of it")
        in_place = record is None or record.get("config_hash") == self.config_hash
        base = record
        if not in_place:
            theirs = (record.get("experiment"), record.get("preset"))
            if theirs != (experiment, preset) and not force:
                state = "finished" if record.get("finished") else "unfinished"
                raise ConfigError(
                    f"{self._where} holds a {state} run of {theirs[0]} (preset {theirs[1]}), not of "
                    f"{experiment} (preset {preset}); replacing it needs --force, or choose another folder")
            if os.path.lexists(self._partial) and not self._partial.is_dir():
                raise ConfigError(f"{self._partial}, where a run into {self._where} is built until it is "
                                  "complete, is a file; move it away")
            held, stray = _inspect(self._partial)
            if stray:
                raise _foreign_error(self._partial, stray, f"a run into {self._where} is built there "
                                     "until it is complete; move those entries out of it")
            base = held if held is not None and held.get("config_hash") == self.config_hash else None
        self.path = self.final if in_place else self._partial
        _check_writable(self.path if in_place else self.final.parent, self._where)
        self._entries = _listed(base)
        self._resume = base is not None  # the folder written to holds this run, unfinished or not
        try:
            self._before = (self.path / _RECORD).read_bytes() if base is not None else None
        except OSError:
            self._before = None
        self._begun = False
        self.replaced = False  # whether finish() put a new folder in the place of the old one
        self._made: list[Path] = []  # folders this process created, outermost first
        self._new_caches: list[Path] = []
        self._wrote: set[str] = set()  # entries this process began to write
        self._kept: set[str] = set()  # those of which it wrote a file whole (config.json aside)
        self._record = {
            "experiment": experiment,
            "preset": preset,
            "config": config,
            "config_hash": self.config_hash,
            "started": _now(),
            "finished": None,
            "environment": environment(),
        }

    def _save_record(self) -> None:
        self._record["entries"] = sorted(self._entries)
        self._write_json(_RECORD, self._record)

    def _begin(self) -> None:
        """Creates the folder the run is written to and its config.json, once."""
        if self._begun:
            return
        if os.path.lexists(self._partial) and (self.path == self.final or not self._resume):
            self._remove_unfinished(self._partial)  # a run of other settings that never finished
        self._made = [p for p in [self.path, *self.path.parents] if not p.exists()][::-1]
        self.path.mkdir(parents=True, exist_ok=True)
        if self.path == self._partial and (self.final / "cache").is_dir():
            _link_tree(self.final / "cache", self._partial / "cache")
            self._entries.add("cache")
        # Every run writes these (ntkdepth.reporting): listed at once, not each at its first write.
        self._entries |= {_RECORD, "results.json", "summary.md"}
        self._begun = True
        self._save_record()

    def _remove_unfinished(self, folder: Path) -> None:
        record, foreign = _inspect(folder)
        if record is None or foreign:
            return  # not a run's folder alone: left as it is
        shutil.rmtree(folder)

    def _stored(self, entry: str) -> None:
        self._kept.add(entry)

    def _claim(self, entry: str) -> None:
        self._begin()
        self._wrote.add(entry)
        if entry not in self._entries:
            self._entries.add(entry)
            self._save_record()

    def record_data(self, name: str, record: dict[str, Any]) -> None:
        """Names the data the run read in ``config.json`` under ``data[name]``: files with their MD5
        and what was used (words, images, splits, vocabulary)."""
        self._record.setdefault("data", {})[name] = jsonable(record)
        if self._begun:
            self._save_record()

    def _recover(self) -> None:
        """Completes or undoes a swap that a killed process left half done."""
        if not os.path.lexists(self._previous):
            return
        if self.final.is_dir() and not self.final.is_symlink() and not any(self.final.iterdir()):
            self.final.rmdir()  # an empty folder made in its place
        if not os.path.lexists(self.final):
            self._previous.rename(self.final)
            return
        record, foreign = _inspect(self._previous)
        if record is None or foreign:
            raise _foreign_error(self._previous, foreign or ["no config.json"], "it is left from a run that "
                                 f"replaced {self._where}; move what is yours out of it and delete it")
        shutil.rmtree(self._previous)

    def finish(self) -> Path:
        """Marks the run complete and, if it was built beside the output folder, swaps it in."""
        self._begin()
        self._record["finished"] = _now()
        self._record["outputs"] = sorted(self._outputs)
        self._save_record()
        if self.path != self.final:
            _, foreign = _inspect(self.final)
            if foreign:
                raise _foreign_error(self._where, foreign, f"the new run is complete in {self.path} and was "
                                     "not swapped in; move those entries out of the folder and run the same "
                                     "command again (the finished run is reused)")
            self.replaced = os.path.lexists(self.final)
            if self.replaced:
                self.final.rename(self._previous)
                notify_write(self._previous)  # a write point: a process killed here is recovered by _recover
                self.path.rename(self.final)
                shutil.rmtree(self._previous)
            else:
                self.path.rename(self.final)
            self.path = self.final
        return self.final

    def abandon(self) -> None:
        """After a failure: removes what the run created if it computed nothing.

        A stage, an output or a finished piece of a cache is kept (a new run
        resumes from it); a run that wrote nothing else leaves the folders as
        it found them: no config.json, no folder it made.
        """
        if not self._begun:
            return
        with contextlib.suppress(OSError):
            for d in self._new_caches:
                if d.is_dir() and {p.name for p in d.iterdir()} <= {"identity.json"}:
                    shutil.rmtree(d)
            if self._kept or any(d.exists() for d in self._new_caches):
                return
            if self.path == self._partial and not self._resume:
                shutil.rmtree(self._partial)
                return
            if self._before is None:
                (self.path / _RECORD).unlink(missing_ok=True)
            else:
                atomic_write(self.path / _RECORD, lambda tmp: tmp.write_bytes(self._before))
            cache = self.path / "cache"
            if "cache" in self._wrote and cache.is_dir() and not any(cache.iterdir()):
                cache.rmdir()
            for d in reversed(self._made):
                d.rmdir()

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
        digest = settings_hash(identity)
        self._claim("cache")
        path = self.path / "cache" / f"{name}-{digest}"
        if not path.exists():
            self._new_caches.append(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = path / "identity.json"
        if meta.exists():
            stored = read_json(meta, f"delete the folder {path} and run again")
            if settings_hash(stored) != digest:
                raise DamagedFileError(meta, f"it describes other settings than its folder's name "
                                       f"{digest}", f"delete the folder {path} and run again")
        else:
            write_json(meta, identity, sort_keys=True)
        return path

    def stage(self, name: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Returns the arrays of stage ``name``, computing and storing them once per config.

        The stored file carries the run's settings hash; a file made under other
        settings is recomputed, one that cannot be read raises
        :class:`~ntkdepth.storage.DamagedFileError`.
        """
        p = self.path / "stages" / f"{name}.npz"
        if p.exists():
            arrays = load_npz(p)
            if str(arrays.pop(_STAGE_KEY, "")) == self.config_hash:
                return arrays
        arrays = {k: np.asarray(v) for k, v in compute().items()}
        if _STAGE_KEY in arrays:
            raise ValueError(f"a stage may not hold an array named {_STAGE_KEY!r}")
        self._claim("stages")
        p.parent.mkdir(exist_ok=True)
        save_npz(p, {**arrays, _STAGE_KEY: np.asarray(self.config_hash)})
        self._stored("stages")
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
