"""How inputs, step results and workflow results are stored: JSON, with attrs classes
and dataclasses supported.

Plain JSON values pass through. An attrs or dataclass instance is stored with its
class's import path and rebuilt on decode, recursively. Tuples come back as lists.
Anything else is an `EncodeError` naming the value's type, raised before anything is
written.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
from typing import Any

import attrs

__all__ = ["DecodeError", "EncodeError", "decode", "encode"]

_TYPE_KEY = "__type__"


class EncodeError(TypeError):
    """A value the codec cannot store. `path` says where in the value it sits."""

    def __init__(self, value: object, path: str) -> None:
        super().__init__(
            f"cannot encode a value of type {type(value).__qualname__} at {path}: use JSON "
            "values (dict, list, str, int, float, bool, None), attrs classes or dataclasses"
        )
        self.value_type = type(value)
        self.path = path


class DecodeError(ValueError):
    """Stored data the codec cannot turn back into a value."""


def encode(value: object) -> str:
    """`value` as JSON text. Raises `EncodeError` for values it cannot store.

    Examples:
        >>> encode({"total": 3, "items": ("a", "b")})
        '{"total":3,"items":["a","b"]}'
    """
    return json.dumps(_to_json(value, "$"), separators=(",", ":"), allow_nan=False)


def decode(text: str) -> Any:
    """The value `encode` stored as `text`."""
    try:
        return _from_json(_loads(text))
    except (ValueError, TypeError, ImportError, AttributeError) as exc:
        raise DecodeError(f"cannot decode stored value {text[:80]!r}: {exc}") from exc


# What `json.loads` calls once the whitespace is skipped (typeshed omits the attribute).
_scan_once = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _loads(text: str) -> Any:
    # `json.loads` is `scan_once` wrapped in Python-level whitespace handling that
    # costs more than the scan for the short texts `encode` writes (no whitespace
    # around the value). Anything else, errors included, takes the full path.
    try:
        value, end = _scan_once(text, 0)
    except (StopIteration, TypeError, ValueError):
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


def _to_json(value: object, path: str) -> object:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EncodeError(value, path)
        return value
    if isinstance(value, list | tuple):
        return [_to_json(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise EncodeError(k, f"{path} (a key)")
            if k == _TYPE_KEY:
                raise EncodeError(value, f"{path} (the key {_TYPE_KEY!r} is reserved)")
            out[k] = _to_json(v, f"{path}.{k}")
        return out
    cls = type(value)
    if attrs.has(cls):
        fields = {a.name: getattr(value, a.name) for a in attrs.fields(cls) if a.init}
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
    else:
        raise EncodeError(value, path)
    encoded = {k: _to_json(v, f"{path}.{k}") for k, v in fields.items()}
    return {_TYPE_KEY: f"{cls.__module__}:{cls.__qualname__}", **encoded}


def _from_json(data: object) -> Any:
    if isinstance(data, list):
        return [_from_json(v) for v in data]
    if isinstance(data, dict):
        if _TYPE_KEY in data:
            cls = _import(str(data[_TYPE_KEY]))
            return cls(**{k: _from_json(v) for k, v in data.items() if k != _TYPE_KEY})
        return {k: _from_json(v) for k, v in data.items()}
    return data


def _import(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
