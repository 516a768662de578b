"""One transport's fault touches no other, and no table keyed by what a peer sends grows.

A real Worker whose transports carry plaintext "SRTP" (tests/test_forwarding.py) so every
report and feedback packet can be read back: the RTCP report tick, the NACK tick and the
consent tick each run every transport's (or producer's) step on its own, count a step that
raises (`timer_errors`, exported with the other counters) and go on with the others. Values
out of range never get that far: the params of a control call are checked at the media border
(in process and over the worker RPC). And the tables a peer can feed (remote addresses, early
DTLS records, NACK state, retransmissions asked) stay within their bounds.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from mediaserver.api import MediaError
from mediaserver.config import MediaConfig
from mediaserver.consumer import MAX_NACK_SEQS
from mediaserver.local_control import LocalMediaControl
from mediaserver.params import (
    Codec,
    ConsumerParams,
    ParamsError,
    ProducerParams,
    RemoteParams,
)
from mediaserver.producer import MAX_MISSING
from mediaserver.remote_control import RemoteMediaControl, control_server
from mediaserver.rtp.packet import build_packet
from mediaserver.rtp.rtcp import Nack, ReceiverReport, SenderReport, parse_compound
from mediaserver.stats import worker_stats
from mediaserver.transport import MAX_ADDRS, MAX_EARLY_DTLS, MAX_EARLY_DTLS_BYTES
from mediaserver.worker import Worker
from signaling.metrics import MediaCollector
from tests.support.stun_checks import binding_request
from tests.test_forwarding import DELTA, KEY, OPUS, VP8, Capture, Captured

SUB_VP8 = Codec("VP8", 100, 90000, nack=True, pli=True)


class Room:
    """A worker with capture transports: publishers (one producer each) and one subscriber
    consuming every producer. Transports are registered in creation order, so the first
    publisher is the first the timers visit."""

    def __init__(self, publishers: int) -> None:
        self.worker = Worker()
        self.worker.loop = asyncio.get_running_loop()
        self.router = self.worker.create_router()
        capture = Capture(self.worker)
        self.pubs = [capture.transport(self.router) for _ in range(publishers)]
        self.sub = capture.transport(self.router)
        self.producers = []
        self.consumers = []
        for i, pub in enumerate(self.pubs):
            pid = self.worker.produce(pub.id, ProducerParams("video", "0", VP8, ssrc=1000 + i))
            self.producers.append(self.worker.producers[pid])
            info = self.worker.consume(self.sub.id, pid, ConsumerParams(
                str(i), SUB_VP8, ssrc=5000 + i))
            self.consumers.append(self.worker.consumers[info.id])

    def feed(self, seqs: range) -> None:
        for producer in self.producers:
            for seq in seqs:
                producer.receive(build_packet(96, seq, seq * 3000, producer.ssrc & 0xFFFFFFFF,
                                              KEY if seq == seqs.start else DELTA, True),
                                 time.monotonic())

    def clear(self) -> None:
        for t in (*self.pubs, self.sub):
            t.rtcp.clear()


def items(t: Captured, kind: type) -> list:
    return [i for p in t.rtcp for i in parse_compound(p) if isinstance(i, kind)]


def report_round(worker: Worker) -> None:
    """One RTCP interval's reports: the worker spreads them over several ticks."""
    worker._report_tick()
    while worker.reports.queue:
        worker._report_tick()


async def test_out_of_range_ssrc_in_one_transport_breaks_no_one_elses_reports() -> None:
    """The bug of the issue: one publisher's SSRC past 32 bits raised struct.error in the report
    tick, every interval, for every transport visited after it."""
    room = Room(publishers=3)
    room.feed(range(1, 4))
    bad = room.producers[0]
    bad.ssrc = 2**32  # as an unchecked SDP once let through (it is refused at the border now)
    bad.codec = Codec("VP8", 96, 90000, remb=True)  # its REMB cannot be packed either
    room.clear()
    report_round(room.worker)
    assert room.worker.timer_errors >= 1
    assert not items(room.pubs[0], ReceiverReport)  # the faulty transport lost its round
    for i, pub in enumerate(room.pubs[1:], 1):  # the others got theirs
        assert [b.ssrc for rr in items(pub, ReceiverReport) for b in rr.reports] == [1000 + i]
    # the subscriber gets a sender report for every stream, the faulty one's included
    assert sorted(sr.ssrc for sr in items(room.sub, SenderReport)) == [5000, 5001, 5002]
    # counted with the worker's other counters, and exported with them
    assert worker_stats(room.worker)["timer_errors"] == room.worker.timer_errors
    collector = MediaCollector(lambda: 1, lambda: 1)
    collector.latest = worker_stats(room.worker)
    exported = {m.name: m.samples[0].value for m in collector.collect()}
    assert exported["mediaserver_timer_errors"] == room.worker.timer_errors


async def test_one_consumer_whose_report_fails_leaves_the_others_of_its_transport() -> None:
    room = Room(publishers=3)
    room.feed(range(1, 4))
    room.consumers[0].cname = "c" * 300  # an SDES item holds 255 octets: build_sdes raises
    room.producers[1].jitter = float(2**40)  # saturates in the report block, never raises
    room.clear()
    report_round(room.worker)
    assert room.worker.timer_errors == 1
    assert sorted(sr.ssrc for sr in items(room.sub, SenderReport)) == [5001, 5002]
    jitter = [b.jitter for rr in items(room.pubs[1], ReceiverReport) for b in rr.reports]
    assert jitter == [0xFFFFFFFF]


async def test_report_tick_keeps_running_on_its_timer_after_faults() -> None:
    worker = Worker(MediaConfig(port=0, rtcp_interval=0.02))
    await worker.start()
    try:
        room_sends: list[bytes] = []
        calls = []

        class Faulty:
            id, state = "tr-faulty", "connected"

            def send_reports(self, now: float, ntp: int) -> None:
                calls.append(now)
                raise RuntimeError("broken transport")

        class Fine:
            id, state = "tr-fine", "connected"

            def send_reports(self, now: float, ntp: int) -> None:
                room_sends.append(b"sr")

        worker.transports = {"tr-faulty": Faulty(), "tr-fine": Fine()}  # type: ignore[dict-item]
        deadline = time.monotonic() + 5
        while len(room_sends) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert len(room_sends) >= 5 and len(calls) >= 5
        assert worker.timer_errors == len(calls)
        worker.transports = {}
    finally:
        await worker.stop()


async def test_nack_tick_isolates_each_producer() -> None:
    room = Room(publishers=2)
    for producer in room.producers:
        producer.nack_enabled = True
        producer.receive(build_packet(96, 1, 0, producer.ssrc, KEY), time.monotonic())
        producer.receive(build_packet(96, 5, 0, producer.ssrc, DELTA), time.monotonic())
    room.producers[0].ssrc = -1  # its NACK cannot be built
    room.clear()
    room.worker._nack_tick()
    assert room.worker.timer_errors == 1
    assert [n.media_ssrc for n in items(room.pubs[1], Nack)] == [1001]
    assert room.producers[0] not in room.worker.link.nack_pending  # given up, not retried each tick


async def test_consent_tick_isolates_each_transport() -> None:
    room = Room(publishers=2)
    closed = []
    room.worker.transport_closed_listeners.append(lambda tid, reason: closed.append(tid))

    def broken_listener(tid: str, reason: str) -> None:
        raise RuntimeError("a listener that fails")

    room.worker.transport_closed_listeners.insert(0, broken_listener)
    for t in room.pubs:
        t.transport.last_stun = time.monotonic() - 3600
    room.sub.transport.last_stun = None  # never checked: never expired
    first = room.pubs[0].transport

    def failing_close(reason: str = "") -> None:
        raise RuntimeError("close failed half way")

    first.close = failing_close  # type: ignore[method-assign]
    room.worker._consent_tick()
    assert room.pubs[1].id in closed and room.pubs[1].id not in room.worker.transports
    assert first.id in closed and first.id not in room.worker.transports  # gone all the same
    assert room.sub.id in room.worker.transports
    assert room.worker.timer_errors == 1 + 2  # the close, and the broken listener twice


# ---- the media border -------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    {"ssrc": 2**32}, {"ssrc": -1}, {"rtx_ssrc": 2**40}, {"ssrc": True}, {"ssrc": 1.0},
    {"extensions": {"urn:ietf:params:rtp-hdrext:sdes:mid": 15}},
    {"extensions": {"urn:a": 1, "urn:b": 1}}, {"cname": "x" * 256}, {"cname": "a\x00b"},
    {"mid": "a b"}, {"kind": "data"},
])
def test_producer_params_out_of_range_are_refused(bad: dict) -> None:
    fields = {"kind": "video", "mid": "0", "codec": VP8, **bad}
    with pytest.raises(ParamsError) as caught:
        ProducerParams(**fields)
    assert isinstance(caught.value, MediaError) and isinstance(caught.value, ValueError)


@pytest.mark.parametrize("bad", [
    {"payload_type": 128}, {"payload_type": -1}, {"clock_rate": 0}, {"clock_rate": 2**32},
    {"channels": 0}, {"fmtp": "a=1\r\na=evil"}, {"fmtp": "\x1b[31m"}, {"rtx_payload_type": 300},
    {"name": "VP8/90000"}, {"nack": 1},
])
def test_codec_out_of_range_is_refused(bad: dict) -> None:
    with pytest.raises(ParamsError):
        Codec(**{"name": "VP8", "payload_type": 96, "clock_rate": 90000, **bad})


def test_consumer_and_remote_params_out_of_range_are_refused() -> None:
    with pytest.raises(ParamsError):
        ConsumerParams("0", VP8, ssrc=2**32)
    with pytest.raises(ParamsError):
        ConsumerParams("0", VP8, extensions={"urn:x": 0})
    with pytest.raises(ParamsError):
        RemoteParams("ufr:ag", "x" * 22, [], "server")
    with pytest.raises(ParamsError):
        RemoteParams("ufrag", "x" * 22, [("sha-256", 5)], "server")  # type: ignore[list-item]
    with pytest.raises(ParamsError):
        RemoteParams("ufrag", "x" * 22, [], "both")


async def test_out_of_range_values_over_the_worker_rpc_fail_the_call_with_media_error(
        tmp_path: Path) -> None:
    worker = Worker()
    worker.loop = asyncio.get_running_loop()
    server = control_server(LocalMediaControl(worker))
    path = str(tmp_path / "w.sock")
    unix = await server.serve(path)
    client = RemoteMediaControl(lambda transport_id, reason: None)
    await client.rpc.connect(path)
    try:
        # raw dicts where the declaration wants dataclasses: the worker decodes and checks
        transport = await client.create_transport(await client.create_router())
        params = {"kind": "video", "mid": "0", "ssrc": 2**32, "rtx_ssrc": None,
                  "extensions": {}, "cname": "",
                  "codec": {"name": "VP8", "payload_type": 96, "clock_rate": 90000}}
        with pytest.raises(MediaError, match="ssrc"):
            await asyncio.wait_for(client.produce(transport.id, params), 5)  # type: ignore[arg-type]
        params = {**params, "ssrc": 1, "codec": {**params["codec"], "clock_rate": 0}}
        with pytest.raises(MediaError, match="clock_rate"):
            await asyncio.wait_for(client.produce(transport.id, params), 5)  # type: ignore[arg-type]
        with pytest.raises(MediaError, match="expected bool"):
            await asyncio.wait_for(client.pause_producer("x", "no"), 5)  # type: ignore[arg-type]
        assert not worker.producers
        # and the connection still serves the next call
        assert (await asyncio.wait_for(client.stats(), 5))["transports"] == 1
    finally:
        await client.rpc.close()
        unix.close()
        await worker.stop()


async def test_pipe_connect_refuses_bad_addresses() -> None:
    worker = Worker()
    worker.loop = asyncio.get_running_loop()
    router = worker.create_router()
    pipe = await worker.create_pipe_transport(router)
    try:
        for ip, port in (("127.0.0.1", 70000), ("127.0.0.1", 0), ("not-an-ip", 5000)):
            with pytest.raises(ParamsError):
                worker.connect_pipe_transport(pipe.id, ip, port)
        worker.connect_pipe_transport(pipe.id, "127.0.0.1", 5000)
    finally:
        await worker.stop()


def test_rpc_reply_to_garbage_keeps_the_request_id() -> None:
    worker = Worker()
    server = control_server(LocalMediaControl(worker))
    loop = asyncio.new_event_loop()
    try:
        for line, rid in ((b'{"id": 7, "method": "produce", "params": []}', 7),
                          (b'{"id": 8, "method": "nope"}', 8),
                          (b'{"id": "x", "method": "close_router", "params": {}}', "x"),
                          (b"[1, 2]", None), (b"\xff", None)):
            reply = loop.run_until_complete(server.reply_to(line))
            assert reply["id"] == rid and reply["error"]["type"] == "bad_request"
        reply = loop.run_until_complete(server.reply_to(json.dumps(
            {"id": 9, "method": "close_router", "params": {"router_id": 5}}).encode()))
        assert reply == {"id": 9, "error": {"type": "bad_request",
                                            "message": "expected str, not int"}}
    finally:
        loop.close()


# ---- bounded tables -------------------------------------------------------------------------


def check(ufrag: str, pwd: str, nominate: bool = False) -> bytes:
    return binding_request(f"{ufrag}:peer", pwd, nominate)


async def test_a_peer_checking_from_thousands_of_addresses_grows_nothing() -> None:
    worker = Worker()
    worker.loop = asyncio.get_running_loop()
    worker.sendto = lambda data, addr: None
    router = worker.create_router()
    info = worker.create_transport(router)
    other = worker.create_transport(router)
    t = worker.transports[info.id]
    worker.connect_transport(info.id, RemoteParams("peer", "p" * 22, [("sha-256", "AA")],
                                                   "server"))
    nominated = ("127.0.0.1", 1)
    worker.datagram_received(check(info.ice_ufrag, info.ice_pwd, nominate=True), nominated)
    worker.datagram_received(check(other.ice_ufrag, other.ice_pwd), ("127.0.0.2", 9))
    for port in range(2, 5000):
        worker.datagram_received(check(info.ice_ufrag, info.ice_pwd), ("127.0.0.1", port))
        assert len(t.addrs) <= MAX_ADDRS
    assert t.addr == nominated and nominated in t.addrs  # the nominated one is never dropped
    assert ("127.0.0.1", 4999) in t.addrs  # the most recent are kept
    assert len(t._addr_checked) == len(t.addrs)
    assert len(worker.transport_ids_by_addr()) == MAX_ADDRS + 1  # + the other transport's one
    assert all(worker.transport_ids_by_addr()[a] == t.id for a in t.addrs)
    # an ICE restart forgets them all, in the worker's table too
    worker.connect_transport(info.id, RemoteParams("peer2", "p" * 22, [("sha-256", "AA")],
                                                   "server"))
    assert not t.addrs and list(worker.transport_ids_by_addr()) == [("127.0.0.2", 9)]
    t.close()
    assert list(worker.transport_ids_by_addr()) == [("127.0.0.2", 9)]


async def test_early_dtls_is_bounded_in_records_and_bytes() -> None:
    worker = Worker()
    worker.loop = asyncio.get_running_loop()
    t = worker.transports[worker.create_transport(worker.create_router()).id]
    for _ in range(100):
        t.on_dtls(b"\x16" + b"x" * 4000)
    assert len(t._early_dtls) <= MAX_EARLY_DTLS
    assert sum(map(len, t._early_dtls)) <= MAX_EARLY_DTLS_BYTES


async def test_nack_state_is_bounded_whatever_the_gaps() -> None:
    room = Room(publishers=1)
    producer = room.producers[0]
    seq = 1
    producer.receive(build_packet(96, seq, 0, 1000, KEY), time.monotonic())
    for _ in range(200):  # gaps just under MAX_NACK_GAP, all within the NACK age
        seq += 255
        producer.receive(build_packet(96, seq & 0xFFFF, 0, 1000, DELTA), time.monotonic())
        assert len(producer.missing) <= MAX_MISSING


async def test_one_nack_resends_at_most_max_nack_seqs() -> None:
    room = Room(publishers=1)
    room.feed(range(1, 1001))
    consumer = room.consumers[0]
    out_seq = (1 + consumer.seq_offset) & 0xFFFF
    room.sub.rtp.clear()
    consumer.on_nack([(out_seq + i) & 0xFFFF for i in range(1000)])
    assert consumer.retransmitted == MAX_NACK_SEQS == len(room.sub.rtp)


async def test_audio_room_reports_too() -> None:
    """The per-producer report blocks also run for audio (no retransmission buffer)."""
    worker = Worker()
    worker.loop = asyncio.get_running_loop()
    pub = Capture(worker).transport(worker.create_router())
    pid = worker.produce(pub.id, ProducerParams("audio", "0", OPUS, ssrc=7))
    worker.producers[pid].receive(build_packet(111, 1, 960, 7, b"x"), time.monotonic())
    report_round(worker)
    assert [b.ssrc for rr in items(pub, ReceiverReport) for b in rr.reports] == [7]
    assert worker.timer_errors == 0
