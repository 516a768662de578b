"""What was watched of a recording: the player page's reports (events of kind `play`) turned
into the figures of GET /api/recordings/{id}/analytics (docs/analytics.md).

A report carries what one view (one page load, `session` = its id) played since its last
report: `ranges` [[from, to, rate]] in seconds of the recording, `seeks` [[from, to]], `pauses`,
`visible` (seconds the tab was visible), `live` (watched while the recording ran), `duration`.

The per-second figures are counted with numpy: each view's played ranges become +1/-1 steps
at their first and past-the-last second, a cumulative sum gives how often the view played each
second; views are taken in blocks so memory stays bounded (a block is at most BLOCK_CELLS
view-seconds). benchmarks/analytics.py measures it on a 2-hour recording with 1,000 views.

The API reads the same figures from the per-view summaries the event log keeps
(`from_summaries`, view_summaries.py): one summary per view instead of every report. `analyze`
is the full recomputation from the reports (tests compare the two), and the path for a
recording without summaries.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from .events import Event
from .view_summaries import ViewSummary

MAX_SECONDS = 24 * 3600  # a recording longer than a day is cut there for the per-second figures
BLOCK_CELLS = 4_000_000  # views x seconds counted at once (int64: 32 MB)


def _runs(flags: np.ndarray) -> list[list[int]]:
    """[[from, to]] of the runs of True (seconds, `to` exclusive)."""
    edges = np.diff(np.concatenate(([0], flags.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return [[a, b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


def _second_spans(view: np.ndarray, a: np.ndarray, b: np.ndarray, n: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranges of positions as spans of whole seconds [lo, hi): second s is in a range when its
    middle (s + 0.5) is. Empty spans are left out."""
    lo = np.clip(np.ceil(a - 0.5), 0, n).astype(np.int64)
    hi = np.clip(np.ceil(b - 0.5), 0, n).astype(np.int64)
    keep = lo < hi
    return view[keep], lo[keep], hi[keep]


def _counts(view: np.ndarray, lo: np.ndarray, hi: np.ndarray, first: int, count: int, n: int
            ) -> np.ndarray:
    """A (count, n) array: how many of its spans cover each second, for views first.."""
    pick = (view >= first) & (view < first + count)
    base = (view[pick] - first) * (n + 1)
    size = count * (n + 1)
    steps = np.bincount(base + lo[pick], minlength=size) - \
        np.bincount(base + hi[pick], minlength=size)
    return np.cumsum(steps.reshape(count, n + 1), axis=1)[:, :n]


def _columns(items: list[list[float]], width: int, default: float = 1.0) -> np.ndarray:
    """(len(items), width) floats; a shorter item's missing columns are `default`."""
    try:
        out = np.array(items, dtype=np.float64)  # all of one length: in one go
        if out.ndim == 2 and out.shape[1] == width:
            return out
    except ValueError:  # ragged
        pass
    out = np.full((len(items), width), default)
    for i, item in enumerate(items):
        out[i, :len(item)] = item[:width]
    return out


def analyze(events: list[Event], duration: float | None, viewer: str | None = None
            ) -> dict[str, Any]:
    index: dict[str, int] = {}  # view id -> its number, in the order views first reported
    identity: list[str] = []
    ranges: list[list[float]] = []  # [from, to(, rate)] of every report, in order
    range_view: list[int] = []  # per report with ranges: its view, how many, live or not
    range_count: list[int] = []
    range_live: list[bool] = []
    range_dvr: list[bool] = []
    seeks: list[list[float]] = []
    seek_view: list[int] = []
    seek_count: list[int] = []
    visible = 0.0
    pauses = 0
    for e in events:
        if e.kind != "play" or (viewer is not None and e.identity != viewer):
            continue
        data = e.data
        v = index.get(e.session)
        if v is None:
            v = index[e.session] = len(identity)
            identity.append(e.identity)
        got = data.get("ranges")
        if got:
            ranges += got
            range_view.append(v)
            range_count.append(len(got))
            range_live.append(bool(data.get("live")))
            range_dvr.append(bool(data.get("live")) and bool(data.get("dvr")))
        got = data.get("seeks")
        if got:
            seeks += got
            seek_view.append(v)
            seek_count.append(len(got))
        pauses += int(data.get("pauses", 0))
        visible += float(data.get("visible", 0))
        if duration is None and data.get("duration"):
            duration = float(data["duration"])
    views = len(identity)
    a, b, rate = _columns(ranges, 3).T
    view = np.repeat(np.asarray(range_view, dtype=np.int64), range_count)
    live = np.repeat(np.asarray(range_live, dtype=bool), range_count)
    dvr = np.repeat(np.asarray(range_dvr, dtype=bool), range_count)
    keep = (b > a) & (a >= 0)
    a, b, rate, view, live, dvr = a[keep], b[keep], rate[keep], view[keep], live[keep], dvr[keep]
    watched = (b - a) / np.where(rate > 0, rate, 1.0)  # seconds of the viewer's time
    # views that played something, numbered 0..count-1 in the order they came
    played = np.zeros(views, dtype=bool)
    played[view] = True
    renumber = np.cumsum(played) - 1
    count = int(played.sum())
    if not duration:
        duration = float(b.max()) if b.size else 0.0
    n = min(MAX_SECONDS, math.ceil(duration))
    view = renumber[view]
    reached = np.full(count, -np.inf)
    np.maximum.at(reached, view, b)
    s_view = np.repeat(np.asarray(seek_view, dtype=np.int64), seek_count)
    s_from, s_to = _columns(seeks, 2).T
    forward = (s_to > s_from) & played[s_view]  # what lies between was skipped
    span_view, span_lo, span_hi = _second_spans(view, a, b, n)
    jump_view, jump_lo, jump_hi = _second_spans(renumber[s_view[forward]], s_from[forward],
                                                s_to[forward], n)
    per_second = np.zeros(n, dtype=np.int64)
    rewatched = np.zeros(n, dtype=bool)
    skipped = np.zeros(n, dtype=bool)
    block = max(1, BLOCK_CELLS // (n + 1))
    for first in range(0, count, block):
        size = min(block, count - first)
        plays = _counts(span_view, span_lo, span_hi, first, size, n)
        per_second += (plays > 0).sum(axis=0)
        rewatched |= (plays > 1).any(axis=0)
        if jump_view.size:
            jumped = _counts(jump_view, jump_lo, jump_hi, first, size, n)
            skipped |= ((jumped > 0) & (plays == 0)).any(axis=0)

    return _figures(reached, duration, per_second, rewatched, skipped,
                    len({identity[v] for v in np.flatnonzero(played).tolist()}),
                    float(watched[live].sum()), float(watched[~live].sum()), pauses, visible,
                    float(watched[dvr].sum()))


def from_summaries(views: dict[str, ViewSummary], duration: float | None,
                   viewer: str | None = None) -> dict[str, Any]:
    """The same figures from the per-view summaries (view_summaries.py) the log keeps: one
    per view instead of every report."""
    picked = [v for v in views.values() if viewer is None or v.identity == viewer]
    played = [v for v in picked if v.reached >= 0]
    if duration is None:
        dated = [v for v in picked if v.duration]
        if dated:
            duration = min(dated, key=lambda v: v.duration_at).duration
    if not duration:
        duration = max((v.reached for v in played), default=0.0)
    assert duration is not None
    n = min(MAX_SECONDS, math.ceil(duration))
    per_second = np.zeros(n, dtype=np.int64)
    rewatched = np.zeros(n, dtype=bool)
    skipped = np.zeros(n, dtype=bool)
    for v in played:
        plays = v.plays[:n]
        m = plays.size
        per_second[:m] += plays > 0
        rewatched[:m] |= plays > 1
        jumped = v.jumped[:n].astype(bool)
        if jumped.any():
            unplayed = np.ones(jumped.size, dtype=bool)
            k = min(m, jumped.size)
            unplayed[:k] = plays[:k] == 0
            skipped[:jumped.size] |= jumped & unplayed
    return _figures(np.array([v.reached for v in played]), duration, per_second, rewatched,
                    skipped, len({v.identity for v in played}),
                    math.fsum(v.live for v in played), math.fsum(v.replay for v in played),
                    sum(v.pauses for v in picked), math.fsum(v.visible for v in picked),
                    math.fsum(v.dvr for v in played))


def _figures(reached: np.ndarray, duration: float, per_second: np.ndarray,
             rewatched: np.ndarray, skipped: np.ndarray, unique: int, live: float,
             replay: float, pauses: int, visible: float, dvr: float) -> dict[str, Any]:
    """The answer, from the played views' furthest positions and the per-second counts."""
    count = reached.size
    n = per_second.size

    def share(k: int) -> float:
        return round(k / count, 3) if count else 0.0

    ends = np.sort(reached)
    past = count - np.searchsorted(ends, np.arange(n), side="right")  # views with r > s
    dropoff = [[s, share(k)] for s, k in enumerate(past.tolist())]
    completion = {str(q): share(count - int(np.searchsorted(
        ends, min(duration * q / 100, duration - 1), side="left")))
                  for q in (25, 50, 75, 100)}
    return {"views": count,
            "uniqueViewers": unique,
            "liveMinutes": round(live / 60, 2),
            "replayMinutes": round(replay / 60, 2),
            "dvrMinutes": round(dvr / 60, 2),
            "duration": round(duration, 3),
            "perSecond": per_second.tolist(),
            "unwatched": _runs(per_second == 0),
            "watchedOnce": _runs((per_second == 1) & ~rewatched),
            "rewatched": _runs(rewatched),
            "skipped": _runs(skipped),
            "dropoff": dropoff,
            "completion": completion,
            "pauses": pauses,
            "visibleMinutes": round(visible / 60, 2)}


def viewers(events: list[Event]) -> list[str]:
    seen: dict[str, None] = defaultdict(lambda: None)
    for e in events:
        if e.kind == "play" and e.identity:
            seen[e.identity] = None
    return list(seen)
