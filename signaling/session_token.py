"""Tokens that keep a session able to come back, however long it lasts.

A portal's link token may expire an hour after it was minted, while the meeting it opened runs
for two: a reconnect after a network switch, or a return after leaving for an urgent call,
must not then fail with `token_expired`. While a session is connected the server hands its
client a fresh token for the same grant (room, identity, name, role) in the `join` result and
again every REFRESH_EVERY seconds (`tokenRefreshed`); each is valid for LIFETIME seconds, so the
client can come back for that long after it was last connected. An invitation's holder gets a
token for the identity it was given, so a return takes the same place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .tokens import Grant, mint

REFRESH_EVERY = 600.0  # seconds between two refreshed tokens pushed to a connected client
LIFETIME = 3600  # seconds each refreshed token is valid


class TokenRefresher:
    def __init__(self, secret: str, grant: Grant,
                 send_event: Callable[[str, dict[str, Any]], None]) -> None:
        self.secret = secret
        self.grant = grant
        self.send_event = send_event
        self._timer: asyncio.TimerHandle | None = None

    def fresh(self) -> str:
        g = self.grant
        return mint(self.secret, g.room, g.identity, g.name, g.role, LIFETIME)

    def start(self) -> str:
        """A fresh token now, and one pushed every REFRESH_EVERY seconds until stop()."""
        self.stop()
        self._timer = asyncio.get_running_loop().call_later(REFRESH_EVERY, self._push)
        return self.fresh()

    def _push(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(REFRESH_EVERY, self._push)
        self.send_event("tokenRefreshed", {"token": self.fresh(), "expiresIn": LIFETIME})

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
