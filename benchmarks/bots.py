"""Publisher and subscriber bots: many per process, one event loop, no task per packet.

A `BotSession` is one participant: one WebSocket (docs/protocol.md), joined once. A
`PublisherBot` on it sends the pre-encoded loop paced by one `call_at` timer; a `SubscriberBot`
(subscriber.py) answers subscriber offers and measures what arrives (rtpstats.py). A meeting
participant has both on one session, a webinar presenter only the first, an attendee only the
second.

PLI handling (decided): a publisher answers PLI/FIR by jumping to the loop's next keyframe and
sending it as the next frame, as a browser encoder would; the server merges requests (0.5 s), so
this at most doubles the keyframe rate while subscribers join.
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
    build_sdes_cname,
    build_sr,
    ntp_now,
    parse_compound,
)

from .media import AUDIO_CLOCK, EncodedMedia, MediaLoop
from .peer import Peer
from .rtpstats import GapTracker, LatencyHistogram, abs_send_time
from .sdp_client import (
    OPUS_PT,
    PUB_ABS_SEND_TIME_ID,
    PUB_MID_ID,
    RTX_PT,
    VP8_PT,
    PublishStreams,
    publish_offer,
    remote_transport,
)
from .sendlog import SendLog, log_path
from .signal_client import SignalClient
from .subscriber import SubscriberBot

__all__ = ["BotContext", "BotSession", "BotSpec", "PublisherBot", "SubscriberBot"]

log = logging.getLogger(__name__)

SENDER = re.compile(r"-s(\d+)-")
NACK_CACHE = 512  # video packets kept for retransmission (~4 s at 120 packets/s)
MAX_LATE = 0.2  # a publisher this far behind its schedule skips ahead instead of bursting


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


class BotContext:
    """What every bot of one process shares."""

    def __init__(self, base_url: str, media: dict[int, EncodedMedia], sample_frames: int = 2,
                 decrypt_all: bool = False, drop_percent: float = 0.0,
                 run_id: str = "") -> None:
        self.run_id = run_id  # names the publishers' send logs shared between bot processes
        self.loop = asyncio.get_running_loop()
        self.base_url = base_url
        self.media = media
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

    write_candidates = False  # our server is ICE-lite and learns the address from STUN

    async def negotiate_publish(self, offer: str, names: dict[str, str]) -> str:
        """Send the publish offer, return the server's answer."""
        result = await self.signal.request("publish", {"sdp": offer, "names": names})
        return result["sdp"]

    async def send_answer(self, sdp: str) -> None:
        """Our answer to a subscriber offer."""
        await self.signal.request("subscriberAnswer", {"sdp": sdp})

    async def start(self) -> None:
        self.opened_at = time.time()
        await self.signal.connect()
        joined = await self.signal.request("join")
        for p in joined.get("participants", []):
            self.names[p["id"]] = p.get("name", "")
        for t in joined.get("tracks", []):
            self.track_owner[t["id"]] = t["participantId"]
        if self.spec.publish:
            self.publisher = PublisherBot(self, self.ctx.media[self.spec.sender_id])
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


class PublisherBot:
    def __init__(self, session: BotSession, media: EncodedMedia) -> None:
        self.session = session
        self.loop = session.ctx.loop
        self.media = MediaLoop(media, random.getrandbits(32), random.getrandbits(32),
                               random.getrandbits(15))
        self.streams = PublishStreams()
        self.peer = Peer(session.ctx.certificate, self._on_rtp, self._on_rtcp,
                         name=f"{session.spec.name}/pub")
        self.audio_seq = random.getrandbits(15)
        self.video_seq = random.getrandbits(15)
        self.rtx_seq = random.getrandbits(15)
        self._cache: list[tuple[int, bytes]] = [(-1, b"")] * NACK_CACHE  # (seq, plain packet)
        self._timer: asyncio.TimerHandle | None = None
        self._sr_timer: asyncio.TimerHandle | None = None
        self._next_audio = self._next_video = 0.0
        self._video_period = 1 / media.spec.fps
        self._last = {"audio": (0, 0.0), "video": (0, 0.0)}  # last RTP ts and its send time
        self.audio_ext = self._ext_block(self.streams.audio_mid)
        self.video_ext = self._ext_block(self.streams.video_mid)
        # counters
        self.packets = {"audio": 0, "video": 0}
        self.octets = {"audio": 0, "video": 0}
        self.packets_sent = self.bytes_sent = 0
        self.nacks_received = self.retransmitted = self.plis_received = 0
        self.late_ticks = self.skipped_frames = 0
        self.remote_lost = 0
        # set by targets that rewrite or strip our latency stamp (Janus): send times by seq
        self.send_log: SendLog | None = None

    @staticmethod
    def _ext_block(mid: str) -> bytearray:
        # one-byte form: abs-send-time (patched per packet) then mid, padded to 32 bits
        body = bytes((PUB_ABS_SEND_TIME_ID << 4 | 2, 0, 0, 0, PUB_MID_ID << 4 | len(mid) - 1))
        body += mid.encode()
        body += b"\x00" * (-len(body) % 4)
        return bytearray(b"\xbe\xde" + U16.pack(len(body) // 4) + body)

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
            self._send("audio", OPUS_PT, self.audio_seq, ts, self.streams.audio_ssrc, payload,
                       True, self.audio_ext)
            self.audio_seq = (self.audio_seq + 1) & 0xFFFF
            self._next_audio += 0.02
        while self._next_video <= now + 0.001:
            ts, _key, payloads = self.media.next_video()
            last = len(payloads) - 1
            for i, payload in enumerate(payloads):
                seq = self.video_seq
                packet = self._send("video", VP8_PT, seq, ts, self.streams.video_ssrc, payload,
                                    i == last, self.video_ext)
                self._cache[seq % NACK_CACHE] = (seq, packet)
                self.video_seq = (seq + 1) & 0xFFFF
            self._next_video += self._video_period
        self._timer = self.loop.call_at(min(self._next_audio, self._next_video), self._tick)

    def _send(self, kind: str, pt: int, seq: int, ts: int, ssrc: int, payload: bytes,
              marker: bool, ext: bytearray) -> bytes:
        now = time.time()
        ext[5:8] = abs_send_time(now)
        packet = RTP_HEADER.pack(0x90, (0x80 if marker else 0) | pt, seq, ts, ssrc) + ext + payload
        if self.send_log is not None:
            self.send_log.sent(kind, seq, payload, now)
        self.peer.send_rtp(packet)
        self.packets[kind] += 1
        self.octets[kind] += len(payload)
        self.packets_sent += 1
        self.bytes_sent += len(packet)
        self._last[kind] = (ts, time.monotonic())
        return packet

    def _send_sr(self) -> None:
        ntp, now = ntp_now(), time.monotonic()
        report = b""
        for kind, ssrc, clock in (("audio", self.streams.audio_ssrc, AUDIO_CLOCK),
                                  ("video", self.streams.video_ssrc, 90000)):
            ts, at = self._last[kind]
            rtp = (ts + int((now - at) * clock)) & 0xFFFFFFFF
            report += build_sr(ssrc, ntp, rtp, self.packets[kind], self.octets[kind])
        self.peer.send_rtcp(report + build_sdes_cname(self.streams.video_ssrc,
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
            if isinstance(item, Nack) and item.media_ssrc == self.streams.video_ssrc:
                self.nacks_received += 1
                for seq in item.seqs:
                    self._retransmit(seq)
            elif isinstance(item, (Pli, Fir)):
                self.plis_received += 1
                self.media.jump_to_keyframe()
            elif isinstance(item, ReceiverReport):
                for block in item.reports:
                    if block.ssrc == self.streams.video_ssrc:
                        self.remote_lost = block.packets_lost
            elif isinstance(item, Remb):
                pass  # no bandwidth adaptation: the loop has one bitrate

    def _retransmit(self, seq: int) -> None:
        cached_seq, packet = self._cache[seq % NACK_CACHE]
        if cached_seq != seq:
            return
        # RTX (RFC 4588): own SSRC and sequence, original sequence number before the payload
        offset = payload_offset(packet)
        rtx = (RTP_HEADER.pack(packet[0], (packet[1] & 0x80) | RTX_PT, self.rtx_seq,
                               int.from_bytes(packet[4:8], "big"), self.streams.rtx_ssrc)
               + packet[12:offset] + U16.pack(seq) + packet[offset:])
        self.rtx_seq = (self.rtx_seq + 1) & 0xFFFF
        self.peer.send_rtp(rtx)
        self.retransmitted += 1

