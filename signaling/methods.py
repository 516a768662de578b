"""The WebSocket methods: one table of every method, its handler and who may call it.

A handler registers itself where it is written:

    @method("raiseHand", roles=PARTICIPANTS)
    async def raise_hand(p: Participant, params: schemas.RaiseHand) -> dict[str, Any]: ...

Registering a name twice raises at import, and so does a method without a params schema
(schemas.PARAMS). Dispatch (`handler_for`) and the role check read the same table; the role
table of docs/protocol.md ("Who may do what") is checked against it by
tests/test_method_table.py. Roles come from the signed token. In a webinar an attendee is
receive-only until a host promotes them to the stage: the `stage` methods are what that
unlocks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from . import schemas
from .errors import RequestError
from .tokens import ROLES

# A method's handler: the calling Participant and its validated params (schemas.PARAMS) to a
# result.
Handler = Callable[[Any, Any], Awaitable[dict[str, Any]]]

ALL = frozenset(ROLES)
PARTICIPANTS = frozenset({"host", "presenter", "attendee"})
PUBLISHERS = frozenset({"host", "presenter", "attendee", "service"})
HOST = frozenset({"host"})
MODERATORS = frozenset({"host", "presenter"})


class DuplicateMethod(ValueError):
    """Two handlers for one method name: the second would silently replace the first."""


@dataclass(frozen=True)
class Method:
    name: str
    handler: Handler
    roles: frozenset[str]
    before_join: bool = False  # callable before `join` succeeded
    stage: bool = False  # in a webinar an attendee needs the stage for it

    def allows(self, role: str, room_type: str = "meeting", on_stage: bool = False) -> bool:
        if role not in self.roles:
            return False
        if self.stage and room_type == "webinar" and role == "attendee":
            return on_stage
        return True


METHODS: dict[str, Method] = {}


def method(name: str, roles: frozenset[str], *, before_join: bool = False,
           stage: bool = False) -> Callable[[Handler], Handler]:
    """Register the decorated handler as the WebSocket method `name`, for `roles`."""

    def register(handler: Handler) -> Handler:
        if name in METHODS:
            raise DuplicateMethod(f"method {name!r} is registered twice: "
                                  f"{METHODS[name].handler.__qualname__} and "
                                  f"{handler.__qualname__}")
        if name not in schemas.PARAMS:
            raise ValueError(f"method {name!r} has no params schema (schemas.PARAMS)")
        unknown = roles - ALL
        if unknown:
            raise ValueError(f"method {name!r} names unknown roles {sorted(unknown)}")
        METHODS[name] = Method(name, handler, roles, before_join, stage)
        return handler

    return register


def check_complete() -> None:
    """Every method that has a params schema has a handler (the modules of the handlers are
    imported by then: participant.py imports them)."""
    missing = set(schemas.PARAMS) - set(METHODS)
    if missing:
        raise RuntimeError(f"methods with a schema but no handler: {sorted(missing)}")


def allowed(name: str, role: str, room_type: str = "meeting", on_stage: bool = False) -> bool:
    entry = METHODS.get(name)
    return entry is not None and entry.allows(role, room_type, on_stage)


def handler_for(name: str, *, joined: bool, role: str, room_type: str,
                on_stage: bool) -> Handler:
    """The handler of `name` if the caller may call it now; unknown_method, not_joined or
    forbidden otherwise. Its params are validated after this (websocket._dispatch), so a
    caller that may not use a method learns nothing about its params."""
    entry = METHODS.get(name)
    if entry is None:
        raise RequestError("unknown_method", f"unknown method {name[:64]!r}")
    if not entry.before_join and not joined:
        raise RequestError("not_joined", "join first")
    if not entry.allows(role, room_type, on_stage):
        raise RequestError("forbidden", f"{name} is not allowed for role {role}"
                           + (" off stage" if room_type == "webinar" else ""))
    return entry.handler
