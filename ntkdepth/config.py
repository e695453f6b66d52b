"""Experiment configurations: typed dataclasses, TOML presets, validated on load.

Each experiment declares a frozen dataclass whose fields are its settings,
with :func:`setting` attaching a range or a set of choices. Presets live in
``configs/<experiment>/<preset>.toml``; ``--set key=value`` on the command
line overrides single keys. Unknown keys, wrong types and out-of-range values
are errors that name the key and list what exists.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

__all__ = ["ConfigError", "setting", "from_mapping", "load_preset", "parse_overrides", "to_dict"]


class ConfigError(ValueError):
    """A configuration that does not fit its experiment's schema."""


def setting(default, *, help: str = "", min=None, max=None, choices=None):
    """A config field with documentation and the values it may take.

    ``min``/``max`` bound a number (or every element of a list); ``choices``
    lists the allowed values of a string (or of every element of a list).
    """
    meta = {"help": help, "min": min, "max": max, "choices": choices}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _type_name(tp) -> str:
    if typing.get_origin(tp) is not None:
        return str(tp).replace("typing.", "")  # list[int], int | None
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, tp) -> Any:
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        (item_tp,) = typing.get_args(tp)[:1]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of {_type_name(item_tp)}, got {value!r}")
        return [_coerce(f"{key}[{i}]", v, item_tp) for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner[0])
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp}")


def _check_range(key: str, value: Any, meta: dict) -> None:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if v is None:
            continue
        if meta.get("min") is not None and v < meta["min"]:
            raise ConfigError(f"{key}: {v} is below the minimum {meta['min']}")
        if meta.get("max") is not None and v > meta["max"]:
            raise ConfigError(f"{key}: {v} is above the maximum {meta['max']}")
        if meta.get("choices") is not None and v not in meta["choices"]:
            raise ConfigError(f"{key}: {v!r} is not one of {list(meta['choices'])}")


def from_mapping(schema: type, values: dict[str, Any], *, source: str = "config"):
    """Builds ``schema`` from ``values``; unspecified keys take their defaults."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {unknown}; {schema.__name__} has: {sorted(fields)}"
        )
    hints = typing.get_type_hints(schema)
    kwargs = {}
    for name, value in values.items():
        coerced = _coerce(name, value, hints[name])
        _check_range(name, coerced, fields[name].metadata)
        kwargs[name] = coerced
    config = schema(**kwargs)
    check = getattr(config, "check", None)
    if check is not None:
        try:
            check()
        except ValueError as err:
            raise ConfigError(f"{source}: {err}") from None
    return config


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["depth=100", "widths=[64, 128]", "name=abc"]`` -> a dict (values read as TOML)."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        try:
            out[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = raw  # a bare string
    return out


def load_preset(schema: type, path: Path, overrides: dict[str, Any] | None = None):
    """Reads a preset file, applies ``overrides``, and validates the result."""
    with open(path, "rb") as fh:
        values = tomllib.load(fh)
    values.update(overrides or {})
    return from_mapping(schema, values, source=str(path))


def to_dict(config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def describe(schema: type) -> list[tuple[str, str, Any, str]]:
    """``(name, type, default, help)`` for every setting of ``schema``."""
    hints = typing.get_type_hints(schema)
    rows = []
    for f in dataclasses.fields(schema):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append((f.name, _type_name(hints[f.name]), default, f.metadata.get("help", "")))
    return rows
