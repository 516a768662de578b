"""Simulcast through the running server: a publisher peer (benchmarks/peer.py: real ICE-lite
checks, DTLS and SRTP) sends three VP8 encodings of the test pattern as Chromium does (a=rid,
a=simulcast, the rid header extension, no a=ssrc); an aiortc subscriber decodes them. The
server learns the SSRCs from the rids, forwards the top encoding, and `set_preferred_layers`
changes the size the subscriber decodes while the pattern's frame counter keeps going."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from benchmarks.media import EncodedMedia, MediaLoop, MediaSpec, load_media
from benchmarks.peer import Peer
from benchmarks.sdp_client import _session_head, _transport_lines, remote_transport
from mediaserver.dtls import DtlsCertificate
from mediaserver.rtp.packet import EXT_MID, EXT_RID, RTP_HEADER, build_extensions
from mediaserver.rtp.rtcp import Fir, Pli, parse_compound
from tests.support.client import Client
from tests.support.patterns import read_video_frame
from tests.support.server import running_server

ROOM = "simulcast-net"
SENDER = 6
SIZES = ((192, 108), (384, 216), (768, 432))  # q, h, f
RIDS = ("q", "h", "f")
FPS = 15
MID_ID, RID_ID = 4, 10


class SimulcastPublisher:
    """Three encodings of one camera, paced by one timer; a PLI makes that encoding's next
    frame a keyframe, as an encoder would."""

    def __init__(self, media: list[EncodedMedia]) -> None:
        self.peer = Peer(DtlsCertificate(), lambda data, arrival: None, self._on_rtcp,
                         name="simulcast")
        self.loops = [MediaLoop(m, random.getrandbits(32), 0, random.getrandbits(15))
                      for m in media]
        self.ssrcs = [random.getrandbits(32) or 1 for _ in media]
        self.seqs = [random.getrandbits(16) for _ in media]
        self.exts = [build_extensions([(MID_ID, b"0"), (RID_ID, rid.encode())])
                     for rid in RIDS]
        self.plis = 0
        self._timer: asyncio.TimerHandle | None = None

    def offer(self) -> str:
        lines = _session_head(["0"]) + [
            "m=video 9 UDP/TLS/RTP/SAVPF 96", *_transport_lines(self.peer.local, "actpass", "0"),
            f"a=extmap:{MID_ID} {EXT_MID}", f"a=extmap:{RID_ID} {EXT_RID}", "a=sendonly",
            "a=msid:cam cam-video", "a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 nack",
            "a=rtcp-fb:96 nack pli", *(f"a=rid:{rid} send" for rid in RIDS),
            "a=simulcast:send " + ";".join(RIDS)]
        return "\r\n".join(lines) + "\r\n"

    async def start(self, client: Client) -> dict:
        self.peer.open()
        result = await client.request("publish", {"sdp": self.offer(), "names": {"0": "camera"}})
        self.peer.connect(remote_transport(result["sdp"]))
        await asyncio.wait_for(asyncio.shield(self.peer.connected), 15)
        self._tick()
        return result

    def _tick(self) -> None:
        for layer, loop in enumerate(self.loops):
            ts, _key, payloads = loop.next_video()
            for i, payload in enumerate(payloads):
                marker = 0x80 if i == len(payloads) - 1 else 0
                self.peer.send_rtp(RTP_HEADER.pack(0x90, marker | 96, self.seqs[layer], ts,
                                                   self.ssrcs[layer]) + self.exts[layer]
                                   + payload)
                self.seqs[layer] = (self.seqs[layer] + 1) & 0xFFFF
        self._timer = asyncio.get_running_loop().call_later(1 / FPS, self._tick)

    def _on_rtcp(self, plain: bytes) -> None:
        for item in parse_compound(plain):
            ssrcs = [item.media_ssrc] if isinstance(item, Pli) else \
                [s for s, _ in item.entries] if isinstance(item, Fir) else []
            for ssrc in ssrcs:
                if ssrc in self.ssrcs:
                    self.plis += 1
                    self.loops[self.ssrcs.index(ssrc)].jump_to_keyframe()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.peer.close()


async def frames_until(track, accept, count: int) -> list[tuple[int, int, int]]:
    """(width, sender, counter) of decoded frames until `count` in a row pass `accept`."""
    seen: list[tuple[int, int, int]] = []
    run = 0
    while run < count:
        frame = await asyncio.wait_for(track.recv(), 10)
        found = read_video_frame(frame.to_ndarray(format="rgb24"))
        if found is None:
            continue
        seen.append((frame.width, *found))
        run = run + 1 if accept(seen[-1]) else 0
    return seen


async def test_simulcast_publisher_through_the_server(tmp_path: Path) -> None:
    media = await asyncio.to_thread(lambda: [
        load_media(MediaSpec(SENDER, seconds=2.0, width=w, height=h, fps=FPS,
                             bitrate=w * h * 2, keyframe_interval=FPS, noise=0))
        for w, h in SIZES])
    async with running_server(tmp_path / "data") as server:
        await server.create_room(ROOM)
        pub_client = Client(server.base_url, server.token(ROOM, "pub", "Pub"))
        viewer = Client(server.base_url, server.token(ROOM, "view", "View"))
        publisher = SimulcastPublisher(media)
        try:
            await pub_client.connect()
            await pub_client.join()
            result = await publisher.start(pub_client)
            assert "a=simulcast:recv q;h;f" in result["sdp"]
            (track_info,) = result["tracks"]
            await viewer.connect()
            await viewer.join()
            await viewer.join_media()
            track = await viewer.remote_track(track_info["id"])
            top = await frames_until(track, lambda f: f[0] == SIZES[2][0], 10)
            assert {sender for _, sender, _ in top} == {SENDER}

            (consumer,) = [c for c in (await server.state.media.dump()).consumers]
            assert (consumer.spatial_layer, consumer.target_spatial_layer) == (2, 2)
            await server.state.media.set_preferred_layers(consumer.id, 0, 0)
            low = await frames_until(track, lambda f: f[0] == SIZES[0][0], 10)
            # the picture goes on: ten new frames in a row at the low size, all the sender's
            assert len({c for _, _, c in low[-10:]}) == 10 and {s for _, s, _ in low} == {SENDER}
            (consumer,) = (await server.state.media.dump()).consumers
            assert consumer.spatial_layer == 0
            await server.state.media.set_preferred_layers(consumer.id, 1, 0)
            await frames_until(track, lambda f: f[0] == SIZES[1][0], 10)
            # the server learnt three SSRCs from the rids and asked keyframes of the layers
            # it switched to (the publisher answered them)
            (producer,) = server.state.media.worker.producers.values()
            assert [s.ssrc for s in producer.streams] == publisher.ssrcs
            assert publisher.plis >= 2
        finally:
            publisher.stop()
            await viewer.close()
            await pub_client.close()
