"""Typed settings from plain mappings: a dataclass built from YAML values, every key and value checked.

Every section of a run config, and every backend's ``teacher.options``, is a dataclass; this module builds one
from a mapping. An unknown key is an error that names the nearest valid key with its full dotted path; a
value of the wrong type, or out of the range its field declares (``bounded``), is an error that names the
key and what is allowed. A field whose value needs a builder of its own (the student section, whose class
depends on ``student.kind``) names it in its metadata (``builder``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import types
import typing
from dataclasses import field

from cotdistill.errors import InputError


class ConfigError(InputError):
    """A config that cannot be used; the message names the key and the fix."""


def bounded(default, *, ge=None, gt=None, le=None, lt=None, **kwargs):
    """A dataclass field whose numeric value must lie in a range (checked when the section is built)."""
    limits = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    return field(default=default, metadata={"bounds": limits}, **kwargs)


_WORDS = {"ge": ">= {}", "gt": "> {}", "le": "<= {}", "lt": "< {}"}


def check_bounds(value, limits: dict, key: str) -> None:
    """Raise ``ConfigError`` when a number lies outside ``limits`` (``ge``, ``gt``, ``le``, ``lt``)."""
    if value is None or not limits:
        return
    ok = all(
        {"ge": value >= v, "gt": value > v, "le": value <= v, "lt": value < v}[name]
        for name, v in limits.items()
    )
    if not ok:
        allowed = " and ".join(_WORDS[name].format(v) for name, v in limits.items())
        raise ConfigError(f"{key}={value!r} is out of range: it must be {allowed}")


def nearest(key: str, valid: list[str], where: str = "") -> str:
    """``; did you mean 'where.close_key'?`` or the list of valid keys."""
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f"; did you mean {where + close[0]!r}?" if close else f"; valid keys: {', '.join(valid)}"


def build_section(cls, values, where: str = ""):
    """A settings dataclass from a mapping (``where``: the dotted key prefix used in errors, e.g.
    ``"teacher.options."``)."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where.rstrip('.') or 'config'}: expected a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown key {where + str(key)!r}{nearest(str(key), list(fields), where)}")
        hint, meta = hints[key], fields[key].metadata
        if "builder" in meta:
            kwargs[key] = meta["builder"](value or {})
        elif dataclasses.is_dataclass(hint):
            kwargs[key] = build_section(hint, value or {}, f"{where}{key}.")
        else:
            kwargs[key] = coerce(value, hint, where + key)
            check_bounds(kwargs[key], meta.get("bounds", {}), where + key)
    return cls(**kwargs)


def coerce(value, hint, key: str):
    """``value`` as the type ``hint`` says, or a ``ConfigError`` naming ``key``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{key} must not be empty")
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], key) if len(inner) == 1 else value
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}={value!r}; expected one of {', '.join(map(str, args))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [coerce(v, args[0], f"{key}[]") if args else v for v in value]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if hint is float and isinstance(value, str):
        # YAML 1.1 reads 5e-4 (no dot) as a string; a number is what was meant
        with contextlib.suppress(ValueError):
            value = float(value)
    if hint in (int, float):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (hint is int and not isinstance(value, int))
        ):
            raise ConfigError(f"{key} must be {'an integer' if hint is int else 'a number'}, got {value!r}")
        return hint(value)
    if hint is str:
        return str(value)
    return value
