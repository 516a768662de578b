"""RTP timestamps -> local wall-clock seconds, lip-synced per participant (RFC 3550 section 6.4.1).

A sender report pairs an RTP timestamp of one SSRC with the sender's NTP clock. Every track of
one participant (a "group": one sender, one NTP clock) shares a single offset between that
sender clock and ours, so audio and video of a participant stay aligned however late each
arrived. The offset is fixed when the group's first SR is seen: it keeps continuous the track
that carried the SR (which until then ran on arrival time), and gives every other track of the
group the same relation. Before its own first SR a track runs on arrival time: the arrival of
its first frame plus RTP time elapsed since.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class GroupClock:
    offset: float | None = None  # local seconds = sender NTP seconds + offset


class TrackClock:
    def __init__(self, clock_rate: int, group: GroupClock) -> None:
        self.rate = clock_rate
        self.group = group
        self._last: int | None = None  # last extended RTP timestamp seen
        self._anchor: tuple[int, float] | None = None  # (ext ts, local time), before any SR
        self._sr: tuple[int, float] | None = None  # (ext ts, sender NTP seconds)
        self.first_ts: int | None = None  # extended timestamp of the first frame

    def extend(self, ts: int) -> int:
        """32-bit RTP timestamp -> monotonic extended value (wraps counted around the last)."""
        if self._last is None:
            self._last = ts
            return ts
        diff = ((ts - self._last + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
        ext = self._last + diff
        self._last = max(self._last, ext)
        return ext

    def on_sender_report(self, ntp_seconds: float, rtp_ts: int, arrival: float) -> None:
        ext = self.extend(rtp_ts)
        if self.group.offset is None:
            if self._anchor is not None:
                self.group.offset = self._provisional(ext) - ntp_seconds
            else:
                self.group.offset = arrival - ntp_seconds
        self._sr = (ext, ntp_seconds)

    def time_of(self, ts: int, arrival: float) -> float:
        """Local seconds of a frame with RTP timestamp `ts` that arrived at `arrival`."""
        ext = self.extend(ts)
        if self.first_ts is None:
            self.first_ts = ext
        return self.time_of_ext(ext, arrival)

    def time_of_ext(self, ext: int, arrival: float | None = None) -> float:
        if self._sr is not None and self.group.offset is not None:
            sr_ext, sr_ntp = self._sr
            return sr_ntp + (ext - sr_ext) / self.rate + self.group.offset
        if self._anchor is None:
            self._anchor = (ext, arrival if arrival is not None else 0.0)
        return self._provisional(ext)

    def _provisional(self, ext: int) -> float:
        assert self._anchor is not None
        return self._anchor[1] + (ext - self._anchor[0]) / self.rate

    @property
    def synced(self) -> bool:
        return self._sr is not None and self.group.offset is not None
