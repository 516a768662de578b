"""Active speaker in the media plane (mediaserver/speaker.py): the selection rule with its
hysteresis on synthetic loudness sequences. The worker's path from producers' level extensions
to the control API's listeners: test_active_speaker_worker.py."""

from __future__ import annotations

from mediaserver.speaker import MARGIN, SWITCH, THRESHOLD, SpeakerSelector, loudness

LOUD, QUIET, SILENT = 110, THRESHOLD + 5, 0  # loudness: 127 - level


def run(selector: SpeakerSelector, intervals: list[dict[str, float]]) -> list[str | None]:
    """The speaker after each interval."""
    out = []
    for levels in intervals:
        selector.update(levels)
        out.append(selector.current)
    return out


def test_loudness_reads_rfc6464_levels() -> None:
    assert loudness(0x7F) == 0  # -127 dBov: silence
    assert loudness(0x80 | 0) == 127  # 0 dBov, voice flag set: ignored
    assert loudness(30) == 97


def test_first_speaker_is_taken_at_once_and_kept_through_silence() -> None:
    sel = SpeakerSelector()
    seq = [{"a": SILENT, "b": SILENT}, {"a": LOUD, "b": SILENT}] + \
        [{"a": SILENT, "b": SILENT}] * 10
    assert run(sel, seq) == [None, "a"] + ["a"] * 10


def test_a_challenger_takes_over_only_after_a_sustained_lead() -> None:
    sel = SpeakerSelector()
    run(sel, [{"a": QUIET, "b": SILENT}])
    louder = {"a": QUIET, "b": QUIET + MARGIN}
    assert run(sel, [louder] * SWITCH) == ["a"] * (SWITCH - 1) + ["b"]


def test_a_short_interjection_changes_nothing() -> None:
    sel = SpeakerSelector()
    run(sel, [{"a": LOUD, "b": SILENT}])
    burst = [{"a": SILENT, "b": LOUD}] * (SWITCH - 1)
    # the row of qualifying intervals starts again after each break
    seq = (burst + [{"a": LOUD, "b": SILENT}]) * 4
    assert set(run(sel, seq)) == {"a"}


def test_similar_levels_do_not_flap() -> None:
    sel = SpeakerSelector()
    run(sel, [{"a": LOUD, "b": SILENT}])
    close = {"a": LOUD - 2, "b": LOUD - 2 + MARGIN - 1}  # b louder, but by less than the margin
    assert set(run(sel, [close] * 20)) == {"a"}


def test_below_the_threshold_is_silence() -> None:
    sel = SpeakerSelector()
    assert run(sel, [{"a": THRESHOLD - 1}] * 5) == [None] * 5


def test_the_loudest_of_several_challengers_wins() -> None:
    sel = SpeakerSelector()
    run(sel, [{"a": LOUD, "b": SILENT, "c": SILENT}])
    seq = [{"a": SILENT, "b": QUIET, "c": LOUD}] * SWITCH
    assert run(sel, seq)[-1] == "c"


def test_the_speaker_leaving_hands_over_at_once_or_to_nobody() -> None:
    sel = SpeakerSelector()
    run(sel, [{"a": LOUD, "b": SILENT}])
    assert run(sel, [{"b": LOUD}]) == ["b"]  # a's producer is gone: b speaks now
    assert run(sel, [{"c": SILENT}]) == [None]


def test_update_says_whether_the_speaker_changed() -> None:
    sel = SpeakerSelector()
    assert sel.update({"a": LOUD}) is True
    assert sel.update({"a": LOUD}) is False
    assert sel.update({"a": SILENT}) is False
