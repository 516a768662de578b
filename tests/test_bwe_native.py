"""The estimator's per-feedback C (mediaserver/native/bwe.c) decides as its Python reference.

The C path (`SendSideEstimator()`, what production runs) and the Python one
(`SendSideEstimator(native=False)` with rtp/twcc.parse_feedback) are fed the same feedback:
the pinned closed-loop traces of test_bwe_pinned.py through each entry point, and random,
well-formed or corrupted FCIs against random send histories. After every feedback the whole
state must be equal bit for bit (floats compared by their hex form); a malformed FCI must be
refused by both with the same message and leave both unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediaserver.bwe.estimator import SendSideEstimator
from mediaserver.bwe.history import SendHistory
from mediaserver.rtp.twcc import build_feedback, parse_feedback, parse_packet
from tests.support.fuzz import fuzz_examples
from tests.test_bwe_pinned import PINNED, SCENARIOS, Handler, run


def test_the_extension_is_built_and_production_uses_it() -> None:
    """No silent fallback: the compiled module imports, and an estimator made as the
    transport makes it runs the C."""
    from mediaserver.native import _bwe

    assert _bwe.lib.ms_twcc_check(b"\0" * 8, 8) == 0
    assert SendSideEstimator()._native is not None
    assert SendSideEstimator(native=False)._native is None


AIMD_STATES = ("hold", "increase", "decrease")  # bwe.c's MS_HOLD, MS_INCREASE, MS_DECREASE


def snapshot(est: SendSideEstimator) -> tuple[object, ...]:
    """Everything the estimator decides and keeps that both paths have, floats as hex."""
    d = est._detector
    values: list[object] = [
        est.estimate, est.usage, est.received_rate, est.sent_rate, float(est.rtt),
        est.feedbacks, est.packets_lost, est.packets_acked, float(est.loss), d.state,
        d.threshold, d.trend]
    if est._native is None:
        g, t, aimd, cap = est._groups, est._detector, est._aimd, est._aimd.capacity
        values += [est._last_acked, g._first_send, g._last_send, g._last_arrival,
                   t._accumulated, t._smoothed, t._prev_trend, t._num, float(aimd.rate),
                   aimd.state, cap.estimate, cap._var, float(est._loss.rate),
                   est._received._bytes, len(est._received._spans), est._sent._bytes,
                   len(est._sent._spans)]
    else:
        s = est._native.s
        r = s.rate
        values += [s.last_acked, s.first_send, s.last_send, s.last_arrival, s.accumulated,
                   s.smoothed, s.prev_trend, s.num, r.aimd_rate, AIMD_STATES[r.aimd_state],
                   r.capacity if r.has_capacity else None, r.capacity_var, r.loss_rate,
                   s.received.bytes, s.received.len, s.sent.bytes, s.sent.len]
        # the figures SendSideEstimator copied from the C are the C's
        assert (est.estimate, est.received_rate, est.sent_rate, est.rtt, est.feedbacks) == (
            s.estimate, s.received_rate, s.sent_rate, s.rtt, s.feedbacks)
    return tuple(v.hex() if isinstance(v, float) else v for v in values)


def by_lookup(est: SendSideEstimator, history: SendHistory, data: bytes, now: float) -> None:
    fb = parse_packet(data)
    est.on_feedback(history.lookup(fb.base_seq, len(fb.symbols)), fb, now)


def by_window(est: SendSideEstimator, history: SendHistory, data: bytes, now: float) -> None:
    est.on_transport_cc(history, parse_packet(data), now)


def by_fci(est: SendSideEstimator, history: SendHistory, data: bytes, now: float) -> None:
    est.on_fci(history, data[12:len(data) - (data[-1] if data[0] & 0x20 else 0)], now)


def recording(handler: Handler, states: list[tuple[object, ...]]) -> Handler:
    def handle(est: SendSideEstimator, history: SendHistory, data: bytes, now: float) -> None:
        handler(est, history, data, now)
        states.append(snapshot(est))
    return handle


@pytest.mark.parametrize("entry", [by_lookup, by_window, by_fci])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_pinned_traces_give_the_same_state_after_every_feedback(
        name: str, entry: Handler) -> None:
    python: list[tuple[object, ...]] = []
    native: list[tuple[object, ...]] = []
    want = run(SCENARIOS[name], native=False, handler=recording(entry, python))
    got = run(SCENARIOS[name], native=True, handler=recording(entry, native))
    assert len(native) == len(python) > 100
    for k, (a, b) in enumerate(zip(native, python, strict=True)):
        assert a == b, f"feedback {k}"
    assert got[:2] == want[:2] == PINNED[name][:2]
    assert [float(v).hex() for v in got[2]] == [float(v).hex() for v in want[2]]


# --- random and corrupted feedback ------------------------------------------------------------

# Send-time steps near the 5 ms group cut, a frame's, and back in time (out of order).
STEPS = st.sampled_from([0.0, 0.0001, 0.004, 0.0049999999, 0.005, 0.0050000001, 1 / 30,
                         0.25, -0.003])
# A feedback: where its base is (mostly a few numbers before or after where the previous one
# ended, as receivers report; now and then relative to the last number sent, far back too),
# arrival steps in us (None: lost; mostly forward, now and then back or seconds on, so that
# deltas take two octets or are negative), its reference time (near the 24-bit wrap too), and
# edits to its bytes (position and new octet, -1: cut there).
ARRIVAL_STEP = st.one_of(st.none(), st.integers(0, 12_000), st.integers(-3_000, 40_000),
                         st.integers(-9_000_000, 9_000_000))
FEEDBACK = st.tuples(
    st.one_of(st.tuples(st.just("next"), st.integers(-12, 4)),
              st.tuples(st.just("sent"),
                        st.integers(-330, 30).map(lambda k: k if k >= -300 else -2100))),
    st.lists(ARRIVAL_STEP, min_size=1, max_size=60),
    st.sampled_from([0, 1, 0xFFFFFF, 0x7FFFFF, 12345]),
    st.lists(st.tuples(st.integers(0, 300), st.integers(-1, 255)), max_size=2) | st.just([]))


def fuzz(ci_examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return settings(max_examples=fuzz_examples(ci_examples), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def corrupted(fci: bytearray, edits: list[tuple[int, int]]) -> bytes:
    for pos, octet in edits:
        if pos < len(fci):
            if octet < 0:
                del fci[pos:]  # cut short
            else:
                fci[pos] = octet
    return bytes(fci)


@pytest.mark.fuzz
@fuzz(300)
@given(st.lists(st.tuples(STEPS, st.integers(0, 70_000)), min_size=1, max_size=24),
       st.integers(50, 900), st.integers(0, 0xFFFF), st.integers(0, 6),
       st.lists(FEEDBACK, min_size=1, max_size=12), st.booleans())
def test_random_and_corrupted_feedback_decide_the_same(
        pattern: list[tuple[float, int]], n_sent: int, last_sent: int, gap_every: int,
        feedbacks: list[tuple[tuple[str, int], list[int | None], int, list[tuple[int, int]]]],
        small_history: bool) -> None:
    """Histories with holes (a path change), out-of-order send records and sizes 0..70,000
    (SendHistory keeps up to 65,535), the ring too small for some; feedback about numbers
    before, around and past the last sent, repeated ones, 24-bit reference times that wrap,
    corrupted octets and cuts: the C and the Python either refuse an FCI with the same message
    or leave equal states."""
    history = SendHistory(256 if small_history else 2048)
    t = 1.0
    first = (last_sent - n_sent + 1) & 0xFFFF
    for k in range(n_sent):  # (send time step, size) from the pattern, over and over
        step, size = pattern[k % len(pattern)]
        t += step
        if not gap_every or k % 7 != gap_every:
            history.sent((first + k) & 0xFFFF, size, t)
    history._head[0] = last_sent
    native, python, via_parse = (SendSideEstimator(native=True),
                                 SendSideEstimator(native=False),
                                 SendSideEstimator(native=True))
    at, base = 0, last_sent - min(n_sent, history._mask + 1) + 1  # the oldest kept
    for i, ((since, offset), steps, reference, edits) in enumerate(feedbacks):
        base = (base if since == "next" else last_sent) + offset
        if all(a is None for a in steps):
            steps[0] = 0
        arrivals: list[int | None] = []
        for step in steps:
            at = at if step is None else max(0, at + step)
            arrivals.append(None if step is None else at + reference * 64_000)
        try:
            packet = build_feedback(1, 2, base, i, reference, arrivals)
        except ValueError:  # a delta our builder cannot write
            continue
        fci = corrupted(bytearray(packet[12:]), edits)
        now = t + 0.05 * (i + 1)
        errors = []
        for est in (native, python):
            try:
                est.on_fci(history, fci, now)
                errors.append(None)
            except ValueError as e:
                errors.append(str(e))
        assert errors[0] == errors[1]
        if errors[0] is None:  # the transport's route today: parse, then the estimator
            via_parse.on_transport_cc(history, parse_feedback(1, 2, fci), now)
        assert snapshot(native) == snapshot(python) == snapshot(via_parse)
        base += len(arrivals)


@pytest.mark.fuzz
@fuzz(100)
@given(st.lists(st.tuples(st.integers(1, 8), st.integers(-4_000, 6_000), st.booleans()),
                min_size=1, max_size=16),
       st.integers(25, 120), st.sampled_from([1 / 30, 0.02, 0.0049, 0.1]), st.integers(1, 4),
       st.sampled_from([60_000, 1_000_000, 15_000_000]))
def test_long_delay_walks_decide_the_same(pattern: list[tuple[int, int, bool]], n_fb: int,
                                          interval: float, frames_per_fb: int,
                                          initial: int) -> None:
    """Frames (packets each, the path's queueing delay change after it in us, its first
    packet lost if it has more) from a pattern over and over, reported a few frames a
    feedback: enough groups that the trendline's window fills and the detector leaves NORMAL,
    its threshold adapting; equal states after every feedback."""
    history = SendHistory()
    native, python = (SendSideEstimator(initial, native=True),
                      SendSideEstimator(initial, native=False))
    seq, t, delay, frame = 0xFF00, 5.0, 30_000, 0
    for i in range(n_fb):
        base, arrivals = seq, []
        for _ in range(frames_per_fb):
            packets, change, lose = pattern[frame % len(pattern)]
            frame += 1
            for k in range(packets):
                history.sent(seq & 0xFFFF, 1200, t)
                seq += 1
                lost = lose and k == 0 and packets > 1
                arrivals.append(None if lost else int(t * 1e6) + delay + 300 * k)
            delay = max(0, delay + change)
            t += interval
        reference = min(a for a in arrivals if a is not None) // 64_000
        fci = build_feedback(1, 2, base & 0xFFFF, i, reference, arrivals)[12:]
        for est in (native, python):
            est.on_fci(history, fci, t + 0.03)
            if i % 7 == 3:  # a probe result, as the allocator's prober gives
                est.raise_to(est.received_rate if i % 2 else est.estimate * 1.3)
        assert snapshot(native) == snapshot(python), f"feedback {i}"
    assert native.feedbacks > 0


@pytest.mark.fuzz
@fuzz(500)
@given(st.binary(max_size=80) | st.builds(
    lambda arrivals, base, edits: corrupted(
        bytearray(build_feedback(1, 2, base, 0, 7, arrivals)[12:]), edits),
    st.lists(st.one_of(st.none(), st.integers(0, 300_000)), min_size=1, max_size=40),
    st.integers(0, 0xFFFF), st.lists(st.tuples(st.integers(0, 80), st.integers(-1, 255)),
                                     max_size=3)))
def test_the_parse_refuses_what_the_python_parser_refuses(fci: bytes) -> None:
    """Any bytes as an FCI: the C reports the error parse_feedback raises, or none."""
    try:
        parse_feedback(1, 2, fci)
        want = None
    except ValueError as e:
        want = str(e)
    est = SendSideEstimator()
    try:
        est.on_fci(SendHistory(), fci, 1.0)
        got = None
    except ValueError as e:
        got = str(e)
    assert got == want
