"""One configuration dialect for every typed settings dataclass (training, studies,
experiments): a nested mapping (YAML or JSON) plus dotted `key=value` overrides whose values are
read as YAML, checked against the dataclass's type hints, with a did-you-mean for a mistyped key.

    cfg = build(MyConfig, {"optim": {"lr": 3e-4}}, noun="config key")
    raw = {}; set_dotted(MyConfig, raw, "optim.lr", 3e-4); cfg = build(MyConfig, raw)
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any

import yaml


def parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ValueError(f"override {item!r} must look like key=value (e.g. optim.lr=3e-4)")
    key, text = item.split("=", 1)
    return key.strip(), yaml.safe_load(text) if text.strip() else None


def get_dotted(obj: Any, key: str) -> Any:
    for part in key.split("."):
        obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
    return obj


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):  # empty dicts vanish so {} vs {k: v} diffs as k alone
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _unknown_key(cls: type, path: str, key: str, noun: str) -> ValueError:
    names = list(_fields(cls))
    near = difflib.get_close_matches(key, names, n=1)
    hint = f" Did you mean {path + near[0]!r}?" if near else ""
    where = f"section {path[:-1]!r}" if path else "the top level"
    return ValueError(f"unknown {noun} {path + key!r}.{hint} Valid keys in {where}: {', '.join(names)}")


def set_dotted(cls: type, raw: dict[str, Any], key: str, value: Any, noun: str = "config key") -> None:
    """Put `value` at dotted `key` of the raw mapping `raw`, checking each part names a field."""
    parts = key.split(".")
    node, typ, path = raw, cls, ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if dataclasses.is_dataclass(typ):
            fields = _fields(typ)
            if part not in fields:
                raise _unknown_key(typ, path, part, noun)
            typ = fields[part]
        else:  # a free-form dict field (model.overrides) takes any sub-key
            typ = Any
        if last:
            node[part] = value
        else:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node, path = child, f"{path}{part}."


def build(cls: type, raw: Any, path: str = "", noun: str = "config key") -> Any:
    """The dataclass `cls` from a raw mapping: unknown keys refused, values checked and coerced."""
    if not isinstance(raw, dict):
        raise ValueError(f"config section {path[:-1] or '<top>'!r} must be a mapping, got {raw!r}")
    fields = _fields(cls)
    for key in raw:
        if key not in fields:
            raise _unknown_key(cls, path, key, noun)
    kwargs = {k: _coerce(fields[k], v, path + k, noun) for k, v in raw.items()}
    try:
        return cls(**kwargs)
    except ValueError as exc:
        if path:
            raise ValueError(f"config section {path[:-1]!r}: {exc}") from None
        raise


def _coerce(typ: Any, value: Any, key: str, noun: str = "config key") -> Any:
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key, noun)
    if dataclasses.is_dataclass(typ):
        return build(typ, value, key + ".", noun)
    if typ is Any:
        return value

    def fail() -> ValueError:
        name = getattr(typ, "__name__", str(typ))
        return ValueError(f"{noun} {key!r} expects {name}, got {value!r} ({type(value).__name__})")

    if typ is bool:
        if isinstance(value, bool):
            return value
        raise fail()
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):  # PyYAML reads 1e4 as a string
            try:
                value = float(value)
            except ValueError:
                raise fail() from None
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise fail()
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise fail()
    if typ is str:
        if isinstance(value, str):
            return value
        raise fail()
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise fail()
        return [_coerce(args[0], v, f"{key}[{i}]", noun) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise fail()
        return dict(value)
    raise TypeError(f"unsupported config field type {typ} for {key!r}")
