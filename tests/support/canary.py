"""Proving that time passed with the consent timer running, instead of sleeping.

A canary is a connection in a room of its own that comes up and then goes silent: its peer
connection closes, its socket stays. The worker's ICE consent timer (RFC 7675) expires it and
the server asks it to come back (4503 media_lost). Each expiry proves one consent period went
by with the very timer running that must leave waiting people alone.
"""

from __future__ import annotations

import asyncio
import itertools

from aiortc import RTCPeerConnection

from tests.support.client import Client
from tests.support.server import RunningServer
from tests.support.tracks import PatternVideoTrack

ROOM = "canaries"
_names = itertools.count()


async def connected(pc: RTCPeerConnection, timeout: float = 20) -> None:
    """Until the peer connection's ICE and DTLS are up."""
    done = asyncio.get_running_loop().create_future()

    @pc.on("connectionstatechange")
    def changed() -> None:
        if pc.connectionState == "connected" and not done.done():
            done.set_result(None)

    if pc.connectionState != "connected":
        await asyncio.wait_for(done, timeout)


async def outlast_consent(server: RunningServer, periods: int, consent: float) -> None:
    """Hold a window of `periods` consent timeouts of `consent` seconds, each proven by a
    canary expiring (the server must have the room ROOM)."""
    for _ in range(periods):
        canary = Client(server.base_url, server.token(ROOM, f"canary{next(_names)}"))
        await canary.connect()
        try:
            await canary.join()
            await canary.publish(PatternVideoTrack(9))
            assert canary.publish_pc is not None
            await connected(canary.publish_pc)
            await canary.publish_pc.close()  # no more checks; the socket stays open
            await asyncio.wait_for(canary.closed.wait(), consent * 2 + 10)
            assert canary.close_code == 4503, canary.close_code
        finally:
            await canary.drop()
