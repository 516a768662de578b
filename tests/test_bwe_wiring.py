"""Send-side estimation wired into a real Worker: a subscriber transport with transport-cc
negotiated stamps its packets, remembers them, and takes the subscriber's feedback (built
here with twcc.py, as a browser would send it) into its estimator; dump() shows the estimate.

aiortc sends no transport-cc feedback, so the subscriber is synthetic: it reads the
transport-wide sequence numbers from what the worker sent and answers with feedback."""

from __future__ import annotations

import time
from dataclasses import replace

from mediaserver.rtp.packet import EXT_TRANSPORT_CC, build_extensions, build_packet
from mediaserver.rtp.rtcp import Remb, TransportCc, build_rr, ntp_now, parse_compound
from mediaserver.rtp.twcc import TwccRecorder, build_feedback, parse_feedback, tcc_seq_of
from tests.test_forwarding import DELTA, KEY, VP8, feed, setup

VP8_REMB = replace(VP8, remb=True)  # as Chromium offers it: goog-remb and transport-cc

TCC_ID = 3


async def forwarded(n: int):
    """A worker that forwarded n packets to a subscriber with transport-cc, and their seqs."""
    worker, pub, sub, producer, consumer = await setup(consumer_exts={EXT_TRANSPORT_CC: TCC_ID})
    feed(producer, 100, 9000, KEY, marker=True)
    for i in range(1, n):
        feed(producer, 100 + i, 9000 + 3000 * i, DELTA, marker=True)
    seqs = [tcc_seq_of(p, TCC_ID) for p in sub.rtp]
    assert len(seqs) == n and -1 not in seqs
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    return worker, sub, seqs


def estimate_in_dump(worker, transport_id: str) -> int:
    return next(t.estimate for t in worker.dump().transports if t.id == transport_id)


async def test_feedback_reaches_the_subscriber_transports_estimator() -> None:
    worker, sub, seqs = await forwarded(30)
    assert estimate_in_dump(worker, sub.id) == 0  # no feedback yet
    recorder = TwccRecorder()
    lost = {seqs[7], seqs[20]}
    for i, seq in enumerate(seqs):
        if seq not in lost:
            recorder.record(seq, 1_000_000_000 + i * 2000)
    for fb in recorder.build(0x5151):
        # as a browser sends it: a compound packet starting with an RR
        sub.transport.on_srtp(build_rr(0x5151) + fb)
    bwe = sub.transport.bwe
    assert (bwe.packets_acked, bwe.packets_lost) == (28, 2)
    assert bwe.feedbacks == 1
    assert estimate_in_dump(worker, sub.id) == bwe.estimate > 0
    # the publisher's transport sent nothing under transport-cc: nothing to estimate
    assert estimate_in_dump(worker, next(iter(worker.producers.values())).transport.id) == 0


async def test_feedback_about_unknown_or_repeated_packets_is_ignored() -> None:
    worker, sub, seqs = await forwarded(5)
    bwe = sub.transport.bwe
    future = (seqs[-1] + 100) & 0xFFFF  # never sent
    sub.transport.on_srtp(build_rr(1) + build_feedback(1, 0, future, 0, 0, [1000, 2000]))
    assert bwe.feedbacks == 0 and estimate_in_dump(worker, sub.id) == 0
    fb = build_feedback(1, 0, seqs[0], 0, 0, [1000 * i for i in range(5)])
    sub.transport.on_srtp(build_rr(1) + fb)
    sub.transport.on_srtp(build_rr(1) + fb)  # a receiver may report a packet twice
    assert bwe.packets_acked == 5


async def test_malformed_feedback_is_counted_and_dropped() -> None:
    worker, sub, seqs = await forwarded(3)
    good = build_feedback(1, 0, seqs[0], 0, 0, [1000, 2000, 3000])
    # claims 200 statuses and carries three: the FCI does not parse
    bad = good[:12] + bytes([good[12], good[13], 0, 200]) + good[16:]
    sub.transport.on_srtp(build_rr(1) + bad)
    assert sub.transport.twcc_errors == 1 and sub.transport.bwe.feedbacks == 0
    assert sub.transport.state == "connected"
    sub.transport.on_srtp(build_rr(1) + good)  # and the next good one still counts
    assert sub.transport.bwe.packets_acked == 3


# --- publishers' uplinks ---------------------------------------------------------------------


def numbered(seq: int, tcc: int, payload: bytes = DELTA) -> bytes:
    """A publisher's packet carrying its transport-wide sequence number (one-byte ext 5)."""
    ext = build_extensions([(5, tcc.to_bytes(2, "big"))])
    return build_packet(96, seq, 3000 * seq, 1111, payload, True, ext)


def sent_rtcp(captured) -> list:
    items = [i for data in captured.rtcp for i in parse_compound(data)]
    captured.rtcp.clear()
    return items


async def test_publisher_gets_transport_cc_feedback_and_no_fixed_remb() -> None:
    worker, pub, sub, producer, consumer = await setup(VP8_REMB, extensions={EXT_TRANSPORT_CC: 5})
    transport = pub.transport
    assert transport.twcc is not None
    sent_rtcp(pub)
    transport.send_reports(time.monotonic(), ntp_now())
    assert any(isinstance(i, Remb) for i in sent_rtcp(pub))  # no numbered packet yet
    tccs = [(0xFFF0 + i) & 0xFFFF for i in range(40)]  # across the wrap
    lost = {tccs[5], tccs[30]}
    for i, tcc in enumerate(tccs):
        if tcc not in lost:
            transport.on_srtp(numbered(200 + i, tcc, KEY if i == 0 else DELTA))
    assert producer.packets_received == 38  # the packets themselves still go their way
    worker._twcc_tick()  # what the worker's timer does every twcc_interval
    feedback = [i for i in sent_rtcp(pub) if isinstance(i, TransportCc)]
    assert feedback and all(i.sender_ssrc == transport.rtcp_ssrc for i in feedback)
    reported = {}
    for item in feedback:
        fb = parse_feedback(item.sender_ssrc, item.media_ssrc, item.fci)
        assert fb.media_ssrc == 1111
        reported.update(((fb.base_seq + k) & 0xFFFF, t) for k, t in enumerate(fb.arrivals))
    assert set(reported) == set(tccs)
    assert [s for s, t in reported.items() if t is None] == sorted(lost, key=tccs.index)
    worker._twcc_tick()
    assert sent_rtcp(pub) == []  # nothing new, nothing sent
    transport.send_reports(time.monotonic(), ntp_now())
    assert not any(isinstance(i, Remb) for i in sent_rtcp(pub))  # its own estimate rules


async def test_publisher_without_transport_cc_keeps_its_remb() -> None:
    worker, pub, sub, producer, consumer = await setup(VP8_REMB)
    assert pub.transport.twcc is None
    pub.transport.on_srtp(numbered(1, 1, KEY))  # an extension it did not negotiate: ignored
    worker._twcc_tick()
    pub.transport.send_reports(time.monotonic(), ntp_now())
    items = sent_rtcp(pub)
    assert any(isinstance(i, Remb) for i in items)
    assert not any(isinstance(i, TransportCc) for i in items)
