"""A nurse on weak hospital Wi-Fi: the subscriber sits behind an emulated link (netlab.py) in
a namespace of its own, the rep publishes from a clean one, and what the nurse decodes is
judged as she would judge it: does the picture keep moving, is the sound there."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aioice.ice

from tests.support.client import Client, use_loopback_candidates
from tests.support.netlab import ROOT, NetLab
from tests.support.server import running_server
from tests.support.tracks import PatternVideoTrack, ToneAudioTrack

WINDOW = 20.0  # seconds measured once the first intact frame arrived
SENDER = 5


async def watch_through_lab(lab: NetLab, tmp_path: Path) -> dict:
    async with running_server(tmp_path, host=lab.host_ip) as server:
        await server.create_room("ward")
        # the rep's candidates: the address the server listens on, in this namespace
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [lab.host_ip]
        rep = Client(server.base_url, server.token("ward", "rep"))
        try:
            await rep.connect()
            await rep.join()
            await rep.publish(PatternVideoTrack(SENDER, fps=30), ToneAudioTrack(440))
            nurse = await asyncio.create_subprocess_exec(
                *lab.command([sys.executable, "-m", "tests.support.lab_subscriber",
                              server.base_url, server.token("ward", "nurse", role="attendee"),
                              rep.self_id, str(SENDER), str(WINDOW), lab.client_ip]),
                cwd=ROOT, stdout=asyncio.subprocess.PIPE)
            out, _ = await asyncio.wait_for(nurse.communicate(), WINDOW + 90)
            assert nurse.returncode == 0
            return json.loads(out)
        finally:
            use_loopback_candidates()
            await rep.close()


async def test_five_percent_loss_and_100_ms_each_way(tmp_path: Path) -> None:
    with NetLab() as lab:
        lab.set(delay_ms=100, loss=0.05)
        seen = await watch_through_lab(lab, tmp_path)
        counters = lab.counters()
    assert counters["down_dropped"] > 50  # the link did lose packets on the way to the nurse
    assert seen["senders"] == [SENDER]  # every intact frame carries the rep's pattern
    fps = seen["intact"] / seen["seconds"]
    assert fps >= 15, seen  # of 30 sent: measured 17-28 (a busy CI run gave 17)
    # aiortc as the nurse: it NACKs a packet again only when a new gap opens, so a lost
    # retransmission waits for its jitter buffer (128 packets, ~1 s here) to give up and ask
    # for a keyframe; Chromium asks again every round trip. Two or three ~1 s freezes in 20 s
    # are aiortc's, measured here; more would be ours.
    assert len(seen["freezes"]) <= 3, seen
    # 20 ms audio packets: 50 a second; audio has no repair, so the link's 5% go
    assert seen["audio_received"] >= 0.9 * 50 * seen["seconds"], seen
    assert seen["audio_lost"] <= 0.1 * 50 * seen["seconds"], seen


async def test_clean_link_control(tmp_path: Path) -> None:
    with NetLab() as lab:
        seen = await watch_through_lab(lab, tmp_path)
    assert seen["senders"] == [SENDER]
    assert seen["intact"] / seen["seconds"] >= 25, seen
    assert not seen["freezes"], seen
    assert seen["audio_received"] >= 0.98 * 50 * seen["seconds"], seen
