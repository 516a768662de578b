"""Per-view summaries of the player's reports (docs/analytics.md, "Replay summaries").

A recording's figures need, per view, only: how often it played each second, which seconds a
forward seek jumped over, the furthest position it played, the viewer's seconds live and on
replay, pauses, visible seconds, its identity and the duration it reported. The event log's
writer (events.py) folds each `play` report into its view's `ViewSummary` in the same write as
the raw report, so GET /api/recordings/{id}/analytics reads one summary per view instead of
every report (replay_analytics.from_summaries).

Several nodes: each node keeps its own partial summary of a view (stored under the node's
name) and updates only that one; a view whose player switched nodes has one partial per node,
merged at read (`merge`: counts added, jumps or-ed, furthest max, sums added, the earliest
report's identity and duration). So no node ever reads-modifies-writes another's row.

The per-second arrays are saturating uint16 counts (a second played 65,535 times stays there:
only "played" and "played twice" matter) and 0/1 bytes, zlib-compressed when stored.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_SECONDS = 24 * 3600  # as replay_analytics: seconds past a day are not counted
# bytes of per-second arrays a node keeps in memory (about 4,600 views of a 2-hour recording);
# the least recently updated beyond are read back from the store at their next report
CACHE_BYTES = 64 << 20
_COUNT = np.dtype("<u2")
_TOP = np.iinfo(_COUNT).max


def _span(a: float, b: float) -> tuple[int, int]:
    """The whole seconds [lo, hi) whose middles lie in [a, b) (replay_analytics._second_spans)."""
    return (min(MAX_SECONDS, max(0, math.ceil(a - 0.5))),
            min(MAX_SECONDS, max(0, math.ceil(b - 0.5))))


def _grow(array: np.ndarray, size: int) -> np.ndarray:
    if array.size >= size:
        return array
    out = np.zeros(size, dtype=array.dtype)
    out[:array.size] = array
    return out


@dataclass(slots=True)
class ViewSummary:
    identity: str = ""
    first: float = math.inf  # time of its first report: whose identity it is
    last: float = 0.0  # time of its last report: retention
    duration: float | None = None  # the duration its first report with one gave
    duration_at: float = math.inf
    reached: float = -1.0  # the furthest end of a played range; < 0: nothing played
    live: float = 0.0  # seconds of the viewer's time played while the recording ran
    replay: float = 0.0
    pauses: int = 0
    visible: float = 0.0
    position: float | None = None  # where its last report left the player
    reports: int = 0
    plays: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=_COUNT))
    jumped: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))
    dvr: float = 0.0  # of `live`: played by the room's catch-up player ("dvr" reports)

    @property
    def nbytes(self) -> int:
        return self.plays.nbytes + self.jumped.nbytes

    def add(self, at: float, identity: str, data: dict[str, Any]) -> None:
        """Fold one `play` report in (what replay_analytics.analyze reads of it)."""
        self.reports += 1
        if at < self.first:
            self.first, self.identity = at, identity
        if at >= self.last:
            self.last = at
            if isinstance(data.get("position"), int | float):
                self.position = float(data["position"])
        if data.get("duration") and at < self.duration_at:
            self.duration, self.duration_at = float(data["duration"]), at
        live, dvr = bool(data.get("live")), bool(data.get("dvr"))
        for item in data.get("ranges") or ():
            a, b = float(item[0]), float(item[1])
            if not (b > a and a >= 0):
                continue
            rate = float(item[2]) if len(item) > 2 else 1.0
            watched = (b - a) / (rate if rate > 0 else 1.0)
            if live:
                self.live += watched
                if dvr:
                    self.dvr += watched
            else:
                self.replay += watched
            self.reached = max(self.reached, b)
            lo, hi = _span(a, b)
            if lo < hi:
                self.plays = _grow(self.plays, hi)
                seg = self.plays[lo:hi]
                np.add(seg, 1, out=seg, where=seg < _TOP)
        for a, b in data.get("seeks") or ():
            if b > a:  # forward: what lies between was jumped over
                lo, hi = _span(float(a), float(b))
                if lo < hi:
                    self.jumped = _grow(self.jumped, hi)
                    self.jumped[lo:hi] = 1
        self.pauses += int(data.get("pauses", 0))
        self.visible += float(data.get("visible", 0))

    def merge(self, other: ViewSummary) -> None:
        """Add another node's partial summary of the same view."""
        if other.first < self.first:
            self.first, self.identity = other.first, other.identity
        if other.last >= self.last:
            self.last, self.position = other.last, other.position
        if other.duration_at < self.duration_at:
            self.duration, self.duration_at = other.duration, other.duration_at
        self.reached = max(self.reached, other.reached)
        self.live += other.live
        self.dvr += other.dvr
        self.replay += other.replay
        self.pauses += other.pauses
        self.visible += other.visible
        self.reports += other.reports
        size = max(self.plays.size, other.plays.size)
        total = _grow(self.plays, size).astype(np.uint32)
        total[:other.plays.size] += other.plays
        self.plays = np.minimum(total, _TOP).astype(_COUNT)
        self.jumped = _grow(self.jumped, other.jumped.size).copy()
        self.jumped[:other.jumped.size] |= other.jumped

    # ---- stored form ---------------------------------------------------------------------

    def dump(self) -> bytes:
        head = json.dumps({
            "identity": self.identity, "first": self.first, "last": self.last,
            "duration": self.duration, "durationAt": _finite(self.duration_at),
            "reached": self.reached, "live": self.live, "replay": self.replay,
            "pauses": self.pauses, "visible": self.visible, "position": self.position,
            "reports": self.reports, "dvr": self.dvr, "plays": int(self.plays.size),
            "jumped": int(self.jumped.size)}, separators=(",", ":")).encode()
        body = self.plays.astype(_COUNT, copy=False).tobytes() + self.jumped.tobytes()
        return struct.pack("<I", len(head)) + head + zlib.compress(body, 1)

    @classmethod
    def load(cls, blob: bytes) -> ViewSummary:
        (size,) = struct.unpack_from("<I", blob)
        head = json.loads(blob[4:4 + size])
        body = zlib.decompress(blob[4 + size:])
        n = head["plays"] * _COUNT.itemsize
        at = head["durationAt"]
        return cls(head["identity"], head["first"], head["last"], head["duration"],
                   math.inf if at is None else at, head["reached"], head["live"],
                   head["replay"], head["pauses"], head["visible"], head["position"],
                   head["reports"], np.frombuffer(body[:n], dtype=_COUNT).copy(),
                   np.frombuffer(body[n:], dtype=np.uint8).copy(), head.get("dvr", 0.0))


def _finite(x: float) -> float | None:
    return None if math.isinf(x) else x


Key = tuple[str, str, str]  # (recording, view, node): one node's partial summary of a view


def merged(parts: Iterable[tuple[str, bytes]]) -> dict[str, ViewSummary]:
    """(view id, stored partial) of every node -> one summary per view."""
    out: dict[str, ViewSummary] = {}
    for view, blob in parts:
        summary = ViewSummary.load(blob)
        if view in out:
            out[view].merge(summary)
        else:
            out[view] = summary
    return out


class Summaries:
    """This node's partial summaries: the recently updated ones in memory (LRU), the others
    read back from the store on their next report (`missing` / `put`). `owner`: the name
    this process's partials are stored under (None: each event's node)."""

    def __init__(self, size: int = CACHE_BYTES, owner: str | None = None) -> None:
        self.size = size
        self.owner = owner
        self.cache: OrderedDict[Key, ViewSummary] = OrderedDict()
        self.bytes = 0  # of the arrays in `cache`

    def missing(self, plays: Iterable[Any]) -> list[Key]:
        """The keys of these `play` events' partials not in memory: the caller loads them."""
        return list(dict.fromkeys(k for e in plays if (k := self.key(e)) not in self.cache))

    def key(self, e: Any) -> Key:
        return (e.recording, e.session, e.node if self.owner is None else self.owner)

    def put(self, key: Key, blob: bytes | None) -> None:
        self._drop(key)
        summary = self.cache[key] = ViewSummary() if blob is None else ViewSummary.load(blob)
        self.bytes += summary.nbytes

    def apply(self, plays: Iterable[Any]) -> dict[Key, tuple[float, bytes]]:
        """Fold the events in (their partials loaded first); the touched ones: their last
        report's time and their stored form."""
        touched: dict[Key, ViewSummary] = {}
        for e in plays:
            k = self.key(e)
            summary = self.cache.get(k)
            if summary is None:  # not loaded: a view this node had not seen
                summary = self.cache[k] = ViewSummary()
            self.bytes -= summary.nbytes
            summary.add(e.at, e.identity, e.data)
            self.bytes += summary.nbytes
            touched[k] = summary
        out = {k: (s.last, s.dump()) for k, s in touched.items()}
        for k in touched:
            self.cache.move_to_end(k)
        while self.bytes > self.size and len(self.cache) > 1:
            self._drop(next(iter(self.cache)))
        return out

    def _drop(self, k: Key) -> None:
        summary = self.cache.pop(k, None)
        if summary is not None:
            self.bytes -= summary.nbytes

    def forget(self, keys: Iterable[Key] | None = None) -> None:
        """After a failed write or a purge: what memory holds may not be what is stored."""
        if keys is None:
            self.cache.clear()
            self.bytes = 0
        else:
            for k in keys:
                self._drop(k)
