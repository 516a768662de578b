"""Smoke test of the Janus side of the benchmark: launcher, configuration and HTTP client.

One aiortc publisher sends the pattern video through Janus 1.1.2's VideoRoom and one aiortc
subscriber decodes it with advancing counters. Janus only offers 127.0.0.1 inside the network
namespace made by benchmarks.janus.launcher, so the pytest test re-runs this module
(`python -m tests.test_janus_smoke WORKDIR`) under `unshare --net` and checks its exit status.
Fails (does not skip) when janus, unshare or ip is missing: `make test` installs them.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from pathlib import Path

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from benchmarks.janus.client import JanusPublisher, JanusRoom, JanusSession, JanusSubscriber
from benchmarks.janus.launcher import run_python_in_namespace, running_janus
from tests.support.tracks import FrameChecker, PatternVideoTrack

ROOT = Path(__file__).resolve().parent.parent
SENDER_ID = 7
SCENARIO_TIMEOUT = 40  # seconds, inside the namespace
HOST_CANDIDATE = re.compile(r"^a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 \d+ typ host", re.M)


def test_janus_videoroom_smoke(tmp_path: Path) -> None:
    for tool, package in (("janus", "janus"), ("unshare", "util-linux"), ("ip", "iproute2")):
        assert shutil.which(tool), f"`{tool}` is missing: apt-get install -y {package}"
    proc = run_python_in_namespace("tests.test_janus_smoke", [str(tmp_path)],
                                   timeout=SCENARIO_TIMEOUT + 15, cwd=ROOT, capture_output=True)
    log = tmp_path / "janus.log"
    janus_log = log.read_text(errors="replace")[-3000:] if log.exists() else "(no janus log)"
    assert proc.returncode == 0, (
        f"scenario failed with status {proc.returncode}\n--- stdout\n{proc.stdout}"
        f"\n--- stderr\n{proc.stderr[-6000:]}\n--- janus.log (tail)\n{janus_log}")
    assert "pattern decoded through Janus" in proc.stdout, proc.stdout


def _pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def _scenario(workdir: Path) -> None:
    # aioice leaves 127.0.0.1 out of its host candidates; Janus is reachable only there.
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    pcs: list[RTCPeerConnection] = []
    tasks: list[asyncio.Task] = []
    try:
        async with running_janus(workdir) as info, JanusSession(info.http_url) as session:
            room_id = await JanusRoom(session, publishers=4).create()

            pub_pc = _pc()
            pcs.append(pub_pc)
            track = PatternVideoTrack(SENDER_ID)
            pub_pc.addTrack(track)
            await pub_pc.setLocalDescription(await pub_pc.createOffer())
            publisher = JanusPublisher(session, room_id, display="smoke")
            answer = await publisher.publish(pub_pc.localDescription.sdp)
            assert publisher.feed_id is not None
            assert HOST_CANDIDATE.search(answer), f"no 127.0.0.1 host candidate:\n{answer}"
            await pub_pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            await publisher.wait_webrtcup(timeout=10)

            sub_pc = _pc()
            pcs.append(sub_pc)
            checker = FrameChecker()

            @sub_pc.on("track")
            def on_track(remote) -> None:
                if remote.kind == "video":
                    tasks.append(asyncio.create_task(checker.run(remote)))

            subscriber = JanusSubscriber(session, room_id)
            offer = await subscriber.subscribe(publisher.feed_id)
            assert HOST_CANDIDATE.search(offer), f"no 127.0.0.1 host candidate:\n{offer}"
            await sub_pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            await sub_pc.setLocalDescription(await sub_pc.createAnswer())
            await subscriber.answer(sub_pc.localDescription.sdp)
            await subscriber.wait_webrtcup(timeout=10)

            stats = await checker.wait_for(SENDER_ID, 20, timeout=20)
            print(f"pattern decoded through Janus: room={room_id} feed={publisher.feed_id} "
                  f"frames sent={track.frames_sent} {checker.describe()} "
                  f"counters {stats.first_counter}..{stats.last_counter}", flush=True)

            await subscriber.close()
            await publisher.close()
    finally:
        for pc in pcs:
            await pc.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    workdir = Path(sys.argv[1])
    workdir.mkdir(parents=True, exist_ok=True)
    asyncio.run(asyncio.wait_for(_scenario(workdir), SCENARIO_TIMEOUT))


if __name__ == "__main__":
    main()
