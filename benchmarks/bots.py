"""Publisher and subscriber bots: many per process, one event loop, no task per packet.

A `BotSession` is one participant: one WebSocket (docs/protocol.md), joined once. A
`PublisherBot` on it sends the pre-encoded loop paced by one `call_at` timer; a `SubscriberBot`
(subscriber.py) answers subscriber offers and measures what arrives (rtpstats.py). A meeting
participant has both on one session, a webinar presenter only the first, an attendee only the
second.

PLI handling (decided): a publisher answers PLI/FIR by jumping to the loop's next keyframe and
sending it as the next frame, as a browser encoder would, at most once per 300 ms per encoding
(libwebrtc's limit); our server merges requests (0.5 s) anyway, Janus relays many more.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from mediaserver.dtls import DtlsCertificate
from mediaserver.rtp.packet import RTP_HEADER, U16, payload_offset
from mediaserver.rtp.rtcp import (
    Fir,
    Nack,
    Pli,
    ReceiverReport,
    Remb,
    TransportCc,
    build_sdes_cname,
    build_sr,
    ntp_now,
    parse_compound,
)

from .media import AUDIO_CLOCK, EncodedMedia, MediaLoop
from .peer import Peer
from .rtpstats import FeedbackClock, GapTracker, LatencyHistogram, abs_send_time
from .sdp_client import (
    OPUS_PT,
    PUB_ABS_SEND_TIME_ID,
    PUB_MID_ID,
    PUB_RID_ID,
    PUB_RRID_ID,
    PUB_TCC_ID,
    RTX_PT,
    VP8_PT,
    PublishStreams,
    publish_offer,
    remote_transport,
)
from .sendlog import VIDEO_KINDS, SendLog, log_path
from .signal_client import SignalClient
from .subscriber import SubscriberBot

__all__ = ["BotContext", "BotSession", "BotSpec", "PublisherBot", "SubscriberBot"]

log = logging.getLogger(__name__)

SENDER = re.compile(r"-s(\d+)-")
NACK_CACHE = 512  # video packets kept for retransmission (~4 s at 120 packets/s)
MAX_LATE = 0.2  # a publisher this far behind its schedule skips ahead instead of bursting
SIMULCAST_RIDS = ("q", "h", "f")  # lowest first, as web_client/js/publisher.js offers them
# A keyframe request within this long of the last one honoured is ignored, per encoding, as
# libwebrtc's EncoderRtcpFeedback does (kMinKeyframeSendIntervalMs): a browser never answers
# a storm of PLIs with a keyframe each, whatever the server relays.
KEYFRAME_REQUEST_INTERVAL = 0.3


@dataclass
class BotSpec:
    name: str  # "<prefix>-s<sender id>-<n>": subscribers read the expected sender id from it
    token: str
    publish: bool = False
    subscribe: bool = False
    sample: bool = False  # decode a sample of each video stream about once a second
    sender_id: int = 0
    # True: a presenter's own subscribe side (it sees the other presenters, as in a real
    # webinar); left out of the audience's statistics, and with one presenter it never gets
    # an offer (nothing to receive), which the server holds open indefinitely
    aux_subscriber: bool = False
    # A subscriber behind an emulated bottleneck of this many kbit/s (0: none): see
    # benchmarks.link. Its figures are kept apart from the audience's ("weak" group).
    link_kbps: int = 0
    # The simulcast layer this subscriber shows (-1: none asked, the server's choice): told to
    # our server as the tile size of that layer (setTrackView), to Janus as its substream.
    layer: int = -1


class BotContext:
    """What every bot of one process shares."""

    def __init__(self, base_url: str, media: dict[int, EncodedMedia], sample_frames: int = 2,
                 decrypt_all: bool = False, drop_percent: float = 0.0,
                 run_id: str = "", simulcast: dict[int, list[EncodedMedia]] | None = None,
                 twcc: bool = False, feedback_interval: float = 0.1,
                 link_queue_bytes: int = 20_000, ice_tcp: bool = False) -> None:
        self.run_id = run_id  # names the publishers' send logs shared between bot processes
        self.loop = asyncio.get_running_loop()
        self.base_url = base_url
        self.media = media
        # sender id -> its encodings, lowest first (publishers send them all, as simulcast)
        self.simulcast = simulcast or {}
        self.twcc = twcc  # publishers number their packets (transport-cc) and ask for feedback
        # subscribers send transport-cc feedback this often, where the offer negotiated it
        self.feedback_interval = feedback_interval
        self.link_queue_bytes = link_queue_bytes  # emulated links: the bottleneck's queue
        # subscribers connect over ICE-TCP (peer_tcp.TcpPeer), publishers stay on UDP
        self.ice_tcp = ice_tcp
        self.latency_weak = LatencyHistogram()  # the emulated weak links' own latency
        self.feedback = FeedbackClock(self.loop, feedback_interval or 0.1)
        self.sample_frames = sample_frames
        self.decrypt_all = decrypt_all
        self.drop = drop_percent / 100  # subscribers discard this share of incoming video
        # No connection cap: every bot holds its WebSocket open (aiohttp defaults to 100).
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.certificate = DtlsCertificate()
        self.latency = LatencyHistogram()
        self.tracker = GapTracker(self.loop.call_later)
        self.send_logs: dict[str, SendLog] = {}  # publisher name -> its log (Janus target)
        self.janus: Any = None  # the process's one Janus session (benchmarks.janus.bots)
        # event-loop lag of this bot process: how late a 10 ms timer fires
        self.lag_max = 0.0
        self.stalls = 0  # timers more than 50 ms late
        self._lag_due = self.loop.time() + 0.01
        self._lag_timer = self.loop.call_at(self._lag_due, self._lag_tick)

    def send_log(self, publisher: str) -> SendLog | None:
        """A publisher's send log, written here or by another bot process of the run."""
        log = self.send_logs.get(publisher)
        if log is None:
            log = SendLog.open(log_path(self.run_id, publisher))
            if log is not None:
                self.send_logs[publisher] = log
        return log

    def publisher_media(self, sender_id: int) -> EncodedMedia | list[EncodedMedia]:
        return self.simulcast.get(sender_id) or self.media[sender_id]

    def _lag_tick(self) -> None:
        now = self.loop.time()
        lag = now - self._lag_due
        self.lag_max = max(self.lag_max, lag)
        if lag > 0.05:
            self.stalls += 1
        self._lag_due = now + 0.01
        self._lag_timer = self.loop.call_at(self._lag_due, self._lag_tick)

    async def close(self) -> None:
        self._lag_timer.cancel()
        self.tracker.stop()
        self.feedback.stop()
        if self.janus is not None:
            await self.janus.close()
        for log in self.send_logs.values():
            log.close()  # the owner removes its file
        await self.http.close()


class BotSession:
    def __init__(self, ctx: BotContext, spec: BotSpec) -> None:
        self.ctx = ctx
        self.spec = spec
        self.signal = SignalClient(ctx.http, ctx.base_url, spec.token, self._on_event)
        self.names: dict[str, str] = {}  # participant id -> display name
        self.track_owner: dict[str, str] = {}  # track id -> participant id
        self.publisher: PublisherBot | None = None
        self.subscriber: SubscriberBot | None = SubscriberBot(self) if spec.subscribe else None
        self.opened_at = 0.0  # wall clock, compared with kernel receive timestamps
        self.closed = False
        self.close_code: int | None = None
        self.close_reason = ""
        # set once the join result is in: the subscriber offer may come before it (the
        # server offers while joining), and who publishes what is only known from it
        self.ready = asyncio.Event()

    write_candidates = False  # our server is ICE-lite and learns the address from STUN

    async def negotiate_publish(self, offer: str, names: dict[str, str]) -> str:
        """Send the publish offer, return the server's answer."""
        result = await self.signal.request("publish", {"sdp": offer, "names": names})
        return result["sdp"]

    async def send_answer(self, sdp: str) -> None:
        """Our answer to a subscriber offer."""
        await self.signal.request("subscriberAnswer", {"sdp": sdp})

    async def prefer_layer(self, mid: str, track_id: str, layer: int, width: int,
                           height: int) -> None:
        """Show a simulcast video in a tile of that layer's size, as the web client tells it
        (setTrackView): the allocator sends no larger layer than the tile needs."""
        await self.signal.request("setTrackView", {"trackId": track_id, "visible": True,
                                                   "width": width, "height": height})

    async def start(self) -> None:
        self.opened_at = time.time()
        await self.signal.connect()
        joined = await self.signal.request("join")
        for p in joined.get("participants", []):
            self.names[p["id"]] = p.get("name", "")
        for t in joined.get("tracks", []):
            self.track_owner[t["id"]] = t["participantId"]
        self.ready.set()
        if self.spec.publish:
            self.publisher = PublisherBot(self, self.ctx.publisher_media(self.spec.sender_id))
            await self.publisher.start()

    def sender_of(self, track_id: str) -> int:
        found = SENDER.search(self.names.get(self.track_owner.get(track_id, ""), ""))
        return int(found.group(1)) if found else -1

    def _on_event(self, event: str, data: dict[str, Any]) -> None:
        if event == "participantJoined":
            p = data["participant"]
            self.names[p["id"]] = p.get("name", "")
        elif event == "trackPublished":
            self.track_owner[data["track"]["id"]] = data["track"]["participantId"]
        elif event == "subscriberOffer" and self.subscriber is not None:
            self.subscriber.on_offer(data)
        elif event == "_closed":
            self.closed = True
            self.close_code = data.get("code")
            self.close_reason = data.get("reason", "")

    async def close(self) -> None:
        if self.publisher is not None:
            self.publisher.stop()
        if self.subscriber is not None:
            self.subscriber.stop()
        await self.signal.close(leave=not self.closed)


class VideoEncoding:
    """One encoding a publisher sends: its loop, SSRCs, numbering and NACK cache. Without
    simulcast a publisher has one (no rid); with it, one per rid, lowest first."""

    __slots__ = ("index", "rid", "loop", "ssrc", "rtx_ssrc", "seq", "rtx_seq", "cache", "ext",
                 "rtx_ext", "tcc_pos", "rtx_tcc_pos", "kind", "packets", "octets", "last",
                 "last_keyframe_request")

    def __init__(self, index: int, rid: str, media: EncodedMedia, ssrc: int, rtx_ssrc: int,
                 mid: str, twcc: bool, kind: str) -> None:
        self.index = index
        self.rid = rid
        self.loop = MediaLoop(media, random.getrandbits(32), random.getrandbits(32),
                              random.getrandbits(15))
        self.ssrc = ssrc
        self.rtx_ssrc = rtx_ssrc
        self.seq = random.getrandbits(15)
        self.rtx_seq = random.getrandbits(15)
        self.cache: list[tuple[int, bytes]] = [(-1, b"")] * NACK_CACHE  # (seq, plain packet)
        rid_ext = [(PUB_RID_ID, rid.encode())] if rid else []
        rrid_ext = [(PUB_RRID_ID, rid.encode())] if rid else []
        self.ext, self.tcc_pos = ext_block(mid, twcc, rid_ext)
        self.rtx_ext, self.rtx_tcc_pos = ext_block(mid, twcc, rrid_ext)
        self.kind = kind  # its send log's kind (Janus target): "video", "video1", ...
        self.packets = self.octets = 0
        self.last = (0, 0.0)  # last RTP timestamp and its send time, for sender reports
        self.last_keyframe_request = -1e9


def ext_block(mid: str, twcc: bool, more: list[tuple[int, bytes]]) -> tuple[bytearray, int]:
    """A one-byte-form extension block: abs-send-time first (patched per packet at bytes
    5..7), then mid, the transport-wide number (patched at the returned offset, -1: none) and
    `more` (rid or repaired rid)."""
    body = bytearray((PUB_ABS_SEND_TIME_ID << 4 | 2, 0, 0, 0,
                      PUB_MID_ID << 4 | len(mid) - 1)) + mid.encode()
    tcc_pos = -1
    if twcc:
        body.append(PUB_TCC_ID << 4 | 1)
        tcc_pos = 4 + len(body)
        body += b"\x00\x00"
    for ident, value in more:
        body += bytes((ident << 4 | len(value) - 1,)) + value
    body += b"\x00" * (-len(body) % 4)
    return bytearray(b"\xbe\xde" + U16.pack(len(body) // 4)) + body, tcc_pos


class PublisherBot:
    def __init__(self, session: BotSession, media: EncodedMedia | list[EncodedMedia]) -> None:
        self.session = session
        self.loop = session.ctx.loop
        layers = media if isinstance(media, list) else [media]
        rids = SIMULCAST_RIDS[:len(layers)] if len(layers) > 1 else ()
        self.twcc = session.ctx.twcc
        self.streams = PublishStreams(rids=rids, twcc=self.twcc)
        self.peer = Peer(session.ctx.certificate, self._on_rtp, self._on_rtcp,
                         name=f"{session.spec.name}/pub")
        s = self.streams
        if rids:
            ssrcs = [(random.getrandbits(32) or 1, random.getrandbits(32) or 1) for _ in rids]
        else:
            ssrcs = [(s.video_ssrc, s.rtx_ssrc)]
        self.encodings = [
            VideoEncoding(i, rid, m, ssrc, rtx, s.video_mid, self.twcc,
                          "video" if not rids else VIDEO_KINDS[i])
            for i, (rid, m, (ssrc, rtx)) in enumerate(zip(rids or ("",), layers, ssrcs,
                                                         strict=True))]
        self.by_ssrc = {e.ssrc: e for e in self.encodings}
        self.media = MediaLoop(layers[0], random.getrandbits(32), random.getrandbits(32),
                               random.getrandbits(15))  # for its audio
        self.audio_seq = random.getrandbits(15)
        self.tcc_seq = random.getrandbits(15)
        self._timer: asyncio.TimerHandle | None = None
        self._sr_timer: asyncio.TimerHandle | None = None
        self._next_audio = self._next_video = 0.0
        self._video_period = 1 / layers[0].spec.fps
        self._audio_last = (0, 0.0)  # last RTP ts and its send time
        self.audio_ext, self.audio_tcc_pos = ext_block(s.audio_mid, self.twcc, [])
        # counters
        self.packets = {"audio": 0, "video": 0}
        self.octets = {"audio": 0, "video": 0}
        self.audio_packets = self.audio_octets = 0
        self.packets_sent = self.bytes_sent = 0
        self.nacks_received = self.retransmitted = self.plis_received = 0
        self.plis_ignored = 0  # within KEYFRAME_REQUEST_INTERVAL of the last one honoured
        self.twcc_feedback = 0  # transport-cc feedback packets the server sent us
        self.late_ticks = self.skipped_frames = 0
        self.remote_lost = 0
        # set by targets that rewrite or strip our latency stamp (Janus): send times by seq
        self.send_log: SendLog | None = None

    async def start(self) -> None:
        addr = self.peer.open()
        if self.session.write_candidates:
            self.peer.local.candidate = addr
        offer = publish_offer(self.peer.local, self.streams)
        s = self.streams
        answer = await self.session.negotiate_publish(
            offer, {s.audio_mid: "microphone", s.video_mid: "camera"})
        self.peer.connect(remote_transport(answer))
        await asyncio.wait_for(asyncio.shield(self.peer.connected), 15)
        now = self.loop.time()
        self._next_audio = self._next_video = now
        self._timer = self.loop.call_at(now, self._tick)
        self._sr_timer = self.loop.call_later(1.0, self._send_sr)

    def stop(self) -> None:
        for timer in (self._timer, self._sr_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._sr_timer = None
        self.peer.close()

    # ---- sending ------------------------------------------------------------------------

    def _tick(self) -> None:
        now = self.loop.time()
        if now - min(self._next_audio, self._next_video) > MAX_LATE:
            # The bot process is overloaded: resynchronize rather than send a burst.
            self.late_ticks += 1
            self.skipped_frames += int((now - self._next_video) / self._video_period)
            self._next_audio = self._next_video = now
        while self._next_audio <= now + 0.001:
            ts, payload = self.media.next_audio()
            self._send_audio(ts, payload)
            self._next_audio += 0.02
        while self._next_video <= now + 0.001:
            for enc in self.encodings:  # lowest first, as a browser's encoders finish
                ts, _key, payloads = enc.loop.next_video()
                last = len(payloads) - 1
                for i, payload in enumerate(payloads):
                    seq = enc.seq
                    packet = self._send_video(enc, seq, ts, payload, i == last)
                    enc.cache[seq % NACK_CACHE] = (seq, packet)
                    enc.seq = (seq + 1) & 0xFFFF
            self._next_video += self._video_period
        self._timer = self.loop.call_at(min(self._next_audio, self._next_video), self._tick)

    def _stamp(self, ext: bytearray, tcc_pos: int, now: float) -> None:
        ext[5:8] = abs_send_time(now)
        if tcc_pos >= 0:
            seq = self.tcc_seq = (self.tcc_seq + 1) & 0xFFFF
            ext[tcc_pos] = seq >> 8
            ext[tcc_pos + 1] = seq & 0xFF

    def _send_audio(self, ts: int, payload: bytes) -> None:
        now = time.time()
        seq = self.audio_seq
        self._stamp(self.audio_ext, self.audio_tcc_pos, now)
        packet = (RTP_HEADER.pack(0x90, 0x80 | OPUS_PT, seq, ts, self.streams.audio_ssrc)
                  + self.audio_ext + payload)
        if self.send_log is not None:
            self.send_log.sent("audio", seq, payload, now)
        self.peer.send_rtp(packet)
        self.audio_seq = (seq + 1) & 0xFFFF
        self.packets["audio"] += 1
        self.octets["audio"] += len(payload)
        self.packets_sent += 1
        self.bytes_sent += len(packet)
        self._audio_last = (ts, time.monotonic())

    def _send_video(self, enc: VideoEncoding, seq: int, ts: int, payload: bytes,
                    marker: bool) -> bytes:
        now = time.time()
        self._stamp(enc.ext, enc.tcc_pos, now)
        packet = (RTP_HEADER.pack(0x90, (0x80 if marker else 0) | VP8_PT, seq, ts, enc.ssrc)
                  + enc.ext + payload)
        if self.send_log is not None:
            self.send_log.sent(enc.kind, seq, payload, now)
        self.peer.send_rtp(packet)
        enc.packets += 1
        enc.octets += len(payload)
        self.packets["video"] += 1
        self.octets["video"] += len(payload)
        self.packets_sent += 1
        self.bytes_sent += len(packet)
        enc.last = (ts, time.monotonic())
        return packet

    def _send_sr(self) -> None:
        ntp, now = ntp_now(), time.monotonic()
        report = b""
        ts, at = self._audio_last
        report += build_sr(self.streams.audio_ssrc, ntp,
                           (ts + int((now - at) * AUDIO_CLOCK)) & 0xFFFFFFFF,
                           self.packets["audio"], self.octets["audio"])
        for enc in self.encodings:
            ts, at = enc.last
            report += build_sr(enc.ssrc, ntp, (ts + int((now - at) * 90000)) & 0xFFFFFFFF,
                               enc.packets, enc.octets)
        self.peer.send_rtcp(report + build_sdes_cname(self.encodings[0].ssrc,
                                                      self.streams.cname))
        self._sr_timer = self.loop.call_later(0.5 + random.random(), self._send_sr)

    # ---- feedback -----------------------------------------------------------------------

    def _on_rtp(self, data: bytes, arrival_ns: int) -> None:
        pass  # nothing is sent to a publish connection

    def _on_rtcp(self, plain: bytes) -> None:
        try:
            items = parse_compound(plain)
        except ValueError:
            return
        for item in items:
            if isinstance(item, Nack):
                enc = self.by_ssrc.get(item.media_ssrc)
                if enc is not None:
                    self.nacks_received += 1
                    for seq in item.seqs:
                        self._retransmit(enc, seq)
            elif isinstance(item, Pli):
                self._keyframe(item.media_ssrc)
            elif isinstance(item, Fir):
                for ssrc, _n in item.entries:
                    self._keyframe(ssrc)
            elif isinstance(item, ReceiverReport):
                for block in item.reports:
                    if block.ssrc == self.encodings[-1].ssrc:
                        self.remote_lost = block.packets_lost
            elif isinstance(item, TransportCc):
                self.twcc_feedback += 1  # a fixed-rate loop: nothing to adapt
            elif isinstance(item, Remb):
                pass  # no bandwidth adaptation: the loop has one bitrate

    def _keyframe(self, ssrc: int) -> None:
        enc = self.by_ssrc.get(ssrc)
        if enc is None:
            return
        self.plis_received += 1
        now = time.monotonic()
        if now - enc.last_keyframe_request < KEYFRAME_REQUEST_INTERVAL:
            self.plis_ignored += 1  # as libwebrtc's encoder does within 300 ms
            return
        enc.last_keyframe_request = now
        enc.loop.jump_to_keyframe()

    def _retransmit(self, enc: VideoEncoding, seq: int) -> None:
        cached_seq, packet = enc.cache[seq % NACK_CACHE]
        if cached_seq != seq:
            return
        # RTX (RFC 4588): own SSRC and sequence, original sequence number before the payload;
        # with simulcast the repaired rid in place of the rid (RFC 8852)
        offset = payload_offset(packet)
        self._stamp(enc.rtx_ext, enc.rtx_tcc_pos, time.time())
        rtx = (RTP_HEADER.pack(packet[0], (packet[1] & 0x80) | RTX_PT, enc.rtx_seq,
                               int.from_bytes(packet[4:8], "big"), enc.rtx_ssrc)
               + enc.rtx_ext + U16.pack(seq) + packet[offset:])
        enc.rtx_seq = (enc.rtx_seq + 1) & 0xFFFF
        self.peer.send_rtp(rtx)
        self.retransmitted += 1
