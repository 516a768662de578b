"""JSON from outside (WebSocket messages, HTTP bodies, JWT headers), parsed within limits.

`json.loads` recurses once per nesting level: a message of a few KiB of brackets raises
RecursionError, which is no ValueError and escapes every handler. The nesting depth is
measured first, by a scan that never recurses, and anything deeper than MAX_DEPTH is refused
like any other bad JSON. NaN and Infinity (accepted by Python, not JSON) are refused too.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


class BadJson(ValueError):
    """Not JSON, or JSON beyond the limits; the message says which."""


def depth_ok(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether no array or object in `text` nests deeper than `limit` (brackets inside
    strings do not count). Meant for JSON text; for other text it may answer either way."""
    if text.count("[") + text.count("{") <= limit:
        return True  # cannot be deeper than the number of openings
    depth = 0
    for bracket in _BRACKET.finditer(_STRING.sub("", text)):
        if bracket.group() in "[{":
            depth += 1
            if depth > limit:
                return False
        else:
            depth -= 1
    return True


def _constant(name: str) -> Any:
    raise BadJson(f"invalid JSON: {name} is not a JSON number")


def loads(data: str | bytes) -> Any:
    """The value of a JSON text; BadJson for anything else (never RecursionError)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise BadJson("invalid JSON: not UTF-8") from None
    if not depth_ok(data):
        raise BadJson(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(data, parse_constant=_constant)
    except BadJson:
        raise
    except ValueError as exc:
        raise BadJson(f"invalid JSON: {exc}") from None
