"""Hostile input for the property-based tests: any JSON value, wrong types, numbers past 64
bits, long and odd text (NUL, control characters, lone surrogates, emoji), nesting deeper
than any parser should follow, and mutations of valid params or messages.

Deep nesting cannot go through json.dumps (it recurses too), so a value may hold `Raw` JSON
text that `dumps` writes as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

# Integers at the borders: 32, 53 (JavaScript), 64 bits, and far past (4001 digits still
# parse; past 4300 digits Python refuses to parse the number at all: see RAW).
EDGE_INTS = [0, 1, -1, 2**31 - 1, 2**31, 2**32, 2**53 - 1, 2**53, 2**63 - 1, 2**63, 2**64,
             -(2**63) - 1, 2**128, 10**4000, -(10**4000)]
# Lengths around the limits of docs/protocol.md (names, texts, notes).
EDGE_LENGTHS = [0, 1, 59, 60, 61, 64, 65, 100, 101, 127, 128, 129, 199, 200, 201, 499, 500, 501,
                1999, 2000, 2001, 19999, 20000, 20001]


@dataclass(frozen=True)
class Raw:
    """JSON text written as it is by `dumps` (deep nesting, NaN, numbers of 5000 digits)."""

    text: str

    def __repr__(self) -> str:  # what a failing example shows
        return f"Raw({self.text[:60]!r}{'...' if len(self.text) > 60 else ''})"


def dumps(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + dumps(v) for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


def _nested(depth: int, kind: str) -> Raw:
    if kind == "list":
        return Raw("[" * depth + "]" * depth)
    if kind == "object":
        return Raw('{"a":' * depth + "1" + "}" * depth)
    return Raw('[{"a":' * (depth // 2) + "null" + "}]" * (depth // 2))


RAW = st.one_of(
    st.builds(_nested, st.one_of(st.integers(28, 40), st.integers(100, 5000)),
              st.sampled_from(["list", "object", "mixed"])),
    st.sampled_from([Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e999"), Raw("-0"),
                     Raw("1" * 5000), Raw('"\\ud800"'), Raw('"\\u0000"'), Raw("1.0"),
                     Raw("[1,]"), Raw('"'), Raw("{")]),
)

ODD_CHARS = st.one_of(
    st.characters(),  # any Unicode scalar value
    st.sampled_from(["\x00", "\x01", "\x1f", "\x7f", "\t", "\n", "\r", "\u2028", "\ufeff",
                     "\u202e", "\ufe0f", "👍", "❤", "é", "/", "\\", ".", "%", '"']),
    st.characters(categories=["Cs"]),  # lone surrogates: valid in JSON text, not in UTF-8
)
TEXT = st.one_of(
    st.text(max_size=20),
    st.text(ODD_CHARS, max_size=20),
    st.builds(lambda n, c: c * n, st.sampled_from(EDGE_LENGTHS), st.sampled_from(["x", " ", "é"])),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from(EDGE_INTS),
    st.floats(allow_nan=False, allow_infinity=False), TEXT,
)
# Any JSON value (with Raw parts), nested a little.
JUNK = st.recursive(
    st.one_of(SCALARS, RAW),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=8,
)
# Field names that params use somewhere, and some that none does.
KEYS = st.one_of(st.sampled_from([
    "text", "trackId", "participantId", "groupId", "questionId", "pollId", "option", "sdp",
    "names", "muted", "raised", "live", "enabled", "allowed", "seconds", "count", "mode",
    "layout", "lowLatency", "kind", "emoji", "baseVersion", "offerId", "sinceChatId", "question",
    "options", "__proto__", "constructor", "",
]), st.text(max_size=12))


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]]) -> Any:
    """Valid params, or the same with a field replaced by junk, dropped, or joined by an unknown
    one; or a junk object; or something that is not an object at all."""
    params = dict(draw(valid))
    how = draw(st.sampled_from(["valid", "replace", "replace", "drop", "extra", "object",
                                "not_object"]))
    if how == "replace":
        key = draw(st.sampled_from(sorted(params))) if params else draw(KEYS)
        params[key] = draw(JUNK)
    elif how == "drop" and params:
        del params[draw(st.sampled_from(sorted(params)))]
    elif how == "extra":
        params[draw(KEYS)] = draw(JUNK)
    elif how == "object":
        return draw(st.dictionaries(KEYS, JUNK, max_size=5))
    elif how == "not_object":
        return draw(JUNK.filter(lambda v: not isinstance(v, dict)))
    return params


# Edits of a JSON text: cut it, drop, insert or swap characters. Drawn apart from the text
# (positions are taken modulo its length), so a text that depends on state can be mangled too.
EDITS = st.lists(st.tuples(st.sampled_from(["cut", "drop", "insert", "swap"]),
                           st.integers(0, 2**16), st.integers(0, 2**16),
                           st.sampled_from(list('{}[]",:\\0-e.') + ["\x00", "é"])),
                 min_size=1, max_size=4)


def mangle(text: str, edits: list[tuple[str, int, int, str]]) -> str:
    chars = list(text)
    for how, at, other, char in edits:
        at %= max(len(chars), 1)
        if how == "cut":
            chars = chars[:at]
        elif how == "drop" and chars:
            del chars[at]
        elif how == "insert":
            chars.insert(at, char)
        elif how == "swap" and len(chars) > 1:
            other %= len(chars)
            chars[at], chars[other] = chars[other], chars[at]
    return "".join(chars)
