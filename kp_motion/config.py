"""YAML <-> dataclass plumbing shared by every configuration in the project.

Each setting has one source of truth: a dataclass in code gives the field and its type, and a
YAML file under config/ gives the values that ship. `from_dict` refuses unknown keys so that a
typo in a YAML file is an error, not a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def _convert(field_type: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(field_type)
    if dataclasses.is_dataclass(field_type) and isinstance(value, dict):
        return from_dict(field_type, value, where)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(field_type):
            if option is type(None) and value is None:
                return None
            if dataclasses.is_dataclass(option) and isinstance(value, dict):
                return from_dict(option, value, where)
        return value
    if origin in (tuple, list) and isinstance(value, (list, tuple)):
        args = typing.get_args(field_type)
        item_type = args[0] if args else Any
        items = [_convert(item_type, item, f"{where}[{i}]") for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if field_type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if field_type in (int, float) and isinstance(value, str):
        return _number_from_text(field_type, value, where)
    return value


def _number_from_text(field_type: type, text: str, where: str) -> int | float:
    # PyYAML follows YAML 1.1, which reads 1e-4 (no dot in the mantissa) as a string.
    try:
        return field_type(text)
    except ValueError:
        kind = "an integer" if field_type is int else "a number"
        raise ValueError(f"{where}: expected {kind}, got {text!r}") from None


def from_dict(cls: type[T], data: dict, where: str | None = None) -> T:
    """Build dataclass `cls` from a mapping, recursing into nested dataclasses."""
    where = where or cls.__name__
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    values = {
        name: _convert(hints[name], value, f"{where}.{name}") for name, value in data.items()
    }
    try:
        return cls(**values)
    except TypeError as error:
        raise ValueError(f"{where}: {error}") from None


def to_dict(instance: Any) -> dict:
    """Dataclass -> plain dict of YAML-friendly values (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(instance))


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        # One line: what is wrong and where (PyYAML's own message spans several lines).
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise ValueError(f"{path}: not valid YAML ({problem}{where})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def load(cls: type[T], path: str | Path) -> T:
    """Load dataclass `cls` from a YAML file."""
    return from_dict(cls, load_yaml(path), where=str(path))


def save(instance: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(instance), sort_keys=False))


def differences(old: Any, new: Any) -> list[str]:
    """'section.field: old -> new' for every setting that differs between two dataclasses of one
    type (nested dataclasses flattened with dots), e.g. for an error or a log line."""

    def flat(data: dict, prefix: str = "") -> dict[str, Any]:
        found = {}
        for key, value in data.items():
            if isinstance(value, dict):
                found.update(flat(value, f"{prefix}{key}."))
            else:
                found[f"{prefix}{key}"] = value
        return found

    before, after = flat(to_dict(old)), flat(to_dict(new))
    return [
        f"{key}: {before.get(key)} -> {after.get(key)}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]
