"""One recording: a UDP socket fed plain RTP/RTCP by the SFU's taps, its tracks, its output.

Each track (one SSRC) has a jitter buffer, a depacketizer and a clock; whole frames go to the
composite thread or to the per-track files. RTCP is multiplexed on the same port (RFC 5761):
sender reports set the clocks; PLI and NACK (RFC 4585) go back to the address the track's RTP
came from. Packets of an SSRC not yet announced with add_track are held briefly (the tap may
start before the control message arrives).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import re
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from mediaserver.params import (
    MAX_CHANNELS,
    MAX_CLOCK_RATE,
    MAX_PAYLOAD_TYPE,
    MAX_U32,
    check_int,
)
from mediaserver.rtp.packet import RTP_HEADER, is_rtcp, payload_end, payload_offset
from mediaserver.rtp.rtcp import SenderReport, build_nack, build_pli, ntp_to_seconds, parse_compound

from . import vod
from .composite import CompositeOptions, Compositor, PartStart
from .depacketize import Frame, make_depacketizer
from .hls import Playlist, target_duration, write_atomic
from .jitter import JitterBuffer
from .layout import LAYOUTS
from .pertrack import PerTrackSink, TrackMeta
from .sync import GroupClock, TrackClock

log = logging.getLogger(__name__)
T = TypeVar("T")
STATE = "state.json"
ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
HOLD_PACKETS = 512  # per unknown SSRC
# What arrives for an SSRC not announced (yet) is kept HOLD_SECONDS for an add_track that may
# follow, for at most HOLD_SSRCS such SSRCs (the oldest is dropped first): an SSRC that never
# gets announced is garbage and must not hold memory.
HOLD_SECONDS = 2.0
HOLD_SSRCS = 32
MAX_TRACKS = 256  # per recording


def read_state(directory: Path) -> dict | None:
    try:
        return json.loads((directory / STATE).read_text())
    except (OSError, ValueError):
        return None


def write_state(directory: Path, state: dict) -> None:
    write_atomic(directory / STATE, json.dumps(state, indent=1).encode())


@dataclass(slots=True)
class Track:
    track_id: str
    ssrc: int
    kind: str
    codec: str
    payload_type: int
    clock_rate: int
    participant: str
    name: str
    jitter: JitterBuffer
    clock: TrackClock
    addr: tuple | None = None


class Recording(asyncio.DatagramProtocol):
    def __init__(self, recording_id: str, room: str, mode: str, layout: str, root: Path,
                 options: CompositeOptions | None = None, max_delay: float = 0.15) -> None:
        if not ID_RE.match(recording_id):
            raise ValueError("recording_id must match [A-Za-z0-9_.-]{1,64}")
        if mode not in ("composite", "pertrack"):
            raise ValueError("mode must be composite or pertrack")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}")
        self.id, self.room, self.mode, self.layout = recording_id, room, mode, layout
        self.dir = root / recording_id
        self.options = options or CompositeOptions()
        self.options.layout = layout
        self.max_delay = max_delay
        self.tracks: dict[int, Track] = {}
        self.groups: dict[str, GroupClock] = {}
        self.participants: list[str] = []
        self.rtcp_ssrc = random.getrandbits(32) or 1
        self.udp: asyncio.DatagramTransport | None = None
        self.port = 0
        self.resumed = False
        self.compositor: Compositor | None = None
        self.sink: PerTrackSink | None = None
        self.state: dict = {}
        self._held: dict[int, deque] = {}
        self._held_sr: dict[int, tuple[SenderReport, float]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seq = 0
        self.stopped = False

    # ---- lifecycle ------------------------------------------------------------------------

    async def open(self, host: str) -> int:
        self._loop = asyncio.get_running_loop()
        self.dir.mkdir(parents=True, exist_ok=True)
        old = read_state(self.dir)
        if old is not None and old.get("status") == "done":
            raise ValueError(f"recording {self.id} is finished")
        if old is not None and old.get("mode") != self.mode:
            raise ValueError(f"recording {self.id} was started in {old.get('mode')} mode")
        self.resumed = old is not None
        part = int(old.get("parts", 0)) if old else 0
        self.state = {"recording_id": self.id, "room": self.room, "mode": self.mode,
                      "layout": self.layout, "status": "recording", "parts": part + 1,
                      "low_latency": self.mode == "composite" and self.options.low_latency,
                      "started_at": old.get("started_at") if old else time.time(),
                      "participants": old.get("participants", []) if old else []}
        self.participants = list(self.state["participants"])
        if self.mode == "composite":
            start = PartStart(Playlist(target_duration(self.options.segment_seconds)))
            if self.resumed and (rec := await asyncio.to_thread(vod.recover, self.dir)):
                rec.playlist.ended = False  # appended to with a discontinuity
                start = PartStart(rec.playlist, rec.next_part, rec.next_index)
            self.compositor = Compositor(self.dir, self.options, start, self._keyframe_from_thread)
            self.compositor.start()
        else:
            self.sink = PerTrackSink(self.dir, self.id, part)
        write_state(self.dir, self.state)
        self.udp, _ = await self._loop.create_datagram_endpoint(lambda: self, local_addr=(host, 0))
        sock = self.udp.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.port = self.udp.get_extra_info("sockname")[1]
        return self.port

    def add_track(self, ssrc: int, kind: str, codec: dict, participant_name: str,
                  participant: str | None = None, source: str = "") -> str:
        """`source`: "screen" makes a video track the composite's main picture."""
        check_int(ssrc, 0, MAX_U32, "ssrc")
        if ssrc in self.tracks:
            raise ValueError(f"ssrc {ssrc} already added")
        if len(self.tracks) >= MAX_TRACKS:
            raise ValueError(f"a recording takes at most {MAX_TRACKS} tracks")
        if kind not in ("audio", "video"):
            raise ValueError("kind must be audio or video")
        name = str(codec["name"]).upper().rpartition("/")[2]
        depacketizer = make_depacketizer(name)
        if depacketizer.kind != kind:
            raise ValueError(f"codec {name} is not {kind}")
        self._seq += 1
        track_id = f"{ssrc}-{self._seq}"
        key = participant or participant_name
        group = self.groups.setdefault(key, GroupClock())
        clock_rate = check_int(codec.get("clock_rate", 90000 if kind == "video" else 48000),
                               1, MAX_CLOCK_RATE, "clock_rate")
        payload_type = check_int(codec.get("payload_type", -1), -1, MAX_PAYLOAD_TYPE,
                                 "payload_type")
        channels = check_int(codec.get("channels", 2), 1, MAX_CHANNELS, "channels")
        jitter = JitterBuffer(
            depacketizer, lambda f: self._on_frame(track_id, ssrc, f),
            send_nack=lambda seqs: self._send_nack(ssrc, seqs),
            request_keyframe=lambda: self._send_pli(ssrc), max_delay=self.max_delay)
        track = Track(track_id, ssrc, kind, name, payload_type, clock_rate,
                      key, participant_name, jitter, TrackClock(clock_rate, group))
        self.tracks[ssrc] = track
        if participant_name not in self.participants:
            self.participants.append(participant_name)
            self.state["participants"] = self.participants
            write_state(self.dir, self.state)
        if self.compositor is not None:
            self.compositor.add_track(track_id, kind, name, participant_name, key,
                                      screen=source == "screen")
        if self.sink is not None:
            self.sink.add_track(TrackMeta(track_id, ssrc, kind, name, clock_rate,
                                          channels, key, participant_name, track.clock))
        if held_sr := self._held_sr.pop(ssrc, None):
            self._on_sr(track, *held_sr)
        for data, addr, now in self._held.pop(ssrc, ()):
            self._on_rtp(track, data, addr, now)
        return track_id

    def remove_track(self, ssrc: int) -> None:
        track = self.tracks.get(ssrc)
        if track is None:
            raise ValueError(f"no track with ssrc {ssrc}")
        track.jitter.flush()  # what is complete still goes out
        del self.tracks[ssrc]
        if self.compositor is not None:
            self.compositor.remove_track(track.track_id)
        if self.sink is not None:
            self.sink.remove_track(track.track_id)

    def set_layout(self, layout: str) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}")
        self.layout = self.state["layout"] = layout
        if self.compositor is not None:
            self.compositor.set_layout(layout)

    async def stop(self) -> dict:
        """Flush, close, finalize: the answer to `stop` and the recording.ready event."""
        self.stopped = True
        for track in self.tracks.values():
            track.jitter.flush()
        stats = [{"ssrc": t.ssrc, "kind": t.kind, "participant_name": t.name,
                  **dataclasses.asdict(t.jitter.stats)} for t in self.tracks.values()]
        if self.udp is not None:
            self.udp.close()
        result: dict = {}
        if self.compositor is not None:
            self.compositor.stop()
            await asyncio.to_thread(self.compositor.join)
            playlist = self.compositor.part.playlist
            # Even after a compositor failure the segments written before it are valid: they
            # still become the VOD, and the answer says what went wrong.
            result = await asyncio.to_thread(vod.finalize, self.dir, playlist)
            if self.compositor.error is not None:
                result["error"] = f"compositor failed: {self.compositor.error!r}"
        elif self.sink is not None:
            sidecar = await asyncio.to_thread(self.sink.stop)
            files = [self.dir / t["file"] for t in sidecar["tracks"]]
            result = {"playlist": None, "mp4": None, "poster": None,
                      "sidecar": str(self.dir / "tracks.json"),
                      "files": [str(f) for f in files],
                      "duration": max((t["start_offset"] + t["duration"]
                                       for t in sidecar["tracks"] if t["start_offset"] is not None),
                                      default=0.0),
                      "size": sum(f.stat().st_size for f in files if f.exists())}
        self.state["status"] = "done"
        write_state(self.dir, self.state)
        return {**result, "recording_id": self.id, "room": self.room, "mode": self.mode,
                "participants": self.participants, "directory": str(self.dir), "tracks": stats}

    def stats(self) -> dict:
        out: dict = {"recording_id": self.id, "mode": self.mode, "tracks": len(self.tracks)}
        if self.compositor is not None:
            out.update(self.compositor.stats())
        elif self.sink is not None:
            out.update(self.sink.stats())
        return out

    @property
    def failure(self) -> str | None:
        if self.compositor is not None and self.compositor.error is not None:
            return repr(self.compositor.error)
        return None

    def tick(self, now: float) -> None:
        for track in list(self.tracks.values()):
            track.jitter.poll(now)
        cutoff = now - HOLD_SECONDS
        for ssrc, held in list(self._held.items()):
            if held and held[-1][2] < cutoff:
                del self._held[ssrc]
        for ssrc, (_, arrival) in list(self._held_sr.items()):
            if arrival < cutoff:
                del self._held_sr[ssrc]

    # ---- packets --------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if self.stopped or len(data) < 8:
            return
        now = time.monotonic()
        try:
            if is_rtcp(data):
                for item in parse_compound(data):
                    if isinstance(item, SenderReport):
                        track = self.tracks.get(item.ssrc)
                        if track is None:
                            _hold(self._held_sr, item.ssrc, (item, now))
                        else:
                            self._on_sr(track, item, now)
                return
            ssrc = int.from_bytes(data[8:12], "big")
            track = self.tracks.get(ssrc)
            if track is None:
                held = self._held.get(ssrc)
                if held is None:
                    held = _hold(self._held, ssrc, deque(maxlen=HOLD_PACKETS))
                held.append((data, addr, now))
                return
            self._on_rtp(track, data, addr, now)
        except ValueError:
            log.debug("malformed packet from %s", addr)

    def _on_rtp(self, track: Track, data: bytes, addr: tuple, now: float) -> None:
        start, end = payload_offset(data), payload_end(data)
        _, b1, seq, ts, _ = RTP_HEADER.unpack_from(data)
        if track.payload_type >= 0 and b1 & 0x7F != track.payload_type:
            return
        track.addr = addr
        if end > start:
            track.jitter.push(seq, ts, bool(b1 & 0x80), bytes(data[start:end]), now)

    def _on_sr(self, track: Track, sr: SenderReport, now: float) -> None:
        track.clock.on_sender_report(ntp_to_seconds(sr.ntp_timestamp), sr.rtp_timestamp,
                                     self._wall(now))

    def _on_frame(self, track_id: str, ssrc: int, frame: Frame) -> None:
        track = self.tracks.get(ssrc)
        if track is None or track.track_id != track_id:
            return  # flushed from a removed track
        if self.compositor is not None:
            t = track.clock.time_of(frame.timestamp, self._wall(frame.arrival))
            self.compositor.push(track_id, frame, t)
        elif self.sink is not None:
            track.clock.time_of(frame.timestamp, self._wall(frame.arrival))  # anchor the clock
            self.sink.push(track_id, frame)

    @staticmethod
    def _wall(mono: float) -> float:
        return mono + (time.time() - time.monotonic())

    # ---- feedback -------------------------------------------------------------------------

    def _send(self, ssrc: int, packet_fn: Callable[[], bytes]) -> None:
        track = self.tracks.get(ssrc)
        if track is not None and track.addr is not None and self.udp is not None:
            self.udp.sendto(packet_fn(), track.addr)

    def _send_pli(self, ssrc: int) -> None:
        self._send(ssrc, lambda: build_pli(self.rtcp_ssrc, ssrc))

    def _send_nack(self, ssrc: int, seqs: list[int]) -> None:
        self._send(ssrc, lambda: build_nack(self.rtcp_ssrc, ssrc, seqs))

    def _keyframe_from_thread(self, track_id: str) -> None:
        ssrc = int(track_id.split("-")[0])
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._send_pli, ssrc)


def _hold(table: dict, ssrc: int, value: T) -> T:
    """Keep `value` for an SSRC not announced yet; the oldest SSRC goes when HOLD_SSRCS are
    held already (dicts keep insertion order)."""
    table.pop(ssrc, None)
    while len(table) >= HOLD_SSRCS:
        del table[next(iter(table))]
    table[ssrc] = value
    return value
