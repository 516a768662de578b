"""The control API's values as JSON: dataclasses of `params` to dicts and back, by type.

Used by the RPC to worker processes (remote_control.py) and by signalling nodes that share
tracks through Redis. `decode` is strict: a value must have exactly the declared type (no
bool for an int, no string for a number), and building a dataclass runs its own checks.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


@functools.cache
def _fields(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode(kind: type[T] | Any, value: Any) -> T:
    """`value` (parsed JSON) as `kind`; TypeError or ValueError when it is not one."""
    origin = typing.get_origin(kind)
    if kind is Any:
        return value
    if kind is None or kind is type(None):
        if value is not None:
            raise TypeError(f"expected null, not {type(value).__name__}")
        return value  # type: ignore[return-value]
    if origin in (typing.Union, types.UnionType):
        arms = typing.get_args(kind)
        if value is None and type(None) in arms:
            return value  # type: ignore[return-value]
        errors = []
        for arm in arms:
            if arm is not type(None):
                try:
                    return decode(arm, value)
                except (TypeError, ValueError) as exc:
                    errors.append(str(exc))
        raise TypeError("; ".join(errors))
    if origin is list:
        (item,) = typing.get_args(kind)
        return [decode(item, v) for v in _sequence(value)]  # type: ignore[return-value]
    if origin is tuple:
        args = typing.get_args(kind)
        items = _sequence(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], v) for v in items)  # type: ignore[return-value]
        if len(items) != len(args):
            raise TypeError(f"expected {len(args)} items, not {len(items)}")
        return tuple(decode(a, v) for a, v in zip(args, items, strict=True))  # type: ignore[return-value]
    if origin is dict:
        key, item = typing.get_args(kind)
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, not {type(value).__name__}")
        return {decode(key, k): decode(item, v) for k, v in value.items()}  # type: ignore[return-value]
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise TypeError(f"expected {kind.__name__} as an object, not {type(value).__name__}")
        fields = _fields(kind)
        unknown = value.keys() - fields.keys()
        if unknown:
            raise TypeError(f"{kind.__name__} has no field {sorted(unknown)[0]!r}")
        return kind(**{k: decode(fields[k], v) for k, v in value.items()})
    if kind is float:
        if type(value) not in (int, float):
            raise TypeError(f"expected a number, not {type(value).__name__}")
        return float(value)  # type: ignore[return-value]
    if kind in (str, int, bool):
        if type(value) is not kind:
            raise TypeError(f"expected {kind.__name__}, not {type(value).__name__}")
        return value
    raise TypeError(f"cannot decode {kind!r}")


def _sequence(value: Any) -> list | tuple:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"expected an array, not {type(value).__name__}")
    return value
