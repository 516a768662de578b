"""The method table (signaling/methods.py) against docs/protocol.md, both ways.

The role table of the protocol ("Who may do what") lists each method with a cell per role:
`yes`, `no`, or `meetings: yes; webinars: only on stage` (an attendee needs the stage in a
webinar). Every registered method must be documented there with the same roles and stage
rule, and every documented method must be registered. The methods callable before `join` are
those the `not_joined` row of the error table names. A name registered twice fails at once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import signaling.participant  # noqa: F401  (importing it registers every method)
from signaling.methods import METHODS, PARTICIPANTS, DuplicateMethod, method
from signaling.tokens import ROLES

PROTOCOL = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
STAGE_CELL = "meetings: yes; webinars: only on stage"


def cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def section(text: str, heading: str) -> list[str]:
    """The lines under `heading` up to the next heading."""
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("#")), len(lines))
    return lines[start:end]


def documented_roles() -> dict[str, tuple[frozenset[str], bool]]:
    """method -> (roles allowed, needs the stage in a webinar), from the role table."""
    rows = [line for line in section(PROTOCOL.read_text(), "### Who may do what")
            if line.startswith("|")]
    header = cells(rows[0])
    assert header[0] == "method" and sorted(header[1:]) == sorted(ROLES), header
    assert set(rows[1]) <= set("|-: "), "the second row separates the header"
    table: dict[str, tuple[frozenset[str], bool]] = {}
    for row in rows[2:]:
        first, *verdicts = cells(row)
        assert len(verdicts) == len(header) - 1, row
        roles, stage = set(), False
        for role, verdict in zip(header[1:], verdicts, strict=True):
            assert verdict in ("yes", "no", STAGE_CELL), (row, verdict)
            if verdict != "no":
                roles.add(role)
            stage |= verdict == STAGE_CELL
        for name in names(first):
            assert name not in table, f"{name} is in the role table twice"
            table[name] = (frozenset(roles), stage)
    assert table, "no role table found"
    return table


def documented_before_join() -> set[str]:
    """The methods the `not_joined` error row says may come before `join`."""
    for line in PROTOCOL.read_text().splitlines():
        if line.startswith("| `not_joined` |"):
            when = cells(line)[2]
            return set(names(when.split(" before ")[0]))
    raise AssertionError("no `not_joined` row in the error table")


def test_every_registered_method_is_documented_with_its_roles() -> None:
    documented = documented_roles()
    for name, entry in METHODS.items():
        assert name in documented, f"{name} is not in docs/protocol.md's role table"
        roles, stage = documented[name]
        assert entry.roles == roles, (name, sorted(entry.roles), sorted(roles))
        assert entry.stage == stage, (name, "stage", entry.stage, stage)


def test_every_documented_method_is_registered() -> None:
    unknown = set(documented_roles()) - set(METHODS)
    assert not unknown, f"documented but not registered: {sorted(unknown)}"


def test_methods_before_join_are_documented() -> None:
    assert {name for name, entry in METHODS.items() if entry.before_join} == \
        documented_before_join()


async def handler(p: Any, params: Any) -> dict[str, Any]:
    return {}


def test_registering_a_name_twice_raises() -> None:
    original = METHODS["raiseHand"]
    with pytest.raises(DuplicateMethod, match="raiseHand"):
        method("raiseHand", PARTICIPANTS)(handler)
    assert METHODS["raiseHand"] is original  # the first registration stands


def test_a_method_without_params_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="schema"):
        method("noSuchMethod", PARTICIPANTS)(handler)
    assert "noSuchMethod" not in METHODS
