"""Replay summaries (signaling/view_summaries.py): the recording analytics read one summary per
view, kept by the log's writer as the player's reports arrive; here they must give the same
figures as the full recomputation from the raw reports (replay_analytics.analyze), in SQLite
and in Redis, with views whose player switched nodes, summaries evicted from memory and read
back, retention, and a log written before there were summaries."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from benchmarks import analytics as bench
from signaling import replay_analytics
from signaling.events import Event, EventLog, RedisEvents, SqliteEvents
from signaling.view_summaries import ViewSummary
from tests.support.redis_server import redis_server
from tests.test_analytics import random_reports, reference_figures, runs_of

DURATION = 1800.0


def same(fast: dict, full: dict) -> None:
    """Equal figures; the minutes may differ in the last bit of a float sum's order."""
    assert fast.keys() == full.keys()
    for k in full:
        if k.endswith("Minutes"):
            assert fast[k] == pytest.approx(full[k], abs=0.011), k
        else:
            assert fast[k] == full[k], k


def emit(log: EventLog, e: Event) -> None:
    log.emit(e.kind, e.room, session=e.session, identity=e.identity, recording=e.recording,
             at=e.at, **e.data)


async def write_through(logs: list[EventLog], plays: list[Event], seed: int) -> None:
    """Each report through one of `logs` (a view moves to the other node now and then),
    flushed at random points."""
    rng = random.Random(seed)
    node: dict[str, int] = {}
    for e in plays:
        if e.session not in node or rng.random() < 0.02:  # the player switched nodes
            node[e.session] = rng.randrange(len(logs))
        emit(logs[node[e.session]], e)
        if rng.random() < 0.05:
            await logs[node[e.session]].flush()
    for log in logs:
        await log.flush()


def check(full_events: list[Event], views: dict[str, ViewSummary], viewers: list[str]) -> None:
    same(replay_analytics.from_summaries(views, DURATION),
         replay_analytics.analyze(full_events, DURATION))
    same(replay_analytics.from_summaries(views, None),  # the duration the reports give
         replay_analytics.analyze(full_events, None))
    for who in viewers:
        same(replay_analytics.from_summaries(views, DURATION, who),
             replay_analytics.analyze(full_events, DURATION, who))


async def test_sqlite_summaries_equal_the_full_recomputation(tmp_path: Path) -> None:
    plays = bench.replay_events(120, DURATION / 3600, seed=5)
    log = EventLog(SqliteEvents(tmp_path / "a.sqlite3"), node="a")
    await log.start()
    log.backend.summaries.size = 30_000  # a few views in memory: most read back from the file
    await write_through([log], plays, seed=1)
    assert len(log.backend.summaries.cache) < 30  # the others were let go, then read back
    raw = await log.read(recording=bench.RECORDING)
    assert len(raw) == len(plays)
    views = await log.views(bench.RECORDING)
    assert len(views) == 120 and sum(v.reports for v in views.values()) == len(plays)
    check(raw, views, sorted({e.identity for e in plays})[:5])
    assert await log.views("another") == {}
    await log.stop()


async def test_redis_summaries_of_views_on_two_nodes(tmp_path: Path) -> None:
    plays = bench.replay_events(40, DURATION / 3600, seed=6)
    async with redis_server(tmp_path / "redis") as url:
        one, two = (EventLog(RedisEvents(url), node=n, retention_days=1) for n in "ab")
        await one.start()
        await two.start()
        one.backend.summaries.size = 20_000  # a few views' arrays: the others read back
        await write_through([one, two], plays, seed=2)
        assert len(one.backend.summaries.cache) < 20
        raw = await one.read(recording=bench.RECORDING)
        assert len(raw) == len(plays) and {e.node for e in raw} == {"a", "b"}
        for log in (one, two):  # either node reads every node's partials, merged
            views = await log.views(bench.RECORDING)
            assert len(views) == 40
            assert sum(v.reports for v in views.values()) == len(plays)
            check(raw, views, sorted({e.identity for e in plays})[:3])
        # retention: a view's summary goes with its last report
        last: dict[str, float] = {}
        for e in plays:
            last[e.session] = max(last.get(e.session, 0.0), e.at)
        before = plays[-1].at - 0.5 * 86400
        await one.purge(now=before + 86400)
        kept = await two.views(bench.RECORDING)
        assert set(kept) == {v for v, at in last.items() if at >= before} != set(last)
        await one.purge(now=plays[-1].at + 2 * 86400)
        assert await one.views(bench.RECORDING) == {}
        await one.stop()
        await two.stop()


@pytest.mark.parametrize("seed", range(6))
def test_summaries_match_the_definition(seed: int) -> None:
    """Random reports, odd ranges (negative, empty, overlapping), backward and forward seeks:
    the summaries give the per-second definitions of tests/test_analytics.py."""
    events, duration = random_reports(100 + seed)
    views: dict[str, ViewSummary] = {}
    for e in events:
        # each report as its own partial: merging must add up to one summary
        part = ViewSummary()
        part.add(e.at, e.identity, e.data)
        if e.session in views:
            views[e.session].merge(ViewSummary.load(part.dump()))
        else:
            views[e.session] = part
    figures = replay_analytics.from_summaries(views, duration)
    same(figures, replay_analytics.analyze(events, duration))
    expected = reference_figures(events, duration)
    assert figures["perSecond"] == expected["perSecond"]
    assert figures["rewatched"] == runs_of(expected["rewatched"])
    assert figures["skipped"] == runs_of(expected["skipped"])
    if figures["views"]:
        assert figures["dropoff"] == expected["dropoff"]


async def test_a_log_from_before_the_summaries_gets_them(tmp_path: Path) -> None:
    """A file whose reports were written before there were summaries: built at opening."""
    plays = bench.replay_events(10, 0.1, seed=7)
    path = tmp_path / "a.sqlite3"
    log = EventLog(SqliteEvents(path), node="a")
    await log.start()
    for e in plays:
        emit(log, e)
    await log.stop()
    with sqlite3.connect(path) as db:  # as an older version left it
        db.execute("DELETE FROM view_summaries")
        db.execute("PRAGMA user_version = 0")
    db.close()
    log = EventLog(SqliteEvents(path), node="a")
    await log.start()
    views = await log.views(bench.RECORDING)
    assert len(views) == 10
    same(replay_analytics.from_summaries(views, 360.0),
         replay_analytics.analyze(await log.read(recording=bench.RECORDING), 360.0))
    await log.stop()


def test_dvr_minutes_are_the_catch_up_players_share_of_the_live_ones() -> None:
    """The room's catch-up player (reports the server marks "dvr", always live) counts in
    liveMinutes and in dvrMinutes; the player page's live viewing only in liveMinutes;
    viewing after the event in replayMinutes. The same from the raw reports and from the
    summaries, stored and read back."""
    events = [
        Event(1, "play", "r", "v1", "a", recording="rec",
              data={"live": True, "dvr": True, "ranges": [[0, 120, 2]]}),  # 60 s at 2x
        Event(2, "play", "r", "v2", "b", recording="rec", data={"live": True,
                                                               "ranges": [[0, 60]]}),
        Event(3, "play", "r", "v3", "c", recording="rec", data={"ranges": [[0, 180]]}),
    ]
    full = replay_analytics.analyze(events, 200.0)
    assert (full["liveMinutes"], full["dvrMinutes"], full["replayMinutes"]) == (2.0, 1.0, 3.0)
    views: dict[str, ViewSummary] = {}
    for e in events:
        views.setdefault(e.session, ViewSummary()).add(e.at, e.identity, e.data)
    stored = {k: ViewSummary.load(v.dump()) for k, v in views.items()}
    same(replay_analytics.from_summaries(stored, 200.0), full)
