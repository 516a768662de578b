"""Loss: 5% of datagrams dropped each way between one client and the server.

The NACK paths (subscriber -> server retransmission cache, server -> publisher) and keyframe
requests must keep decoded video flowing with the right pattern, and the metrics must show it.
"""

from __future__ import annotations

import asyncio
import re

from tests.support.client import Client
from tests.support.relay import LossyRelay
from tests.support.tracks import FrameChecker, PatternVideoTrack


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


async def test_media_survives_five_percent_loss(server) -> None:
    await server.create_room("lossy")
    rtc_port = server.config.rtc_port
    relay = LossyRelay(("127.0.0.1", rtc_port), loss=0.05)
    relay_port = await relay.start()

    def via_relay(sdp: str) -> str:
        return sdp.replace(f" 127.0.0.1 {rtc_port} typ host", f" 127.0.0.1 {relay_port} typ host")

    clean = Client(server.base_url, server.token("lossy", "clean"))
    lossy = Client(server.base_url, server.token("lossy", "lossy"), rewrite_sdp=via_relay)
    tasks: list[asyncio.Task] = []
    try:
        for c in (clean, lossy):
            await c.connect()
            await c.join()
        await clean.publish(PatternVideoTrack(4, width=640, height=480))
        await lossy.publish(PatternVideoTrack(5, width=640, height=480))

        to_lossy = FrameChecker()
        to_clean = FrameChecker()
        tasks.append(asyncio.create_task(to_lossy.run(
            await lossy.remote_track(await lossy.tracks_of(clean.self_id, "video")))))
        tasks.append(asyncio.create_task(to_clean.run(
            await clean.remote_track(await clean.tracks_of(lossy.self_id, "video")))))
        await asyncio.gather(to_lossy.wait_for(4, 90, timeout=40),
                             to_clean.wait_for(5, 90, timeout=40))
        assert to_lossy.sender_ids == {4}, to_lossy.describe()
        assert to_clean.sender_ids == {5}, to_clean.describe()
        assert relay.dropped_up > 0 and relay.dropped_down > 0

        text = await server.metrics()
        # the lossy subscriber asked for repairs and the server resent from its cache
        assert metric(text, "mediaserver_nacks_received_total") > 0
        assert metric(text, "mediaserver_retransmissions_total") > 0
        # the server saw gaps from the lossy publisher and asked it to resend
        assert metric(text, "mediaserver_nacks_sent_total") > 0
        assert metric(text, "mediaserver_packets_lost_total") >= 0
    finally:
        for task in tasks:
            task.cancel()
        await clean.close()
        await lossy.close()
        relay.close()
