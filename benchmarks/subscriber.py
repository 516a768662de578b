"""SubscriberBot: answers subscriber offers and measures what arrives, without decoding it all.

Per packet it counts, checks sequence continuity and reads the latency (rtpstats.py); payloads
are decrypted only where needed: until the first keyframe is complete (join time, and a check
that the server started the stream on a keyframe), for sampled streams (vp8sample.py), and for
RTX packets (their original sequence number is inside the encrypted payload). It sends receiver
reports every second, NACKs gaps like a browser, a PLI when a stream starts and when a gap is
given up as lost (at most one per PLI_INTERVAL per stream), and, where the offer negotiated
transport-cc, feedback every `BotContext.feedback_interval` (100 ms, as Chromium) with the
kernel's receive times. A subscriber on an emulated link (BotSpec.link_kbps) receives through a
`benchmarks.link.EmulatedLink`, and everything it measures is taken after that link.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING, Any

from mediaserver.rtp.codecs import is_vp8_keyframe
from mediaserver.rtp.packet import EXT_ABS_SEND_TIME, EXT_TRANSPORT_CC, U16, payload_offset
from mediaserver.rtp.rtcp import (
    SenderReport,
    build_nack,
    build_pli,
    build_rr,
    build_sdes_cname,
    ntp_to_middle32,
    parse_compound,
)
from mediaserver.rtp.twcc import TwccRecorder
from mediaserver.srtp import SrtpError

from .link import EmulatedLink
from .peer import Peer
from .peer_tcp import TcpPeer
from .rtpstats import ReceiveStream, find_ext
from .sdp_client import ReceivedTrack, remote_transport, subscribe_answer
from .vp8sample import Vp8Sampler

if TYPE_CHECKING:
    from .bots import BotSession

log = logging.getLogger(__name__)

PLI_INTERVAL = 0.5  # s: a lost video packet asks for a keyframe at most this often per stream


class SubscriberBot:
    def __init__(self, session: BotSession) -> None:
        self.session = session
        self.ctx = session.ctx
        self.peer: Peer | None = None
        self.rtcp_ssrc = random.getrandbits(32) or 1
        self.streams: dict[int, ReceiveStream] = {}
        self.by_rtx: dict[int, ReceiveStream] = {}
        self.samplers: dict[int, Vp8Sampler] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._rr_timer: asyncio.TimerHandle | None = None
        # join: socket open -> the first keyframe complete (all its packets, RTX included)
        self.join_time: float | None = None
        self._join_ssrc = 0
        self._join_seqs: set[int] = set()
        self._join_first = -1
        self._join_last = -1
        self.not_keyframe_first = 0
        self.unknown_ssrc = 0
        self.dropped = 0
        self.offers = 0
        self.failure = ""
        spec = session.spec
        self.group = "weak" if spec.link_kbps else (f"L{spec.layer}" if spec.layer >= 0
                                                     else "all")
        self.link_kbps = spec.link_kbps
        self.hist = self.ctx.latency_weak.counts if spec.link_kbps else self.ctx.latency.counts
        # transport-cc: set when the offer negotiated it (every RTP packet is numbered)
        self.tcc_id = 0
        self._tcc_byte = 0  # the element's first byte: id and length (2 bytes: 1)
        self._tcc_pos = -1
        self.twcc: TwccRecorder | None = None
        self.feedback_sent = 0
        self.plis_on_loss = 0
        self._last_pli: dict[int, float] = {}
        self.layers_asked = 0

    def on_offer(self, data: dict[str, Any]) -> None:
        task = asyncio.ensure_future(self._answer(data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, data: dict[str, Any]) -> None:
        ready = getattr(self.session, "ready", None)
        if ready is not None:
            try:
                await asyncio.wait_for(ready.wait(), 30)
            except TimeoutError:
                pass  # answered all the same; senders of its tracks unknown
        async with self._lock:
            try:
                await self._answer_locked(data)
            except Exception as exc:  # recorded and reported; the bot counts as failed
                self.failure = f"{type(exc).__name__}: {exc}"
                log.warning("%s: subscriber answer failed: %s", self.session.spec.name, exc)

    async def _answer_locked(self, data: dict[str, Any]) -> None:
        self.offers += 1
        if self.peer is None:
            kind = TcpPeer if self.ctx.ice_tcp else Peer
            self.peer = kind(self.ctx.certificate, self._on_rtp, self._on_rtcp,
                             name=f"{self.session.spec.name}/sub")
            if self.link_kbps:
                self.peer.link = EmulatedLink(self.ctx.loop, self.link_kbps,
                                              self.peer.on_media, self.ctx.link_queue_bytes)
            addr = self.peer.open()
            if self.session.write_candidates:
                self.peer.local.candidate = addr
        sdp, tracks = subscribe_answer(data["sdp"], self.peer.local)
        mids = data.get("tracks", {})
        new_video = []
        for t in tracks:
            if t.extensions.get(EXT_TRANSPORT_CC) and self.twcc is None:
                self.tcc_id = t.extensions[EXT_TRANSPORT_CC]
                self._tcc_byte = self.tcc_id << 4 | 1
                self.twcc = TwccRecorder()
                if self.ctx.feedback_interval > 0:  # 0: negotiated, never sent (a what-if)
                    self.ctx.feedback.add(self)
            if t.ssrc in self.streams:
                continue
            st = self._new_stream(t, mids.get(t.mid, ""))
            st.sender_id = self.session.sender_of(mids.get(t.mid, ""))
            if self.link_kbps:
                st.set_browser_timing()
            if t.kind == "video":
                st.on_loss = self._on_loss
                new_video.append((t.mid, mids.get(t.mid, ""), st.sender_id))
            self.streams[t.ssrc] = st
            if t.rtx_ssrc:
                self.by_rtx[t.rtx_ssrc] = st
            if t.kind == "video" and self.session.spec.sample:
                self.samplers[t.ssrc] = Vp8Sampler(st.sender_id, self.ctx.sample_frames)
        await self.session.send_answer(sdp)
        layer = self.session.spec.layer
        if layer >= 0:
            for mid, track_id, sender in new_video:
                encodings = self.ctx.simulcast.get(sender)
                if encodings:
                    spec = encodings[min(layer, len(encodings) - 1)].spec
                    await self.session.prefer_layer(mid, track_id, layer, spec.width,
                                                    spec.height)
                    self.layers_asked += 1
        if self.peer.remote is None:
            self.peer.connect(remote_transport(data["sdp"]))
            await asyncio.wait_for(asyncio.shield(self.peer.connected), 15)
            self._rr_timer = self.ctx.loop.call_later(random.random(), self._send_rr)
        for st in self.streams.values():  # a PLI at start, as browsers do for a new stream
            if st.kind == "video" and st.packets == 0:
                self.peer.send_rtcp(build_pli(self.rtcp_ssrc, st.ssrc))

    def _new_stream(self, t: ReceivedTrack, track_id: str) -> ReceiveStream:
        """Latency from the publisher's abs-send-time stamp, which our server passes through."""
        return ReceiveStream(t.ssrc, t.rtx_ssrc, t.kind, t.clock_rate, t.mid,
                             t.extensions.get(EXT_ABS_SEND_TIME, 0), self.hist,
                             self.ctx.tracker, self._send_nack)

    def stop(self) -> None:
        if self._rr_timer is not None:
            self._rr_timer.cancel()
            self._rr_timer = None
        for task in self._tasks:
            task.cancel()
        for st in self.streams.values():
            self.ctx.tracker.pending.discard(st)
        self.ctx.feedback.discard(self)
        if self.peer is not None:
            self.peer.close()

    # ---- packet path --------------------------------------------------------------------

    def _on_rtp(self, data: bytes, arrival_ns: int) -> None:
        twcc = self.twcc
        if twcc is not None:  # every numbered packet, RTX and unknown SSRCs included
            pos = self._tcc_pos  # the server writes its extensions in a fixed layout
            if pos < 0 or len(data) < pos + 2 or data[pos - 1] != self._tcc_byte:
                pos = self._tcc_pos = find_ext(data, self.tcc_id)
            if pos >= 0:
                twcc.record(data[pos] << 8 | data[pos + 1], arrival_ns // 1000)
        ssrc = int.from_bytes(data[8:12], "big")
        st = self.streams.get(ssrc)
        if st is not None:
            if self.ctx.drop and st.kind == "video" and random.random() < self.ctx.drop:
                self.dropped += 1  # simulated loss, to exercise NACK and RTX end to end
                return
            ext = st.receive(data, arrival_ns)
            # Payloads are decrypted only where needed: until joined, and for samples.
            if st.kind == "video" and (self.join_time is None or ssrc in self.samplers
                                       or self.ctx.decrypt_all):
                self._video_payload(st, data, ext, arrival_ns)
            elif self.ctx.decrypt_all:
                self._decrypt(data)
            return
        st = self.by_rtx.get(ssrc)
        if st is None:
            self.unknown_ssrc += 1
            return
        if data[0] & 0x20 and len(data) <= 12 + 4 * (data[0] & 0x0F) + 300:
            # RTP padding on the RTX stream: a probe of the server's bandwidth estimation
            # (allocation.Prober: padding only). Counted apart, never as media received.
            st.padding += 1
            return
        plain = self._decrypt(data)
        if plain is None:
            return
        try:
            osn = U16.unpack_from(plain, payload_offset(plain))[0]
        except (ValueError, IndexError):
            return
        st.receive_rtx(osn)
        if self.join_time is None and st.ssrc == self._join_ssrc and self._join_first >= 0:
            ext = self._join_first + ((osn - self._join_first) & 0xFFFF)
            self._join_seqs.add(ext)
            self._check_joined(arrival_ns)

    def _decrypt(self, data: bytes) -> bytes | None:
        try:
            return self.peer.srtp.unprotect(data)  # type: ignore[union-attr]
        except (SrtpError, ValueError, AttributeError):
            if self.peer is not None:
                self.peer.srtp_errors += 1
            return None

    def _video_payload(self, st: ReceiveStream, data: bytes, ext: int, arrival_ns: int) -> None:
        plain = self._decrypt(data)
        if plain is None:
            return
        sampler = self.samplers.get(st.ssrc)
        if sampler is not None:
            sampler.add(plain, ext)
        if self.join_time is not None:
            return
        if self._join_first < 0 or st.ssrc != self._join_ssrc:
            if self._join_first >= 0:
                return  # joined on another stream already under way
            try:
                first = is_vp8_keyframe(plain[payload_offset(plain):])
            except ValueError:
                return
            if not first:
                self.not_keyframe_first += 1  # the server must start a consumer on a keyframe
                return
            self._join_ssrc, self._join_first = st.ssrc, ext
        self._join_seqs.add(ext)
        if plain[1] & 0x80 and self._join_last < 0:
            self._join_last = ext
        self._check_joined(arrival_ns)

    def _check_joined(self, arrival_ns: int) -> None:
        last = self._join_last
        if last >= 0 and len(self._join_seqs) >= last - self._join_first + 1 and all(
                s in self._join_seqs for s in range(self._join_first, last + 1)):
            self.join_time = arrival_ns / 1e9 - self.session.opened_at
            self._join_seqs = set()

    # ---- RTCP ---------------------------------------------------------------------------

    def _on_rtcp(self, plain: bytes) -> None:
        try:
            items = parse_compound(plain)
        except ValueError:
            return
        now = time.monotonic()
        for item in items:
            if isinstance(item, SenderReport):
                st = self.streams.get(item.ssrc)
                if st is not None:
                    st.sr_middle = ntp_to_middle32(item.ntp_timestamp)
                    st.sr_time = now

    def send_feedback(self) -> None:
        """Transport-cc feedback for what arrived since the last (the process's FeedbackClock
        calls it once per interval)."""
        if self.twcc is None or self.peer is None or self.peer.srtp is None:
            return
        # What the kernel holds for us arrived already (its receive timestamp says when): read
        # it first, or a bot process that fell behind would report those packets lost, which a
        # browser's network thread never does.
        self.peer.drain()
        media = next(iter(self.streams), 0)
        for packet in self.twcc.build(self.rtcp_ssrc, media):
            self.peer.send_rtcp(packet)
            self.feedback_sent += 1

    def _on_loss(self, st: ReceiveStream) -> None:
        """A video packet given up as lost: ask for a keyframe, as a browser's decoder would."""
        now = time.monotonic()
        if self.peer is not None and now - self._last_pli.get(st.ssrc, -1e9) >= PLI_INTERVAL:
            self._last_pli[st.ssrc] = now
            self.plis_on_loss += 1
            self.peer.send_rtcp(build_pli(self.rtcp_ssrc, st.ssrc))

    def _send_nack(self, st: ReceiveStream, seqs: list[int]) -> None:
        if self.peer is not None:
            self.peer.send_rtcp(build_nack(self.rtcp_ssrc, st.ssrc, seqs))

    def _send_rr(self) -> None:
        if self.peer is None or self.peer.state == "closed":
            return
        now = time.monotonic()
        blocks = [b for st in self.streams.values() if (b := st.report_block(now))]
        self.peer.send_rtcp(build_rr(self.rtcp_ssrc, blocks)
                            + build_sdes_cname(self.rtcp_ssrc, self.session.spec.name[:255]))
        self._rr_timer = self.ctx.loop.call_later(0.5 + random.random(), self._send_rr)
