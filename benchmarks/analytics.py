"""What the analytics cost: the session report and the replay heatmap of a 2-hour webinar.

Synthetic but shaped like the real thing (seeded, so every run gets the same events):

- **The live webinar**: a host and three presenters, N attendees (1,000 by default) who join
  mostly in the first minutes and some late, leave at random times or stay to the end, drop and
  come back (15%), hide and show their tab, chat, ask, upvote, vote in four polls, react and
  raise hands; presenters take speaking turns, publish and mute their cameras; tokens issued
  before, the webinar going live, a recording. The events the server's hooks would append.
- **The replay**: V views (1,000 by default) of the 2-hour recording, each as the player page
  reports it (docs/analytics.md): every 5 s of watching one `play` event with the ranges played
  (some at 1.5x), seeks forward (skips) and back (re-watches), pauses, visible seconds; views
  stop at random points, a quarter reach the end.

Measured, each as the best of `--runs` (CPU seconds of this process, and wall):

- `report`: sessions from the room's events, the session's report (participants, timeline,
  funnel) and its CSV, from events in memory (what `GET .../report` computes);
- `heatmap`: `replay_analytics.analyze` of the recording's events (perSecond, unwatched,
  watched once, re-watched, skipped, drop-off, completion);
- through the event log (SQLite, and Redis with a real redis-server on loopback), as the HTTP
  handlers do it, reading included: the session report from the room's events; the replay
  figures from the per-view summaries the writer keeps (`heatmap_via_log`: what
  GET /api/recordings/{id}/analytics reads), and, to compare, from the raw reports
  (`heatmap_via_raw_reports`, `--raw-runs`), checked to give the same figures;
- the log's own cost: `emit` per event, the background writer's batches, and events written
  one at a time (a player report with its view's summary).

No timed assertions anywhere: tests/test_analytics_bench.py only runs it small.

    python -m benchmarks.analytics [--attendees 1000] [--views 1000] [--hours 2] [--runs 3]
        [--stores sqlite,redis] [--raw-runs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from signaling import analytics, replay_analytics
from signaling.events import Event, EventLog, RedisEvents, SqliteEvents

T0 = 1_800_000_000.0  # the webinar's start (epoch seconds)
ROOM = "webinar"
RECORDING = "rec-webinar"
REPORT_EVERY = 5.0  # the player page's report interval (web_client/js/playstats.js)
# Redis: the raw reports are read back to compare only up to this many; beyond, one XRANGE
# reply can outlast redis-py's 5 s socket timeout while this process's large heap is collected
# on a loaded machine (seen with 500,000), which is the very cost the summaries avoid
REDIS_RAW_MAX = 100_000


# ---- the live webinar ----------------------------------------------------------------------


def webinar_events(attendees: int, hours: float, seed: int = 1) -> list[Event]:
    rng = random.Random(seed)
    length = hours * 3600
    end = T0 + length
    out: list[Event] = []

    def add(at: float, kind: str, pid: str = "", who: str = "", role: str = "attendee",
            **data: Any) -> None:
        out.append(Event(at, kind, ROOM, pid, who, who.title(), role, "", "a", data))

    for i in range(attendees + 100):  # tokens and invitation links, a day before
        add(T0 - 86400 + i, "token", role="attendee", invite=False)
    staff = [("host", "host")] + [(f"presenter-{k}", "presenter") for k in range(3)]
    for who, role in staff:
        pid = f"p-{who}"
        add(T0 - 300 + rng.uniform(0, 60), "join", pid, who, role)
        for source, media in (("camera", "video"), ("microphone", "audio")):
            add(T0 - 200, "track.publish", pid, who, role, track=f"{who}-{source}", media=media,
                source=source, muted=False)
        for _ in range(rng.randint(2, 6)):  # cameras off for a while
            at = T0 + rng.uniform(0, length - 600)
            for k, muted in ((0, True), (rng.uniform(30, 300), False)):
                add(at + k, "track.mute", pid, who, role, track=f"{who}-camera", media="video",
                    source="camera", muted=muted)
        add(end + rng.uniform(30, 120), "leave", pid, who, role, reason="left")
    add(T0, "live", live=True, by="host")
    add(T0 + 5, "recording.start", recordingId=RECORDING)
    add(end, "recording.stop", recordingId=RECORDING)
    add(end + 10, "live", live=False, by="host")
    # presenters' speaking turns, and attendees brought on stage for questions
    t = T0
    speakers = [who for who, _ in staff[1:]]
    while t < end - 60:
        who = rng.choice(speakers)
        turn = rng.uniform(20, 400)
        add(t, "speak.start", "", who, "presenter", router="r-main")
        add(min(end, t + turn), "speak.stop", "", who, "presenter", router="r-main")
        t += turn
    present: list[tuple[str, str, float, float]] = []  # pid, identity, from, to
    for i in range(attendees):
        who = f"dr-{i:04d}"
        u = rng.random()
        joined = T0 + (rng.uniform(-300, 300) if u < 0.7 else  # most on time, some late
                       rng.uniform(300, length / 4) if u < 0.9 else
                       rng.uniform(length / 4, length * 3 / 4))
        left = end + rng.uniform(-60, 90) if rng.random() < 0.55 else \
            rng.uniform(joined + 60, end)
        pid = f"p-{who}"
        add(joined, "join", pid, who)
        if rng.random() < 0.15 and left - joined > 300:  # the connection dropped, came back
            at = rng.uniform(joined + 60, left - 120)
            add(at, "drop", pid, who)
            add(at + rng.uniform(2, 25), "resume", pid, who)
        if rng.random() < 0.05 and left < end - 600:  # left and came back later
            add(left, "leave", pid, who, reason="left")
            present.append((pid, who, joined, left))
            pid, joined = f"p-{who}-2", rng.uniform(left + 60, end - 300)
            left = end + rng.uniform(-60, 90)
            add(joined, "join", pid, who)
        add(left, "leave", pid, who, reason="left")
        present.append((pid, who, joined, left))
    for pid, who, joined, left in present:
        at = joined
        for _ in range(rng.randint(0, 12)):  # the tab hidden for a while, then shown
            at += rng.expovariate(1 / 600)
            back = at + rng.uniform(5, 300)
            if back >= left:
                break
            add(at, "visibility", pid, who, visible=False)
            add(back, "visibility", pid, who, visible=True)
            at = back

    def someone() -> tuple[str, str, float]:
        pid, who, joined, left = rng.choice(present)
        return pid, who, rng.uniform(joined, left)

    for _ in range(3 * attendees):
        pid, who, at = someone()
        add(at, "chat", pid, who, message=f"m-{rng.getrandbits(32)}")
    questions = []
    for _ in range(attendees // 5):
        pid, who, at = someone()
        questions.append(f"q-{rng.getrandbits(32)}")
        add(at, "qa.ask", pid, who, question=questions[-1])
    for _ in range(3 * attendees // 2):
        pid, who, at = someone()
        add(at, "qa.upvote", pid, who, question=rng.choice(questions))
    for poll in range(4):
        opens = T0 + (poll + 1) * length / 5
        for pid, who, joined, left in present:
            if joined < opens < left and rng.random() < 0.8:
                add(opens + rng.uniform(1, 90), "poll.vote", pid, who, poll=f"poll-{poll}",
                    option=rng.randint(0, 3))
    for _ in range(5 * attendees):
        pid, who, at = someone()
        add(at, "reaction", pid, who, emoji=rng.choice("👏🎉❤️👍"))
    for _ in range(attendees // 7):
        pid, who, at = someone()
        add(at, "hand", pid, who, raised=True)
        add(at + rng.uniform(5, 120), "hand", pid, who, raised=False)
    out.sort(key=lambda e: e.at)
    return out


# ---- the replay ----------------------------------------------------------------------------


def replay_events(views: int, hours: float, seed: int = 2) -> list[Event]:
    """The player's reports: what `views` page loads played, every REPORT_EVERY s of each."""
    rng = random.Random(seed)
    duration = hours * 3600
    out: list[Event] = []
    start = T0 + duration + 3600  # the replay, from an hour after the live end
    for v in range(views):
        viewer = f"dr-{rng.randrange(int(views * 0.8)):04d}"
        view = f"v-{v:05d}"
        stop = duration if rng.random() < 0.25 else min(
            duration, rng.expovariate(1 / 1800) if rng.random() < 0.4 else
            rng.uniform(0, duration))
        rate = 1.5 if rng.random() < 0.15 else 1.0
        wall = start + rng.uniform(0, 7 * 86400)
        pos = 0.0
        while pos < stop:
            ranges: list[list[float]] = []
            seeks: list[list[float]] = []
            pauses = 0
            budget = REPORT_EVERY * rate  # position seconds played during one report
            while budget > 0 and pos < stop:
                step = min(budget, stop - pos, rng.uniform(1, budget + 1))
                ranges.append([round(pos, 3), round(pos + step, 3), rate])
                pos += step
                budget -= step
                u = rng.random()
                if u < 0.006:  # skip ahead
                    to = min(duration, pos + rng.uniform(30, 600))
                    seeks.append([round(pos, 3), round(to, 3)])
                    pos = to
                elif u < 0.012:  # back to see that again
                    to = max(0.0, pos - rng.uniform(10, 180))
                    seeks.append([round(pos, 3), round(to, 3)])
                    pos = to
                elif u < 0.016:
                    pauses += 1
            out.append(Event(wall, "play", ROOM, view, viewer, "", "", RECORDING, "a", {
                "ranges": ranges, "seeks": seeks, "pauses": pauses,
                "visible": REPORT_EVERY if rng.random() < 0.8 else 0.0, "live": False,
                "final": pos >= stop, "rate": rate, "position": round(pos, 3),
                "duration": duration}))
            wall += REPORT_EVERY
    out.sort(key=lambda e: e.at)
    return out


# ---- measuring ---------------------------------------------------------------------------------


def best(fn: Callable[[], Any], runs: int) -> dict[str, float]:
    """The best of `runs` calls: CPU seconds of this process, and wall seconds."""
    cpus, walls = [], []
    for _ in range(runs):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpus.append(time.process_time() - c0)
        walls.append(time.perf_counter() - w0)
    return {"cpu_s": round(min(cpus), 4), "wall_s": round(min(walls), 4),
            "cpu_s_all": [round(c, 4) for c in cpus]}


def session_report(events: list[Event]) -> dict[str, Any]:
    now = events[-1].at + 1
    (session,) = [s for s in analytics.sessions(events, now) if s.started > T0 - 3600]
    found = analytics.find(events, session.id, now)
    assert found is not None
    rep = analytics.report(found, now, events)
    analytics.to_csv(rep)
    return rep


def heatmap(events: list[Event], duration: float) -> dict[str, Any]:
    return replay_analytics.analyze(events, duration)


async def through_log(backend: Any, live: list[Event], plays: list[Event], duration: float,
                      runs: int, raw_runs: int, server_cpu: Callable[[], Any]
                      ) -> dict[str, Any]:
    """Append everything through an EventLog into `backend` (timed: emit, and the writer),
    then read and compute as the HTTP handlers do (best of `runs`). `server_cpu()`: the CPU
    seconds of the store's own process so far (Redis), or None."""
    log = EventLog(backend, node="a", retention_days=0)
    await log.start()
    everything = live + plays
    log.max_queue = len(everything) + 1  # all of it queued first, then written: both timed
    c0 = time.process_time()
    for e in everything:
        _emit(log, e)
    emit_cpu = time.process_time() - c0
    c0, w0, s0 = time.process_time(), time.perf_counter(), await server_cpu()
    await log.flush()
    write_cpu, write_wall = time.process_time() - c0, time.perf_counter() - w0
    rows: dict[str, Any] = {
        "emit_us_per_event": round(emit_cpu / len(everything) * 1e6, 2),
        "write_us_per_event": round(write_cpu / len(everything) * 1e6, 2),
        "write_wall_s": round(write_wall, 2)}
    if s0 is not None:
        rows["write_store_us_per_event"] = round(
            (await server_cpu() - s0) / len(everything) * 1e6, 2)
    assert log.written >= len(everything) and not log.failed and not log.dropped, \
        log.counters()
    answers: dict[str, Any] = {}

    async def summaries() -> tuple[Any, int]:
        views = await log.views(RECORDING)
        return views, len(views)

    async def reports() -> tuple[Any, int]:
        evs = await log.read(recording=RECORDING)
        return evs, len(evs)

    async def room() -> tuple[Any, int]:
        evs = await log.read(room=ROOM)
        return evs, len(evs)

    for name, read, compute, times in (
            ("report_via_log", room, lambda evs: analytics.report(*_found(evs), evs), runs),
            ("heatmap_via_log", summaries,
             lambda views: replay_analytics.from_summaries(views, duration), runs),
            ("heatmap_via_raw_reports", reports,
             lambda evs: replay_analytics.analyze(evs, duration), raw_runs)):
        if not times:
            continue
        cpus, walls, reads, stores = [], [], [], []
        for _ in range(times):
            gc.collect()
            c0, w0, s0 = time.process_time(), time.perf_counter(), await server_cpu()
            got, count = await read()
            r0 = time.process_time()
            answers[name] = compute(got)
            json.dumps(answers[name], separators=(",", ":"))
            cpus.append(time.process_time() - c0)
            walls.append(time.perf_counter() - w0)
            reads.append(r0 - c0)
            if s0 is not None:
                stores.append(await server_cpu() - s0)
            del got
        rows[name] = {"cpu_s": round(min(cpus), 4), "wall_s": round(min(walls), 4),
                      "read_cpu_s": round(min(reads), 4), "read": count}
        if stores:
            rows[name]["store_cpu_s"] = round(min(stores), 4)
    if "heatmap_via_raw_reports" in answers:  # the fast path gives the full recomputation's
        fast, full = answers["heatmap_via_log"], answers["heatmap_via_raw_reports"]
        rows["same_figures"] = all(
            abs(fast[k] - full[k]) <= 0.011 if k.endswith("Minutes") else fast[k] == full[k]
            for k in full)
    await log.stop()
    return rows


def _emit(log: EventLog, e: Event) -> None:
    log.emit(e.kind, e.room, session=e.session, identity=e.identity, name=e.name, role=e.role,
             recording=e.recording, at=e.at, **e.data)


async def one_by_one(backend: Any, events: list[Event]) -> float:
    """µs of CPU per event when each is written alone (a server's writer wakes at each event
    when they come a few a second): the writer's cost per report with its summary."""
    log = EventLog(backend, node="a", retention_days=0)
    await log.start()
    c0 = time.process_time()
    for e in events:
        _emit(log, e)
        await log.flush()
    cpu = time.process_time() - c0
    await log.stop()
    return round(cpu / len(events) * 1e6, 2)


async def backends(names: list[str], live: list[Event], plays: list[Event], duration: float,
                   runs: int, raw_runs: int, directory: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    alone = {"live": live[:2000], "play": plays[:5000]}

    async def nothing() -> None:
        return None

    for name in names:
        if name == "sqlite":
            out[name] = await through_log(SqliteEvents(directory / "analytics.sqlite3"), live,
                                          plays, duration, runs, raw_runs, nothing)
            for kind, evs in alone.items():
                out[name][f"alone_{kind}_us"] = await one_by_one(
                    SqliteEvents(directory / f"alone-{kind}.sqlite3"), evs)
            continue
        from tests.support.redis_server import redis_server  # a real redis-server, by PID

        async with redis_server(directory / "redis") as url:
            probe = RedisEvents(url)

            async def redis_cpu(probe: RedisEvents = probe) -> float:
                info = await probe.redis.info("cpu")
                return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

            out[name] = await through_log(RedisEvents(url), live, plays, duration, runs,
                                          raw_runs if len(plays) <= REDIS_RAW_MAX else 0,
                                          redis_cpu)
            for kind, evs in alone.items():
                await probe.redis.flushall()
                out[name][f"alone_{kind}_us"] = await one_by_one(RedisEvents(url), evs)
            await probe.close()
    return out


def _found(evs: list[Event]) -> tuple[analytics.Session, float]:
    now = evs[-1].at + 1
    (session,) = [s for s in analytics.sessions(evs, now) if s.started > T0 - 3600]
    found = analytics.find(evs, session.id, now)
    assert found is not None
    return found, now


def run(attendees: int, views: int, hours: float, runs: int, seed: int = 1,
        stores: tuple[str, ...] = ("sqlite", "redis"), raw_runs: int = 1) -> dict[str, Any]:
    t0 = time.perf_counter()
    live = webinar_events(attendees, hours, seed)
    plays = replay_events(views, hours, seed + 1)
    made = time.perf_counter() - t0
    duration = hours * 3600
    rep = session_report(live)
    heat = heatmap(plays, duration)
    result: dict[str, Any] = {
        "attendees": attendees, "views": views, "hours": hours,
        "live_events": len(live), "play_events": len(plays),
        "generated_s": round(made, 2),
        "report_participants": len(rep["participants"]),
        "report_peak": rep["session"]["peak"],
        "heatmap_seconds": len(heat["perSecond"]),
        "heatmap_views": heat["views"],
        "report": best(lambda: session_report(live), runs),
        "heatmap": best(lambda: heatmap(plays, duration), runs),
    }
    with tempfile.TemporaryDirectory(prefix="analytics-bench-") as tmp:
        result["logs"] = asyncio.run(backends(list(stores), live, plays, duration, runs,
                                              raw_runs, Path(tmp)))
    return result


def markdown(r: dict[str, Any]) -> str:
    def us(part: dict[str, Any], n: int) -> str:
        return f"{part['cpu_s'] / n * 1e6:.2f}"

    def store(part: dict[str, Any]) -> str:
        return f" (+ {part['store_cpu_s']} in Redis)" if "store_cpu_s" in part else ""

    lines = [
        f"{r['attendees']:,} attendees, {r['hours']} h: {r['live_events']:,} live events; "
        f"{r['views']:,} views of the recording: {r['play_events']:,} player reports "
        f"({r['heatmap_seconds']:,} s heatmap). Best of {r['runs']} runs, "
        f"{r['machine']}, load average {r['load_avg']}.",
        "",
        "| what | read | CPU s | read CPU s | wall s |",
        "|---|---|---|---|---|",
        f"| session report + CSV, from memory | {r['live_events']:,} events | "
        f"{r['report']['cpu_s']} | | {r['report']['wall_s']} |",
        f"| replay figures from the raw reports, in memory | {r['play_events']:,} reports | "
        f"{r['heatmap']['cpu_s']} | | {r['heatmap']['wall_s']} |",
    ]
    what = {"report_via_log": ("session report via the {} log + JSON", "events"),
            "heatmap_via_log": ("replay figures via the {} log's view summaries + JSON",
                                "summaries"),
            "heatmap_via_raw_reports": ("replay figures via the {} log's raw reports + JSON",
                                        "reports")}
    for name, rows in r["logs"].items():
        for key, (text, unit) in what.items():
            if key in rows:
                part = rows[key]
                lines.append(f"| {text.format(name)} | {part['read']:,} {unit} | "
                             f"{part['cpu_s']}{store(part)} | {part['read_cpu_s']} | "
                             f"{part['wall_s']} |")
    lines.append("")
    for name, rows in r["logs"].items():
        extra = f", Redis itself {rows['write_store_us_per_event']} µs" \
            if "write_store_us_per_event" in rows else ""
        lines.append(
            f"- {name}: `emit` {rows['emit_us_per_event']} µs CPU per event; the writer "
            f"{rows['write_us_per_event']} µs per event in batches{extra} "
            f"({rows['write_wall_s']} s wall for all); written one at a time "
            f"{rows['alone_live_us']} µs per live event, {rows['alone_play_us']} µs per "
            f"player report (with its view's summary); the summaries' figures equal the raw "
            f"reports': {rows.get('same_figures', 'not compared')}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.analytics")
    parser.add_argument("--attendees", type=int, default=1000)
    parser.add_argument("--views", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stores", default="sqlite,redis",
                        help="the event log's back ends to measure (redis: a redis-server is "
                             "started on loopback)")
    parser.add_argument("--raw-runs", type=int, default=1,
                        help="runs of the full recomputation from the raw reports (0: none)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"),
                        help="where analytics.json and analytics.md go ('' for nowhere)")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    result = run(args.attendees, args.views, args.hours, args.runs, args.seed,
                 tuple(args.stores.split(",")), args.raw_runs)
    result["runs"] = args.runs
    result["load_avg"] = [round(x, 2) for x in (*load, *os.getloadavg())]  # before, after
    result["machine"] = f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    text = markdown(result)
    print(json.dumps(result, indent=2))
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "analytics.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "analytics.md").write_text(text)
    return result


if __name__ == "__main__":
    main()
