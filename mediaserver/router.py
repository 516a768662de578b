"""Router: one per room or breakout group; the producers that its consumers may attach to."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .producer import Producer
    from .transport import WebRtcTransport


class Router:
    def __init__(self, router_id: str) -> None:
        self.id = router_id
        self.producers: dict[str, Producer] = {}
        self.transports: dict[str, WebRtcTransport] = {}
        self.closed = False

    def close(self) -> None:
        self.closed = True
        for transport in list(self.transports.values()):
            transport.close("router closed")
        self.producers.clear()
