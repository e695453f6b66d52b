"""Experiment settings: frozen dataclasses whose fields are declared with :func:`setting`, TOML
presets and ``--set`` overrides, every bad value refused with the key, its source and what is
allowed (docs/contributing.md#adding-an-experiment).
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

__all__ = [
    "ConfigError", "setting", "from_mapping", "recorded_config", "load_preset", "parse_overrides", "to_dict",
    "dataset_setting", "mnist_dir_setting", "mnist_split_setting", "shorten", "with_defaults",
]

# The integers a setting may hold: NumPy and JAX compute with 64-bit integers at most.
_INT_RANGE = (-(2**63), 2**63 - 1)
# How a list is written after --set, by the type of its elements.
_LIST_EXAMPLES = {int: "[64,256]", float: "[0.1,1.0]", str: "['a','b']", bool: "[true,false]"}


_UNSET = object()  # a setting without an ``absent`` value


class ConfigError(ValueError):
    """A configuration that does not fit its experiment's schema."""


def shorten(text: str, limit: int = 120) -> str:
    """``text`` itself, or where longer than ``limit`` its start and end around the number of
    characters left out: values quoted in messages stay readable whatever their length."""
    if len(text) <= limit:
        return text
    keep = max(limit - 30, 10)
    head, tail = text[: keep * 2 // 3], text[len(text) - keep // 3:]
    return f"{head}...[{len(text) - len(head) - len(tail):,} characters]...{tail}"


def _shown(value: Any) -> str:
    return shorten(repr(value))


def setting(
    default,
    *,
    help: str = "",
    min=None,
    max=None,
    choices=None,
    min_len: int | None = None,
    distinct: bool | str = False,
    omit_default: bool = False,
    absent=_UNSET,
):
    """A config field with documentation and the values it may take.

    ``min``/``max`` bound a number (or every element of a list); ``choices``
    lists the allowed values of a string (or of every element of a list).
    A list must hold at least ``min_len`` elements (default 1: an empty list
    is an error unless the field declares ``min_len=0``). ``distinct``
    refuses a list that repeats a value; a string gives the reason, quoted in
    the error (e.g. ``distinct="exponents are fitted over the widths"``).

    ``omit_default`` is for a setting added to an experiment after runs of it were
    recorded: at its default it is left out of :func:`to_dict`, hence out of a run's
    recorded config, its hash and every cache key made from it, so that those runs
    keep their keys and resume; any other value is recorded (and keyed) as usual,
    and a record without the key reads back as the default.

    ``absent`` is for a setting added with a default other than what runs recorded before it
    did: the value a recorded config without the key meant (:func:`recorded_config`), so that
    redrawing such a run describes what it did.
    """
    meta = {
        "help": help, "min": min, "max": max, "choices": choices,
        "min_len": min_len, "distinct": distinct, "omit_default": omit_default, "absent": absent,
    }
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
            example = _LIST_EXAMPLES.get(item_tp, "[...]")
            raise ConfigError(f"{key}: expected a list of {_type_name(item_tp)}, written like "
                              f"{key.split('[')[0]}={example}, got {_shown(value)}")
        return [_coerce(f"{key}[{i}]", v, item_tp) for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for tp_ in inner:  # the first type the value fits, in the declared order
            try:
                return _coerce(key, value, tp_)
            except ConfigError as err:
                errors.append(str(err))
        if len(errors) == 1:
            raise ConfigError(errors[0])
        raise ConfigError(f"{key}: expected one of {' or '.join(_type_name(t) for t in inner)}, got {_shown(value)}")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {_shown(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {_shown(value)}")
        if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            shown = shorten(str(value)) if value.bit_length() < 10_000 else f"an integer of {value.bit_length():,} bits"
            raise ConfigError(f"{key}: {shown} is beyond the 64-bit integers "
                              f"({_INT_RANGE[0]:,} to {_INT_RANGE[1]:,}) that computations hold")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {_shown(value)}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {_shown(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {_shown(value)}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp}")


def _check_range(key: str, value: Any, meta: dict) -> None:
    if isinstance(value, list):
        min_len = 1 if meta.get("min_len") is None else meta["min_len"]
        if len(value) < min_len:
            what = "is empty" if not value else f"has {len(value)} element(s)"
            raise ConfigError(f"{key}: the list {what}; give at least {min_len} value(s)")
        distinct = meta.get("distinct")
        if distinct:
            seen = set()
            for v in value:
                if v in seen:
                    why = f" ({distinct})" if isinstance(distinct, str) else ""
                    raise ConfigError(
                        f"{key}: {_shown(v)} appears more than once in {shorten(str(value))}; the "
                        f"values must be distinct{why}"
                    )
                seen.add(v)
    values = value if isinstance(value, list) else [value]
    for v in values:
        if v is None:
            continue
        if meta.get("min") is not None and v < meta["min"]:
            raise ConfigError(f"{key}: {v} is below the minimum {meta['min']}")
        if meta.get("max") is not None and v > meta["max"]:
            raise ConfigError(f"{key}: {v} is above the maximum {meta['max']}")
        if meta.get("choices") is not None and v not in meta["choices"]:
            raise ConfigError(f"{key}: {_shown(v)} is not one of {list(meta['choices'])}")


def recorded_config(schema: type, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (a run's recorded settings) with the keys it predates filled in by what their
    absence meant (``setting(absent=...)``); other missing keys are left to their defaults."""
    filled = dict(values)
    for f in dataclasses.fields(schema):
        absent = f.metadata.get("absent", _UNSET)
        if f.name not in filled and absent is not _UNSET:
            filled[f.name] = absent
    return filled


def from_mapping(
    schema: type,
    values: dict[str, Any],
    *,
    source: str = "config",
    sources: dict[str, str] | None = None,
    what: str = "the experiment",
):
    """Builds ``schema`` from ``values``; unspecified keys take their defaults.

    Errors start with where the value came from: ``sources[key]`` if given
    (e.g. ``"--set"`` for a key set on the command line), else ``source``;
    ``what`` names the schema's owner (``"experiment 'fig4'"``).
    """
    sources = sources or {}
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        origin = sorted({sources.get(k, source) for k in unknown})
        raise ConfigError(
            f"{', '.join(origin)}: unknown key(s) {[shorten(k, 60) for k in unknown]}; {what} has: "
            f"{sorted(fields)}"
        )
    hints = typing.get_type_hints(schema)
    kwargs = {}
    for name, value in values.items():
        try:
            coerced = _coerce(name, value, hints[name])
            _check_range(name, coerced, fields[name].metadata)
        except ConfigError as err:
            raise ConfigError(f"{sources.get(name, source)}: {err}") from None
        kwargs[name] = coerced
    # Defaults obey the same rules (an empty default list, for instance).
    for name, f in fields.items():
        if name not in kwargs:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            try:
                _check_range(name, default, f.metadata)
            except ConfigError as err:
                raise ConfigError(f"the default of {what}: {err}") from None
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
            raise ConfigError(f"--set expects key=value, got {_shown(pair)}")
        try:
            out[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = raw  # a bare string
        except ValueError:  # an integer of more digits than Python converts
            raise ConfigError(f"--set {shorten(key, 60)}={shorten(raw)}: an integer of {len(raw.strip()):,} "
                              "digits is beyond any setting; give a smaller number") from None
    return out


def load_preset(schema: type, path: Path, overrides: dict[str, Any] | None = None,
                what: str = "the experiment"):
    """Reads a preset file, applies ``overrides``, and validates the result.

    An error in an override names ``--set key=...`` (the command line), one in
    the file names the file; a constraint between settings names both.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            values = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None
    overrides = dict(overrides or {})
    sources = {k: str(path) for k in values}
    values.update(overrides)
    sources.update({k: f"--set {shorten(k, 60)}={shorten(_toml_value(v))}" for k, v in overrides.items()})
    keys = ", ".join(shorten(k, 60) for k in overrides)
    source = str(path) if not overrides else f"{path} with --set {shorten(keys, 200)}"
    return from_mapping(schema, values, source=source, sources=sources, what=what)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def to_dict(config) -> dict[str, Any]:
    """The settings of ``config`` as a plain dict: what a run records and hashes (a setting
    declared with ``omit_default`` is left out at its default)."""
    out = dataclasses.asdict(config)
    for f in dataclasses.fields(config):
        if f.metadata.get("omit_default"):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if out[f.name] == default:
                del out[f.name]
    return out


def with_defaults(schema: type, *, what: str = "", **defaults) -> type:
    """``schema`` with the defaults of some settings replaced: a frozen dataclass derived from it.

    The settings keep their order, help and bounds; a name that is not a
    setting of ``schema`` raises :class:`ConfigError` (``what`` names the
    schema in the message).
    """
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(set(defaults) - set(fields))
    if unknown:
        raise ConfigError(f"{what or schema.__name__} has no setting(s) {unknown}; it has: {sorted(fields)}")
    hints = typing.get_type_hints(schema)
    changed = [(k, hints[k], setting(v, **fields[k].metadata)) for k, v in defaults.items()]
    return dataclasses.make_dataclass(schema.__name__, changed, bases=(schema,), frozen=True)


def describe(schema: type) -> list[tuple[str, str, Any, str]]:
    """``(name, type, default, help)`` for every setting of ``schema``."""
    hints = typing.get_type_hints(schema)
    rows = []
    for f in dataclasses.fields(schema):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append((f.name, _type_name(hints[f.name]), default, f.metadata.get("help", "")))
    return rows


_DATASET_HELP = {
    "sphere": "uniform on S^{d-1}",
    "cube": "uniform on [-1,1]^d, projected onto S^{d-1}",
    "mnist": "MNIST images on S^783",
}


def dataset_setting(choices=("sphere", "mnist")):
    """The ``dataset`` setting of an experiment that runs on several datasets (``ntkdepth.data.load_points``)."""
    return setting(
        "sphere", help="; ".join(f"'{c}': {_DATASET_HELP[c]}" for c in choices), choices=tuple(choices)
    )


def mnist_dir_setting():
    """The ``data_dir`` setting of an experiment that reads MNIST (a fresh field per use)."""
    return setting(
        "",
        help="MNIST folder ('': mnist/ in $NTKDEPTH_DATA or the user cache, else ../shared/data/mnist;"
        " `ntkdepth data fetch mnist` downloads it)",
    )


def mnist_split_setting():
    """The ``split`` setting of an experiment that reads MNIST (a fresh field per use)."""
    return setting(
        "auto", help="MNIST split to draw from ('auto': train if present, else test)",
        choices=("auto", "train", "test"),
    )
