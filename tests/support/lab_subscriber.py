"""A subscriber run inside a NetLab's client namespace (netlab.py):
`python -m tests.support.lab_subscriber BASE_URL TOKEN PUBLISHER_ID SENDER SECONDS CANDIDATE_IP`.

Joins, decodes the publisher's pattern video (tracks.FrameChecker) and audio for SECONDS after
the first intact frame, and prints one JSON line: frames received and intact, the pattern's
sender ids, freezes (gaps over 500 ms between intact frames), and the audio RTP packets
received and lost as the subscriber's inbound-rtp stats count them (what a browser would
play or conceal; aiortc's own audio decoding drops more than the network does).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aioice.ice
from aiortc.mediastreams import MediaStreamError

from tests.support.client import Client
from tests.support.tracks import FrameChecker


async def drain(track) -> None:
    while True:
        try:
            await track.recv()
        except MediaStreamError:
            return


async def audio_packets(client: Client) -> tuple[int, int]:
    """(received, lost) of the audio inbound-rtp stream."""
    assert client.subscribe_pc is not None
    report = await client.subscribe_pc.getStats()
    for stats in report.values():
        if stats.type == "inbound-rtp" and stats.kind == "audio":
            return stats.packetsReceived, stats.packetsLost
    return 0, 0


async def main(base_url: str, token: str, publisher: str, sender: int, seconds: float
               ) -> dict:
    client = Client(base_url, token)
    frames = FrameChecker()
    tasks = []
    try:
        await client.connect()
        await client.join()
        video = await client.remote_track(await client.tracks_of(publisher, "video", 30), 30)
        tasks.append(asyncio.create_task(frames.run(video)))
        sound = await client.remote_track(await client.tracks_of(publisher, "audio", 30), 30)
        tasks.append(asyncio.create_task(drain(sound)))
        await frames.wait_for(sender, 1, timeout=30)  # the first intact frame
        start = time.monotonic()
        received, readable = frames.frames_received, frames.frames_readable
        heard, lost = await audio_packets(client)
        await asyncio.sleep(seconds)  # the measured window: what a person sees in it
        heard_now, lost_now = await audio_packets(client)
        return {"seconds": time.monotonic() - start,
                "frames": frames.frames_received - received,
                "intact": frames.frames_readable - readable,
                "senders": sorted(frames.sender_ids),
                "freezes": [round(f, 3) for f in frames.freezes()],
                "size": frames.last_size, "audio_received": heard_now - heard,
                "audio_lost": lost_now - lost}
    finally:
        for task in tasks:
            task.cancel()
        await client.close()


if __name__ == "__main__":
    base_url, token, publisher, sender, seconds, candidate_ip = sys.argv[1:7]
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [candidate_ip]
    result = asyncio.run(main(base_url, token, publisher, int(sender), float(seconds)))
    print(json.dumps(result), flush=True)
