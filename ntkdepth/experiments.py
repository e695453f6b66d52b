"""Finds the experiment scripts in ``experiments/`` and their presets in ``configs/``.

A script defines ``NAME`` and ``DESCRIPTION`` (plain string literals, read without importing it),
``Config``, ``run`` and ``report`` (docs/contributing.md#adding-an-experiment).
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

from ntkdepth.config import ConfigError, load_preset, shorten, with_defaults

__all__ = ["Experiment", "project_dirs", "discover", "get", "variant", "PRESETS"]

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
    path: Path
    configs_dir: Path

    @property
    def module(self) -> ModuleType:
        """The script, imported on first use (once per process)."""
        module = _load_module(self.path)
        if getattr(module, "NAME", None) != self.name:
            raise ConfigError(
                f"{self.path}: NAME is {getattr(module, 'NAME', None)!r} when run but "
                f"{self.name!r} as written; NAME must be a plain string literal"
            )
        missing = [f for f in ("Config", "run", "report") if not hasattr(module, f)]
        if missing:
            raise ConfigError(f"{self.path} defines no {', '.join(missing)}: an experiment script "
                              "defines Config, run(config, out) and report(config, results, out)")
        return module

    @property
    def presets(self) -> list[str]:
        folder = self.configs_dir / self.name
        extra = sorted(p.stem for p in folder.glob("*.toml") if p.stem not in PRESETS)
        return [p for p in PRESETS if (folder / f"{p}.toml").exists()] + extra

    def config(self, preset: str, overrides: dict | None = None):
        path = self.configs_dir / self.name / f"{preset}.toml"
        if not path.exists():
            raise ConfigError(
                f"experiment {self.name!r} has no preset {shorten(repr(preset))}"
                f"{_did_you_mean(preset, self.presets)}; presets: {self.presets}"
            )
        return load_preset(self.module.Config, path, overrides, what=f"experiment {self.name!r}")


def _module_name(path: Path) -> str:
    return f"ntkdepth_experiment_{path.stem.replace('-', '_')}"


def _load_module(path: Path) -> ModuleType:
    name = _module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _static_strings(path: Path, names: tuple[str, ...]) -> dict[str, str]:
    """The module-level ``NAME = "..."`` string assignments of a script, read without running it."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        elif isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in names:
                if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                    raise ConfigError(
                        f"{path}:{node.lineno}: {target.id} must be a plain string literal "
                        "(it is read without running the script)"
                    )
                found[target.id] = value.value
    missing = [n for n in names if n not in found]
    if missing:
        raise ConfigError(f"{path}: no module-level string {' or '.join(missing)}")
    return found


def discover() -> dict[str, Experiment]:
    """Every experiment script, by name; none of them is imported."""
    experiments_dir, configs_dir = project_dirs()
    found: dict[str, Experiment] = {}
    for path in sorted(experiments_dir.glob("*.py")):
        if path.name.startswith("_"):
            continue
        meta = _static_strings(path, ("NAME", "DESCRIPTION"))
        name = meta["NAME"]
        if name in found:
            raise ConfigError(f"experiments {found[name].path} and {path} are both named {name!r}")
        found[name] = Experiment(name, meta["DESCRIPTION"], path, configs_dir)
    return found


def _did_you_mean(name: str, known) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``known`` (case ignored), or nothing."""
    import difflib

    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


def get(name: str) -> Experiment:
    experiments = discover()
    if name not in experiments:
        raise ConfigError(f"unknown experiment {shorten(repr(name))}{_did_you_mean(name, experiments)}; "
                          f"experiments: {sorted(experiments)}")
    return experiments[name]


def variant(base: str, **defaults) -> tuple[type, Callable, Callable]:
    """``(Config, run, report)`` of experiment ``base``, its settings' defaults replaced by ``defaults``.

    For a script that runs another experiment under its own name, description
    and presets (``experiments/fig5.py``: Figure 4's experiment on MNIST)::

        NAME = "fig5"
        DESCRIPTION = "..."
        Config, run, report = variant("fig4", dataset="mnist", n=50)

    The settings keep their help and bounds; a name that is not a setting of
    ``base`` raises :class:`~ntkdepth.config.ConfigError`.
    """
    module = get(base).module
    config = with_defaults(module.Config, what=f"experiment {base!r}", **defaults)
    return config, module.run, module.report
