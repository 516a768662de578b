"""The connectivity check's server side (signaling/media_session.py, docs/protocol.md "probe"):
`probeInfo` hands out short-lived TURN credentials and the media ports before join; probes of
different names run side by side, each a transport of its own that real aiortc peers complete
ICE and DTLS with; `probeDone` closes one by name or all; a ninth at once is refused."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiortc import RTCSessionDescription

from signaling import turn
from signaling.media_session import MAX_PROBES, PROBE_TURN_TTL
from tests.support.client import Client, RequestFailed, new_pc
from tests.support.server import running_server

WAIT_S = 10


async def test_probe_info_before_join(tmp_path: Path) -> None:
    async with running_server(tmp_path / "plain", dev=True) as server:
        await server.create_room("r1")
        client = Client(server.base_url, server.token("r1", "alice"))
        await client.connect()
        try:
            info = await client.request("probeInfo")
            port = server.config.rtc_port
            assert info == {"iceServers": [], "mediaPorts": {"udp": [port, port],
                                                             "tcp": [port, port]}}
        finally:
            await client.drop()
    async with running_server(tmp_path / "turn", dev=True, rtc_tcp_port=45000, workers=0,
                              turn_urls=("turn:127.0.0.1:3478?transport=udp",),
                              turn_secret="shared", turn_ttl=3600) as server:
        await server.create_room("r1")
        client = Client(server.base_url, server.token("r1", "alice"))
        await client.connect()
        try:
            before = time.time()
            info = await client.request("probeInfo")
            [entry] = info["iceServers"]
            expiry = int(entry["username"].split(":", 1)[0])
            # the check's credentials live minutes, not the join's hour
            assert before + PROBE_TURN_TTL - 1 <= expiry <= time.time() + PROBE_TURN_TTL
            assert entry["credential"] == turn.credential("shared", entry["username"])
            assert entry["urls"] == ["turn:127.0.0.1:3478?transport=udp"]
            assert info["mediaPorts"]["tcp"] == [45000, 45000], info
        finally:
            await client.drop()


async def test_probes_side_by_side_and_closed_by_name(tmp_path: Path) -> None:
    async with running_server(tmp_path, dev=True) as server:
        await server.create_room("r1")
        client = Client(server.base_url, server.token("r1", "alice"))
        await client.connect()
        pcs = [new_pc(), new_pc()]
        try:
            for name, pc in zip(("udp", "tcp"), pcs, strict=True):
                pc.addTransceiver("audio", direction="recvonly")
                await pc.setLocalDescription(await pc.createOffer())
                answer = await client.request("probe", {"sdp": pc.localDescription.sdp,
                                                        "name": name})
                await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
            for pc in pcs:  # both through ICE and DTLS, each with its own transport
                async with asyncio.timeout(WAIT_S):
                    while pc.connectionState != "connected":
                        assert pc.connectionState not in ("failed", "closed")
                        await asyncio.sleep(0.05)  # aiortc's state has no awaitable
            assert len((await server.state.media.dump()).transports) == 2
            await client.request("probeDone", {"name": "udp"})
            assert len((await server.state.media.dump()).transports) == 1
            await client.request("probeDone", {"name": "udp"})  # already gone: fine
            offer = pcs[0].localDescription.sdp
            for i in range(MAX_PROBES - 1):
                await client.request("probe", {"sdp": offer, "name": f"p{i}"})
            try:
                await client.request("probe", {"sdp": offer, "name": "one-too-many"})
                raise AssertionError("a ninth probe at once was accepted")
            except RequestFailed as exc:
                assert exc.code == "conflict", exc
            await client.request("probe", {"sdp": offer, "name": "p0"})  # replaces p0
            assert len((await server.state.media.dump()).transports) == MAX_PROBES
            await client.request("probeDone")  # all of them, and their router
            worker = server.state.media.worker  # type: ignore[attr-defined]
            assert (await server.state.media.dump()).transports == [] and not worker.routers
            try:
                await client.request("probe", {"sdp": offer, "name": "no spaces"})
                raise AssertionError("a bad probe name was accepted")
            except RequestFailed as exc:
                assert exc.code == "bad_request", exc
        finally:
            for pc in pcs:
                await pc.close()
            await client.drop()
