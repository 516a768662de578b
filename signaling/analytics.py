"""Sessions and per-session reports, computed from a room's event log (events.py).

A room's **session** runs from its first join to its last leave: the union of the
participants' memberships (join or resume .. leave), split where nobody was in the room. Its
id is `s-<milliseconds of its first join>`, so it stays the same on every node and every read.
Pure functions of the events; docs/analytics.md describes every figure and the score.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .events import Event

TALK_FULL = 60.0  # seconds of speaking that count as the full talk part of the score
ACTIONS_FULL = 5  # chat + questions + upvotes + votes + reactions + hands for the full part
WEIGHTS = {"attendance": 0.4, "attention": 0.2, "talk": 0.2, "interaction": 0.2}
STAYED_SLACK = 60.0  # left at most this long (or 5% of the session) before its end: stayed
COUNTED = {"chat": "chat", "qa.ask": "questions", "qa.upvote": "upvotes", "poll.vote": "votes",
           "reaction": "reactions", "hand": "hands"}
CSV_COLUMNS = ("identity", "name", "role", "intervals", "presentSeconds", "talkSeconds",
               "cameraSeconds", "visibleSeconds", "chat", "questions", "upvotes", "votes",
               "reactions", "hands", "breakouts", "score")

Interval = tuple[float, float]


@dataclass
class Member:
    """One participant session (participant id) in the room."""

    pid: str
    identity: str
    name: str
    role: str
    node: str
    member: list[list[float | None]] = field(default_factory=list)  # [join, leave|None]
    present: list[list[float | None]] = field(default_factory=list)  # [from, to|None]
    hidden_since: float | None = None
    visible: list[list[float | None]] = field(default_factory=list)

    @property
    def is_member(self) -> bool:
        return bool(self.member) and self.member[-1][1] is None

    @property
    def is_present(self) -> bool:
        return bool(self.present) and self.present[-1][1] is None

    def arrive(self, at: float) -> None:
        if not self.is_member:
            self.member.append([at, None])
        if not self.is_present:
            self.present.append([at, None])
            self.visible.append([at, None])
            self.hidden_since = None

    def away(self, at: float) -> None:  # socket dropped: place kept, not present
        if self.is_present:
            self.present[-1][1] = at
            if self.visible and self.visible[-1][1] is None:
                self.visible[-1][1] = at

    def leave(self, at: float) -> None:
        self.away(at)
        if self.is_member:
            self.member[-1][1] = at

    def visibility(self, at: float, visible: bool) -> None:
        if not self.is_present:
            return
        open_ = bool(self.visible) and self.visible[-1][1] is None
        if visible and not open_:
            self.visible.append([at, None])
        elif not visible and open_:
            self.visible[-1][1] = at


@dataclass
class Session:
    id: str
    started: float
    ended: float | None
    members: list[Member]
    events: list[Event]
    since: float = 0.0  # the end of the session before (tokens issued since count as invited)

    def summary(self) -> dict[str, Any]:
        tl = timeline(self)
        return {"id": self.id, "started": _r(self.started), "ended": _r(self.ended),
                "participants": len({m.identity for m in self.members}),
                "peak": max((c for _, c in tl), default=0)}


def _r(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def _closed(intervals: list[list[float | None]], end: float) -> list[Interval]:
    return [(a, b if b is not None else end) for a, b in intervals if a is not None]


def merge(intervals: list[Interval]) -> list[Interval]:
    out: list[list[float]] = []
    for a, b in sorted(intervals):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def intersect(xs: list[Interval], ys: list[Interval]) -> list[Interval]:
    xs, ys = merge(xs), merge(ys)
    out, i, j = [], 0, 0
    while i < len(xs) and j < len(ys):
        a, b = max(xs[i][0], ys[j][0]), min(xs[i][1], ys[j][1])
        if a < b:
            out.append((a, b))
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return out


def total(intervals: list[Interval]) -> float:
    return sum(b - a for a, b in merge(intervals))


# ---- sessions -------------------------------------------------------------------------------


def sessions(events: list[Event], now: float) -> list[Session]:
    """The room's sessions, oldest first, from its events (sorted by time)."""
    members: dict[str, Member] = {}
    last_seen: dict[str, float] = {}  # node -> time of its last event
    for e in events:
        if e.kind == "node.start":  # a node restarted: what it had open ended with it
            end = last_seen.get(e.node)
            for m in members.values():
                if m.node == e.node and m.is_member:
                    m.leave(max(end or e.at, m.member[-1][0] or e.at))
            continue
        last_seen[e.node] = e.at
        if not e.session:
            continue
        m = members.get(e.session)
        if e.kind in ("join", "resume"):
            if m is None:
                m = members[e.session] = Member(e.session, e.identity, e.name, e.role, e.node)
            m.node = e.node
            m.arrive(e.at)
        elif m is None:
            continue
        elif e.kind == "drop":
            m.away(e.at)
        elif e.kind == "leave":
            m.leave(e.at)
        elif e.kind == "visibility":
            m.visibility(e.at, bool(e.data.get("visible")))
    # memberships grouped into sessions: overlapping spans are one session
    spans = sorted(((iv[0], iv[1], m) for m in members.values() for iv in m.member),
                   key=lambda s: s[0])
    at = [e.at for e in events]
    out: list[Session] = []
    group: list[Member] = []
    in_group: set[str] = set()  # their pids (a list's `in` compared whole dataclasses)
    start = end = None
    open_ = False
    for a, b, m in spans:
        if start is not None and not open_ and a > end:
            out.append(_session(start, end, group, events, at))
            group, in_group, start = [], set(), None
        if start is None:
            start, end, open_ = a, a, False
        if b is None:
            open_ = True
        else:
            end = max(end, b)
        if m.pid not in in_group:
            in_group.add(m.pid)
            group.append(m)
    if start is not None:
        out.append(_session(start, None if open_ else end, group, events, at))
    return out


def _session(start: float, end: float | None, members: list[Member], events: list[Event],
             at: list[float]) -> Session:
    hi = end if end is not None else math.inf
    # events are sorted by time (`at`: their times): the session's are one slice
    inside = events[bisect.bisect_left(at, start):bisect.bisect_right(at, hi)]
    return Session(f"s-{int(start * 1000)}", start, end, members, inside)


def timeline(s: Session, now: float | None = None) -> list[list[float]]:
    """[[t, concurrent participants]] at every change, from the start to the end."""
    end = s.ended if s.ended is not None else (now or s.started)
    changes: dict[float, int] = defaultdict(int)
    for m in s.members:
        for a, b in merge(_closed(m.present, end)):
            changes[a] += 1
            changes[b] -= 1
    out: list[list[float]] = []
    count = 0
    for t in sorted(changes):
        count += changes[t]
        if out and out[-1][0] == round(t, 3):
            out[-1][1] = count
        else:
            out.append([round(t, 3), count])
    return out


# ---- the report -----------------------------------------------------------------------------


def score(present: float, visible: float, talk: float, actions: int, duration: float
          ) -> float:
    """0-10: 10 x (0.4 attendance + 0.2 attention + 0.2 talk + 0.2 interaction), each 0-1:
    attendance = present / session duration, attention = visible / present, talk = talk
    seconds / 60, interaction = actions / 5 (docs/analytics.md)."""
    parts = {"attendance": min(1.0, present / duration) if duration > 0 else 0.0,
             "attention": min(1.0, visible / present) if present > 0 else 0.0,
             "talk": min(1.0, talk / TALK_FULL),
             "interaction": min(1.0, actions / ACTIONS_FULL)}
    return round(10 * sum(WEIGHTS[k] * v for k, v in parts.items()), 1)


def report(s: Session, now: float, all_events: list[Event] | None = None) -> dict[str, Any]:
    """The session's report (GET /api/rooms/{room}/sessions/{session}/report)."""
    end = s.ended if s.ended is not None else now
    duration = max(0.0, end - s.started)
    by_identity: dict[str, list[Member]] = defaultdict(list)
    for m in s.members:
        by_identity[m.identity].append(m)
    talk: dict[str, list[list[float | None]]] = defaultdict(list)
    cams: dict[str, dict[str, list[list[float | None]]]] = defaultdict(lambda: defaultdict(list))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTED.values(), 0))
    groups: dict[str, list[str]] = defaultdict(list)
    for e in s.events:
        if e.kind == "speak.start":
            if not talk[e.identity] or talk[e.identity][-1][1] is not None:
                talk[e.identity].append([e.at, None])
        elif e.kind == "speak.stop":
            if talk[e.identity] and talk[e.identity][-1][1] is None:
                talk[e.identity][-1][1] = e.at
        elif e.kind in ("track.publish", "track.unpublish", "track.mute"):
            if e.data.get("media") != "video" or e.data.get("source") != "camera":
                continue
            spans = cams[e.identity][e.data.get("track", "")]
            on = e.kind != "track.unpublish" and not e.data.get("muted")
            if on and (not spans or spans[-1][1] is not None):
                spans.append([e.at, None])
            elif not on and spans and spans[-1][1] is None:
                spans[-1][1] = e.at
        elif e.kind in COUNTED:
            if e.kind == "hand" and not e.data.get("raised"):
                continue
            counts[e.identity][COUNTED[e.kind]] += 1
        elif e.kind == "move":
            name = e.data.get("groupName") or e.data.get("group")
            if name and name not in groups[e.identity]:
                groups[e.identity].append(name)
    participants = []
    for identity, ms in by_identity.items():
        present = merge([iv for m in ms for iv in _closed(m.present, end)])
        visible = intersect([iv for m in ms for iv in _closed(m.visible, end)], present)
        spoke = intersect(_closed(talk.get(identity, []), end), present)
        camera = intersect([iv for spans in cams.get(identity, {}).values()
                            for iv in _closed(spans, end)], present)
        c = counts[identity]
        first = ms[0]
        seconds = {"presentSeconds": total(present), "talkSeconds": total(spoke),
                   "cameraSeconds": total(camera), "visibleSeconds": total(visible)}
        participants.append({
            "identity": identity, "name": first.name, "role": first.role,
            "intervals": [[round(a, 3), round(b, 3)] for a, b in
                          merge([iv for m in ms for iv in _closed(m.member, end)])],
            **{k: round(v, 1) for k, v in seconds.items()}, **c,
            "breakouts": groups.get(identity, []),
            # for the dashboard's strips (JSON only, not in the CSV)
            "presentIntervals": [[round(a, 3), round(b, 3)] for a, b in present],
            "talkIntervals": [[round(a, 3), round(b, 3)] for a, b in spoke],
            "score": score(seconds["presentSeconds"], seconds["visibleSeconds"],
                           seconds["talkSeconds"], sum(c.values()), duration)})
    participants.sort(key=lambda p: p["intervals"][0][0] if p["intervals"] else 0)
    tl = timeline(s, now)
    area = sum((b[0] - a[0]) * a[1] for a, b in zip(tl, tl[1:], strict=False))
    summary = {**s.summary(), "duration": round(duration, 1),
               "average": round(area / duration, 2) if duration > 0 else 0.0,
               "live": s.ended is None,
               "recordings": sorted({e.data["recordingId"] for e in s.events
                                     if e.kind == "recording.start" and "recordingId" in e.data})}
    summary["peak"] = max((c for _, c in tl), default=0)
    summary["funnel"] = funnel(s, participants, all_events or [], duration)
    return {"session": summary, "participants": participants, "timeline": tl}


def funnel(s: Session, participants: list[dict[str, Any]], events: list[Event],
           duration: float) -> dict[str, int]:
    """invited (tokens and invitation links issued for the room up to the session's end,
    since the previous session's start) -> joined -> stayed to the end."""
    end = s.ended if s.ended is not None else math.inf
    invited = sum(1 for e in events if e.kind == "token" and s.since <= e.at <= end)
    slack = max(STAYED_SLACK, 0.05 * duration)
    stop = s.ended if s.ended is not None else None
    stayed = sum(1 for p in participants
                 if stop is None or (p["intervals"] and p["intervals"][-1][1] >= stop - slack))
    return {"invited": invited, "joined": len(participants), "stayedToEnd": stayed}


def find(events: list[Event], session_id: str, now: float) -> Session | None:
    """The session `session_id`, its `since` set to the end of the one before."""
    previous_end = 0.0
    for s in sessions(events, now):
        if s.id == session_id:
            s.since = previous_end
            return s
        previous_end = s.ended or previous_end
    return None


def to_csv(rep: dict[str, Any]) -> str:
    """One row per participant, the columns of the JSON (intervals as `from-to;from-to`)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for p in rep["participants"]:
        row = []
        for col in CSV_COLUMNS:
            value = p[col]
            if col == "intervals":
                value = ";".join(f"{a}-{b}" for a, b in value)
            elif col == "breakouts":
                value = ";".join(value)
            row.append(value)
        writer.writerow(row)
    return out.getvalue()
