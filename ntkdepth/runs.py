"""An experiment's output directory: everything a run made, in one place.

``RunDir`` writes the resolved config (``config.json``), machine-readable
results (``results.json``, CSV tables), figures (PNG) and a short
``summary.md``. Expensive stages are stored under ``stages/`` as ``.npz``
files keyed by the config, so a run that is interrupted and started again
with the same config and output directory recomputes nothing it finished.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import json
import platform
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RunDir"]


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if hasattr(obj, "__array__"):
        return _jsonable(np.asarray(obj))
    if isinstance(obj, (float, np.floating)):
        # JSON has no inf or NaN: they are written as the strings "inf", "-inf", "nan".
        return float(obj) if np.isfinite(obj) else str(float(obj))
    return obj


class RunDir:
    """The output directory of one experiment run."""

    def __init__(self, path: Path | str, *, experiment: str, preset: str, config: dict[str, Any]):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.experiment = experiment
        self.config = config
        self.config_hash = hashlib.sha256(
            json.dumps(_jsonable(config), sort_keys=True).encode()
        ).hexdigest()[:16]
        previous = self._read_json("config.json")
        stages = self.path / "stages"
        if previous and previous.get("config_hash") != self.config_hash and stages.exists():
            # Stored stages belong to another config: they must not be reused.
            shutil.rmtree(stages)
        self.write_json(
            "config.json",
            {
                "experiment": experiment,
                "preset": preset,
                "config": config,
                "config_hash": self.config_hash,
                "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "environment": _environment(),
            },
        )

    def _read_json(self, name: str):
        p = self.path / name
        if not p.exists():
            return None
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError:
            return None

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, data: Any) -> Path:
        p = self.path / name
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(json.dumps(_jsonable(data), indent=2) + "\n")
        tmp.replace(p)
        return p

    def write_csv(self, name: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
        p = self.path / name
        with open(p, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for row in rows:
                writer.writerow([_format_cell(v) for v in row])
        return p

    def save_figure(self, fig, name: str, dpi: int = 150) -> Path:
        p = self.path / name
        fig.savefig(p, dpi=dpi, bbox_inches="tight")
        return p

    def write_summary(self, text: str) -> Path:
        p = self.path / "summary.md"
        p.write_text(text.rstrip() + "\n")
        return p

    def cache_dir(self, name: str, identity: dict[str, Any]) -> Path:
        """A folder for work identified by ``identity`` alone, kept when other settings change.

        A width sweep keys its runs by the settings that shape one run, not by
        the list of widths: adding a width to a finished sweep trains only the
        new width.
        """
        digest = hashlib.sha256(
            json.dumps(_jsonable(identity), sort_keys=True).encode()
        ).hexdigest()[:16]
        path = self.path / "cache" / f"{name}-{digest}"
        path.mkdir(parents=True, exist_ok=True)
        (path / "identity.json").write_text(json.dumps(_jsonable(identity), indent=2) + "\n")
        return path

    def stage(self, name: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Returns the arrays of stage ``name``, computing and storing them once per config."""
        stages = self.path / "stages"
        p = stages / f"{name}.npz"
        if p.exists():
            with np.load(p) as data:
                return {k: data[k] for k in data.files}
        arrays = {k: np.asarray(v) for k, v in compute().items()}
        stages.mkdir(exist_ok=True)
        tmp = stages / f"{name}.tmp.npz"
        np.savez(tmp, **arrays)
        tmp.replace(p)
        return arrays


def _format_cell(v):
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return v


def _environment() -> dict[str, Any]:
    import jax

    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "machine": platform.machine(),
    }
