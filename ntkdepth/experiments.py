"""Finds and runs the experiment scripts in ``experiments/`` with presets from ``configs/``.

An experiment script defines::

    NAME: str                      # what `ntkdepth run NAME` calls it
    DESCRIPTION: str               # one line for `ntkdepth list`
    Config: type                   # a frozen dataclass of its settings (ntkdepth.config)
    def run(config, out: RunDir) -> dict   # writes its outputs, returns headline numbers

and its presets are ``configs/NAME/{smoke,cpu,paper}.toml``.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ntkdepth.config import ConfigError, load_preset

__all__ = ["Experiment", "project_dirs", "discover", "get", "PRESETS"]

PRESETS = ("smoke", "cpu", "paper")


def project_dirs() -> tuple[Path, Path]:
    """``(experiments_dir, configs_dir)``: the checkout's, or the copies inside a wheel."""
    package = Path(__file__).resolve().parent
    for root in (package.parent, package / "_bundled"):
        if (root / "experiments").is_dir() and (root / "configs").is_dir():
            return root / "experiments", root / "configs"
    raise FileNotFoundError(
        f"no experiments/ and configs/ folders next to {package} or in {package / '_bundled'}"
    )


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    module: ModuleType
    configs_dir: Path

    @property
    def presets(self) -> list[str]:
        folder = self.configs_dir / self.name
        extra = sorted(p.stem for p in folder.glob("*.toml") if p.stem not in PRESETS)
        return [p for p in PRESETS if (folder / f"{p}.toml").exists()] + extra

    def config(self, preset: str, overrides: dict | None = None):
        path = self.configs_dir / self.name / f"{preset}.toml"
        if not path.exists():
            raise ConfigError(
                f"experiment {self.name!r} has no preset {preset!r}; presets: {self.presets}"
            )
        return load_preset(self.module.Config, path, overrides)


def _load_module(path: Path) -> ModuleType:
    name = f"ntkdepth_experiment_{path.stem.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def discover() -> dict[str, Experiment]:
    experiments_dir, configs_dir = project_dirs()
    found = {}
    for path in sorted(experiments_dir.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = _load_module(path)
        found[module.NAME] = Experiment(module.NAME, module.DESCRIPTION, module, configs_dir)
    return found


def get(name: str) -> Experiment:
    experiments = discover()
    if name not in experiments:
        raise ConfigError(f"unknown experiment {name!r}; experiments: {sorted(experiments)}")
    return experiments[name]
