"""The speaking intervals a room keeps per identity (signaling/speaking.py SpeakingLog): one
interval per turn, closed when the Router's speaker changes, bounded in length and count."""

from __future__ import annotations

from signaling import speaking
from signaling.speaking import SpeakingLog


def test_turns_become_intervals_per_identity() -> None:
    log = SpeakingLog()
    log.changed("main", "ann", 10.0)
    log.changed("group", "cy", 11.0)  # another Router: Ann's turn goes on
    log.changed("main", "bea", 12.5)
    log.changed("main", None, 14.0)  # nobody (or someone of another node)
    log.changed("main", "ann", 20.0)
    assert log.intervals_of("ann") == [(10.0, 12.5), (20.0, None)]
    assert log.intervals_of("bea") == [(12.5, 14.0)]
    assert log.intervals_of("cy") == [(11.0, None)]
    assert log.intervals_of("dan") == []
    assert log.speaking_time("ann", now=21.0) == 3.5
    assert log.speaking_time("bea") == 1.5


def test_the_log_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(speaking, "MAX_INTERVALS", 3)
    monkeypatch.setattr(speaking, "MAX_IDENTITIES", 2)
    log = SpeakingLog()
    for i in range(5):
        log.changed("main", "ann", float(2 * i))
        log.changed("main", None, float(2 * i + 1))
    assert log.intervals_of("ann") == [(4.0, 5.0), (6.0, 7.0), (8.0, 9.0)]
    log.changed("main", "bea", 20.0)
    log.changed("main", "cy", 21.0)  # a third identity: the one heard least recently goes
    assert log.intervals_of("ann") == []
    assert [len(log.intervals_of(i)) for i in ("bea", "cy")] == [1, 1]
