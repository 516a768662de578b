"""What was watched of a recording: the player page's reports (events of kind `play`) turned
into the figures of GET /api/recordings/{id}/analytics (docs/analytics.md).

A report carries what one view (one page load, `session` = its id) played since its last
report: `ranges` [[from, to, rate]] in seconds of the recording, `seeks` [[from, to]], `pauses`,
`visible` (seconds the tab was visible), `live` (watched while the recording ran), `duration`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from .events import Event

MAX_SECONDS = 24 * 3600  # a recording longer than a day is cut there for the per-second figures


def _runs(flags: list[bool]) -> list[list[int]]:
    """[[from, to]] of the runs of True (seconds, `to` exclusive)."""
    out: list[list[int]] = []
    for s, flag in enumerate(flags):
        if flag:
            if out and out[-1][1] == s:
                out[-1][1] = s + 1
            else:
                out.append([s, s + 1])
    return out


def analyze(events: list[Event], duration: float | None, viewer: str | None = None
            ) -> dict[str, Any]:
    plays = [e for e in events if e.kind == "play" and (viewer is None or e.identity == viewer)]
    views: dict[str, dict[str, Any]] = {}
    for e in plays:
        v = views.setdefault(e.session, {"identity": e.identity, "ranges": [], "seeks": [],
                                         "live": 0.0, "replay": 0.0, "pauses": 0,
                                         "visible": 0.0})
        for item in e.data.get("ranges", []):
            a, b, rate = float(item[0]), float(item[1]), float(item[2]) if len(item) > 2 else 1.0
            if b <= a or a < 0:
                continue
            v["ranges"].append((a, b))
            watched = (b - a) / (rate if rate > 0 else 1.0)
            v["live" if e.data.get("live") else "replay"] += watched
        for a, b in e.data.get("seeks", []):
            v["seeks"].append((float(a), float(b)))
        v["pauses"] += int(e.data.get("pauses", 0))
        v["visible"] += float(e.data.get("visible", 0))
        if duration is None and e.data.get("duration"):
            duration = float(e.data["duration"])
    watched_views = {k: v for k, v in views.items() if v["ranges"]}
    if not duration:
        duration = max((b for v in views.values() for _, b in v["ranges"]), default=0.0)
    n = min(MAX_SECONDS, math.ceil(duration))
    per_second = [0] * n
    rewatched = [False] * n
    skipped = [False] * n
    reached: list[float] = []
    for v in watched_views.values():
        plays_of = [0] * n
        for a, b in v["ranges"]:  # second s is played when its middle is inside
            for s in range(max(0, math.ceil(a - 0.5)), min(n, math.ceil(b - 0.5))):
                plays_of[s] += 1
        jumped = [False] * n
        for a, b in v["seeks"]:
            if b > a:  # forward: what lies between was skipped
                for s in range(max(0, math.ceil(a - 0.5)), min(n, math.ceil(b - 0.5))):
                    jumped[s] = True
        for s in range(n):
            if plays_of[s]:
                per_second[s] += 1
                if plays_of[s] > 1:
                    rewatched[s] = True
            elif jumped[s]:
                skipped[s] = True
        reached.append(max(b for _, b in v["ranges"]))
    count = len(watched_views)

    def share(k: int) -> float:
        return round(k / count, 3) if count else 0.0

    dropoff = [[s, share(sum(1 for r in reached if r > s))] for s in range(n)]
    completion = {str(q): share(sum(1 for r in reached if r >= min(duration * q / 100,
                                                                    duration - 1)))
                  for q in (25, 50, 75, 100)}
    return {"views": count,
            "uniqueViewers": len({v["identity"] for v in watched_views.values()}),
            "liveMinutes": round(sum(v["live"] for v in views.values()) / 60, 2),
            "replayMinutes": round(sum(v["replay"] for v in views.values()) / 60, 2),
            "duration": round(duration, 3),
            "perSecond": per_second,
            "unwatched": _runs([c == 0 for c in per_second]),
            "watchedOnce": _runs([c == 1 and not r for c, r in zip(per_second, rewatched,
                                                                    strict=True)]),
            "rewatched": _runs(rewatched),
            "skipped": _runs(skipped),
            "dropoff": dropoff,
            "completion": completion,
            "pauses": sum(v["pauses"] for v in views.values()),
            "visibleMinutes": round(sum(v["visible"] for v in views.values()) / 60, 2)}


def viewers(events: list[Event]) -> list[str]:
    seen: dict[str, None] = defaultdict(lambda: None)
    for e in events:
        if e.kind == "play" and e.identity:
            seen[e.identity] = None
    return list(seen)
