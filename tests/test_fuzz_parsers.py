"""Property-based tests of the parsers that take what peers send, beyond their own test files.

RTP headers and extensions, RTCP compound packets (random and mutated valid ones), STUN
requests mutated from valid ones, the control API's params (in process, over the worker RPC
decoding), and the recorder's input: depacketizers, jitter buffer and a Recording's datagrams.
The property each time: a result in range or the one documented exception, never anything
else, and every table bounded. The RTP/RTCP/STUN/SDP tests of their own files are marked the
same way (tests/test_rtcp.py, test_ice.py, test_codecs.py, test_sdp_parse.py).

`make test` runs a bounded share of cases; `make fuzz` runs 100,000 of each.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediaserver import ice, wire
from mediaserver.local_control import LocalMediaControl
from mediaserver.params import (
    MAX_CLOCK_RATE,
    MAX_EXTENSION_ID,
    MAX_U32,
    PRINTABLE,
    TOKEN,
    VISIBLE,
    Codec,
    ConsumerParams,
    ParamsError,
    ProducerParams,
    RemoteParams,
)
from mediaserver.remote_control import control_server
from mediaserver.rtp.packet import (
    ExtensionWriter,
    build_extensions,
    build_packet,
    extension_block,
    find_extension,
    parse_extensions,
    payload_end,
    payload_offset,
)
from mediaserver.rtp.rtcp import (
    Bye,
    Fir,
    Nack,
    Pli,
    ReceiverReport,
    Remb,
    ReportBlock,
    Sdes,
    SenderReport,
    TransportCc,
    build_bye,
    build_fir,
    build_nack,
    build_pli,
    build_remb,
    build_rr,
    build_sdes_cname,
    build_sr,
    parse_compound,
)
from mediaserver.worker import Worker
from recorder import recording as rec_module
from recorder.depacketize import make_depacketizer
from recorder.jitter import MAX_FRAME_PACKETS, MAX_MISSING, MAX_PACKETS, JitterBuffer
from recorder.recording import HOLD_SSRCS, Recording
from tests.support.fuzz import fuzz_examples
from tests.support.rtp_samples import ONE_BYTE_ELEMENT, TWO_BYTE_ELEMENT, unique_ids
from tests.support.stun_checks import binding_request

pytestmark = pytest.mark.fuzz


def fuzz(ci_examples: int) -> settings:
    return settings(max_examples=fuzz_examples(ci_examples), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    """A valid datagram with a few bytes flipped, cut, inserted or the tail extended."""
    data = bytearray(draw(valid))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "extend", "byte"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "extend":
            data += draw(st.binary(max_size=40))
    return bytes(data)


# ---- RTP header and extensions -----------------------------------------------------------

VALID_RTP = st.builds(
    lambda pt, seq, ts, ssrc, payload, marker, one, two, use_two: build_packet(
        pt, seq, ts, ssrc, payload, marker,
        build_extensions(two if use_two else one)),
    st.integers(0, 127), st.integers(0, 0xFFFF), st.integers(0, MAX_U32),
    st.integers(0, MAX_U32), st.binary(max_size=64), st.booleans(),
    st.lists(ONE_BYTE_ELEMENT, max_size=5).map(unique_ids),
    st.lists(TWO_BYTE_ELEMENT, max_size=3).map(unique_ids), st.booleans())
RTP_INPUT = st.binary(max_size=120) | mutated(VALID_RTP)


@fuzz(500)
@given(RTP_INPUT, st.integers(-1, 16))
def test_rtp_header_parsers_raise_only_value_error(data: bytes, wanted: int) -> None:
    for parse in (payload_offset, payload_end, extension_block, parse_extensions):
        try:
            result = parse(data)
        except ValueError:
            continue
        if parse in (payload_offset, payload_end):
            assert 12 <= result <= len(data)  # type: ignore[operator]
        elif parse is extension_block:
            _, start, end = result  # type: ignore[misc]
            assert 0 <= start <= end <= len(data)
        else:
            assert all(0 <= k < 256 and len(v) <= 255 for k, v in result.items())  # type: ignore
    if len(data) >= 12:  # the packet path only looks into packets past their fixed header
        value = find_extension(data, wanted)
        assert value is None or (1 <= len(value) <= 16 and value in data)


@fuzz(300)
@given(st.binary(max_size=6) | st.none(), st.integers(-5, 70000), st.binary(max_size=3) |
       st.none(), st.integers(0, 15), st.integers(0, 15), st.integers(0, 15), st.integers(0, 15),
       st.text(max_size=20))
def test_extension_writer_keeps_its_layout_whatever_the_publisher_sent(
        abs_time: bytes | None, tcc: int, level: bytes | None, mid_id: int, abs_id: int,
        tcc_id: int, level_id: int, mid: str) -> None:
    ids = [i for i in (mid_id, abs_id, tcc_id, level_id) if i]
    if len(ids) != len(set(ids)) or not mid.isascii():
        return
    writer = ExtensionWriter(mid_id, mid, abs_id, tcc_id, level_id)
    block = writer.render(abs_time, tcc, level)
    assert len(block) == len(writer.template)
    if block:
        packet = build_packet(96, 1, 2, 3, b"x", extensions=block)
        assert payload_offset(packet) == len(packet) - 1


# ---- RTCP -----------------------------------------------------------------------------------

U32 = st.integers(0, MAX_U32)
BLOCK = st.builds(ReportBlock, U32, st.integers(0, 255), st.integers(-0x800000, 0x7FFFFF), U32,
                  U32, U32, U32)
RTCP_PART = st.one_of(
    st.builds(build_sr, U32, st.integers(0, 2**64 - 1), U32, U32, U32,
              st.lists(BLOCK, max_size=3)),
    st.builds(build_rr, U32, st.lists(BLOCK, max_size=3)),
    st.builds(build_sdes_cname, U32, st.text(alphabet="abcdef0123", max_size=40)),
    st.builds(build_bye, st.lists(U32, max_size=4)),
    st.builds(build_nack, U32, U32, st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=40)),
    st.builds(build_pli, U32, U32),
    st.builds(build_fir, U32, st.lists(st.tuples(U32, st.integers(0, 255)), min_size=1,
                                       max_size=3)),
    st.builds(build_remb, U32, st.integers(0, 2**40), st.lists(U32, max_size=4)),
)
VALID_RTCP = st.lists(RTCP_PART, min_size=1, max_size=4).map(b"".join)


@fuzz(500)
@given(st.binary(max_size=200) | mutated(VALID_RTCP) | VALID_RTCP)
def test_rtcp_compound_gives_items_in_range_or_value_error(data: bytes) -> None:
    try:
        items = parse_compound(data)
    except ValueError:
        return
    for item in items:
        assert isinstance(item, (SenderReport, ReceiverReport, Sdes, Bye, Nack, Pli, Fir, Remb,
                                 TransportCc))
        if isinstance(item, (SenderReport, ReceiverReport)):
            assert 0 <= item.ssrc <= MAX_U32 and len(item.reports) <= 31
            for b in item.reports:
                assert 0 <= b.fraction_lost <= 255 and -0x800000 <= b.packets_lost <= 0x7FFFFF
        elif isinstance(item, Nack):
            assert all(0 <= s <= 0xFFFF for s in item.seqs)
            assert len(item.seqs) == len(set(item.seqs)) <= 0x10000
        elif isinstance(item, Remb):
            assert item.bitrate >= 0 and len(item.ssrcs) <= 255


# ---- STUN -----------------------------------------------------------------------------------

UFRAG, PWD = "srvU", "serverpasswordserver12"


VALID_STUN = st.builds(binding_request, st.sampled_from([f"{UFRAG}:peer", "x:y", "", UFRAG]),
                       st.just(PWD), st.booleans(), st.integers(0, MAX_U32))


@fuzz(500)
@given(mutated(VALID_STUN) | VALID_STUN)
def test_mutated_stun_requests_are_refused_or_checked_without_raising(data: bytes) -> None:
    request = ice.parse_request(data)
    if request is None:
        return
    ufrag = ice.username_ufrag(request)
    assert ufrag is None or isinstance(ufrag, str)
    if ice.check_request(request, UFRAG, "peer", PWD):
        # only an intact request passes; answering it works
        assert request.attributes["USERNAME"] == f"{UFRAG}:peer"
        assert ice.success_response(request, ("127.0.0.1", 5000), PWD)
    assert ice.error_response(request, 401, "Unauthorized")


# ---- control API params ---------------------------------------------------------------------

ANY_INT = st.one_of(st.integers(-2, 300), st.integers(-(2**70), 2**70), st.booleans(),
                    st.floats(allow_nan=False), st.none(), st.text(max_size=5))
ANY_TEXT = st.one_of(st.text(max_size=40), st.sampled_from(["", "0", "VP8", "opus", "a b",
                                                             "x\x00y", "é", "x" * 300]),
                     st.integers(), st.none())
CODEC_FIELDS = st.fixed_dictionaries({
    "name": ANY_TEXT | st.sampled_from(["VP8", "opus", "H264"]),
    "payload_type": ANY_INT | st.integers(0, 127),
    "clock_rate": ANY_INT | st.sampled_from([0, 1, 90000, MAX_CLOCK_RATE, MAX_CLOCK_RATE + 1,
                                             2**32]),
    "channels": ANY_INT,
    "fmtp": ANY_TEXT | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F)),
    "rtx_payload_type": ANY_INT,
    "nack": st.booleans() | ANY_INT,
})
EXTENSIONS = st.dictionaries(ANY_TEXT | st.just("urn:x"), ANY_INT | st.integers(0, 20),
                             max_size=3) | st.none() | st.lists(st.integers(), max_size=2)


def assert_codec_in_range(c: Codec) -> None:
    assert TOKEN.fullmatch(c.name) and "/" not in c.name and len(c.name) <= 32
    assert type(c.payload_type) is int and 0 <= c.payload_type <= 127
    assert type(c.clock_rate) is int and 1 <= c.clock_rate <= MAX_CLOCK_RATE
    assert type(c.channels) is int and 1 <= c.channels <= 255
    assert PRINTABLE.fullmatch(c.fmtp) and len(c.fmtp) <= 1024
    assert c.rtx_payload_type is None or 0 <= c.rtx_payload_type <= 127


def assert_extensions_in_range(exts: dict[str, int]) -> None:
    assert all(VISIBLE.fullmatch(u) and 1 <= i <= MAX_EXTENSION_ID for u, i in exts.items())
    assert len(set(exts.values())) == len(exts)


def build(kind: type, fields: dict[str, Any]) -> Any:
    try:
        return kind(**fields)
    except ParamsError:
        return None


@fuzz(400)
@given(CODEC_FIELDS, ANY_TEXT | st.sampled_from(["audio", "video"]), ANY_TEXT, ANY_INT | U32,
       ANY_INT | st.none(), EXTENSIONS, ANY_TEXT)
def test_params_are_in_range_or_refused_with_params_error(
        codec_fields: dict, kind: Any, mid: Any, ssrc: Any, rtx_ssrc: Any, exts: Any,
        cname: Any) -> None:
    codec = build(Codec, codec_fields)
    if codec is None:
        codec = Codec("VP8", 96, 90000)
    else:
        assert_codec_in_range(codec)
        assert wire.decode(Codec, json.loads(json.dumps(wire.encode(codec)))) == codec
    producer = build(ProducerParams, {"kind": kind, "mid": mid, "codec": codec, "ssrc": ssrc,
                                      "rtx_ssrc": rtx_ssrc, "extensions": exts, "cname": cname})
    if producer is not None:
        assert producer.kind in ("audio", "video")
        assert producer.ssrc is None or 0 <= producer.ssrc <= MAX_U32
        assert producer.rtx_ssrc is None or 0 <= producer.rtx_ssrc <= MAX_U32
        assert_extensions_in_range(producer.extensions)
        assert producer.cname == "" or (VISIBLE.fullmatch(producer.cname) and
                                        len(producer.cname) <= 255)
        decoded = wire.decode(ProducerParams, json.loads(json.dumps(wire.encode(producer))))
        assert decoded == producer
    consumer = build(ConsumerParams, {"mid": mid, "codec": codec, "extensions": exts,
                                      "ssrc": ssrc, "rtx_ssrc": rtx_ssrc})
    if consumer is not None:
        assert 0 <= consumer.ssrc <= MAX_U32
        assert_extensions_in_range(consumer.extensions)
    remote = build(RemoteParams, {"ice_ufrag": mid, "ice_pwd": cname, "fingerprints": exts,
                                  "dtls_role": kind})
    assert remote is None or remote.dtls_role in ("server", "client")


@pytest.fixture(scope="module")
def rpc_server() -> Any:
    loop = asyncio.new_event_loop()
    worker = Worker()
    worker.loop = loop
    server = control_server(LocalMediaControl(worker))
    router = worker.create_router()
    transport = worker.create_transport(router).id
    yield loop, server, transport, worker
    loop.close()


RPC_PARAMS = st.fixed_dictionaries({"transport_id": ANY_TEXT, "params": st.fixed_dictionaries({
    "kind": st.sampled_from(["video", "audio"]) | ANY_TEXT, "mid": st.just("0") | ANY_TEXT,
    "codec": CODEC_FIELDS | st.just(wire.encode(Codec("VP8", 96, 90000))),
    "ssrc": ANY_INT | U32, "rtx_ssrc": st.none() | ANY_INT, "extensions": EXTENSIONS,
    "cname": ANY_TEXT})})


@fuzz(300)
@given(st.sampled_from(["produce", "pipe_produce", "consume", "connect_transport"]),
       RPC_PARAMS, st.integers(1, 10**6))
def test_rpc_with_bad_params_answers_an_error_under_the_request_id(
        rpc_server: Any, method: str, params: dict, request_id: int) -> None:
    loop, server, transport, worker = rpc_server
    if method == "produce" and isinstance(params["transport_id"], str):
        params = {**params, "transport_id": transport}
    line = json.dumps({"id": request_id, "method": method, "params": params}).encode()
    reply = loop.run_until_complete(server.reply_to(line))
    assert reply["id"] == request_id
    if "error" in reply:
        assert reply["error"]["type"] in ("bad_request", "media", "internal")
    else:
        assert method == "produce"  # the only one of these whose params can all be right
        producer = worker.producers[reply["result"]]
        assert producer.ssrc is None or 0 <= producer.ssrc <= MAX_U32
        producer.close()


# ---- recorder input ---------------------------------------------------------------------------


@fuzz(400)
@given(st.sampled_from(["VP8", "H264", "opus"]), st.lists(st.binary(max_size=40), max_size=6),
       st.integers(0, MAX_U32))
def test_depacketizers_give_a_frame_or_none(codec: str, payloads: list[bytes], ts: int) -> None:
    dep = make_depacketizer(codec)
    assert dep.starts_frame(payloads[0]) in (True, False) if payloads else True
    frame = dep.depacketize(payloads, ts)
    assert frame is None or (isinstance(frame.data, bytes) and frame.timestamp == ts)


RUN = st.tuples(st.sampled_from(["random", "run", "jump", "same_ts"]), st.integers(1, 40),
                st.integers(0, MAX_U32), st.integers(1, 999), st.integers(0, 2**32))
PAYLOADS = (b"\x10", b"\x00", b"\x90\x80\x01", b"", b"\x7c\x85", b"\x18\x00\x02\x67\x42",
            b"\xf8\xff\xfe")


def pushes(start: int, runs: list[tuple[str, int, int, int, int]]) -> list[tuple]:
    """Packets from a few drawn numbers per run (a run's details from its seed): random
    ones, runs of consecutive ones, jumps and long runs of one timestamp without a marker."""
    out = []
    seq = start
    for kind, n, ts, step, seed in runs:
        r = random.Random(seed)
        for _ in range(n):
            if kind == "random":
                seq, ts = r.getrandbits(16), r.getrandbits(32)
            else:
                seq = (seq + (step if kind == "jump" else 1)) & 0xFFFF
            marker = kind != "same_ts" and r.random() < 0.5
            out.append((seq, ts, marker, r.choice(PAYLOADS), r.choice((0.001, 0.001, 0.3))))
    return out


@fuzz(200)
@given(st.sampled_from(["VP8", "H264", "opus"]), st.integers(0, 0xFFFF),
       st.lists(RUN, min_size=1, max_size=6))
def test_jitter_buffer_never_raises_and_stays_bounded(codec: str, start: int,
                                                      runs: list) -> None:
    frames = []
    nacks: list[list[int]] = []
    buffer = JitterBuffer(make_depacketizer(codec), frames.append, send_nack=nacks.append,
                          request_keyframe=lambda: None)
    now = 0.0
    for seq, ts, marker, payload, dt in pushes(start, runs):
        now += dt
        buffer.push(seq, ts, marker, payload, now)
        if dt > 0.2:
            buffer.poll(now)
        assert len(buffer._packets) <= MAX_PACKETS + 1
        assert len(buffer._missing) <= MAX_MISSING + 1000
    buffer.flush()
    assert not buffer._packets and not buffer._missing
    assert all(len(n) <= 256 and all(0 <= s <= 0xFFFF for s in n) for n in nacks)


def test_jitter_buffer_drops_a_frame_that_never_ends() -> None:
    """One timestamp, no marker, thousands of packets: dropped in MAX_FRAME_PACKETS slices."""
    frames: list = []
    buffer = JitterBuffer(make_depacketizer("VP8"), frames.append)
    for seq in range(3 * MAX_FRAME_PACKETS):
        buffer.push(seq, 1234, False, b"\x10\x00", 0.0)
        assert len(buffer._packets) <= MAX_FRAME_PACKETS
    assert buffer.stats.dropped_frames >= 2 and not frames


def test_jitter_buffer_bounds_holes_of_repeated_large_gaps() -> None:
    buffer = JitterBuffer(make_depacketizer("opus"), lambda f: None, send_nack=lambda s: None)
    seq = 0
    for _ in range(200):  # each gap just under MAX_GAP, all within max_delay
        seq = (seq + 999) & 0xFFFF
        buffer.push(seq, seq * 960, True, b"\xf8", 0.0)
        assert len(buffer._missing) <= MAX_MISSING + 1000


RTP_FOR_RECORDER = st.builds(
    lambda ssrc, seq, pt, payload, marker: build_packet(pt, seq, seq * 3000, ssrc, payload,
                                                        marker),
    st.sampled_from([1111, 2222]) | U32, st.integers(0, 0xFFFF), st.sampled_from([96, 111]),
    st.sampled_from([b"\x10\x00\x00\x9d\x01\x2a", b"\x00\x01", b"\xf8\xff"]), st.booleans())
SR_FOR_RECORDER = st.builds(lambda ssrc, ntp, ts: build_sr(ssrc, ntp, ts, 1, 100),
                            st.sampled_from([1111, 2222]) | U32, st.integers(0, 2**64 - 1), U32)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """One Recording (two announced tracks) for every example: state carries over, as in a
    real one that takes garbage for hours."""
    rec = Recording("fuzz", "room", "pertrack", "grid", tmp_path_factory.mktemp("rec"))
    rec.dir.mkdir(parents=True)
    rec.add_track(1111, "video", {"name": "VP8", "payload_type": 96, "clock_rate": 90000}, "a")
    rec.add_track(2222, "audio", {"name": "opus", "payload_type": 111, "clock_rate": 48000},
                  "a")
    return rec


@fuzz(300)
@given(st.lists(st.binary(max_size=60) | RTP_FOR_RECORDER | mutated(RTP_FOR_RECORDER) |
                SR_FOR_RECORDER | mutated(VALID_RTCP), max_size=40))
def test_recording_takes_any_datagram_and_holds_a_bounded_amount(
        recording: Recording, datagrams: list[bytes]) -> None:
    rec = recording
    for i, data in enumerate(datagrams):
        rec.datagram_received(data, ("127.0.0.1", 5000 + i % 3))
        assert len(rec._held) <= HOLD_SSRCS and len(rec._held_sr) <= HOLD_SSRCS
    rec.tick(time.monotonic() + rec_module.HOLD_SECONDS + 1)  # all held is too old by then
    assert not rec._held and not rec._held_sr
    for track in rec.tracks.values():
        assert len(track.jitter._packets) <= MAX_PACKETS + 1


def test_recording_holds_unknown_ssrcs_for_a_while_only(tmp_path: Path) -> None:
    """Sender reports and packets of SSRCs nobody announces are dropped: garbage holds nothing
    (they were kept for ever), and a flood of new SSRCs keeps only the newest HOLD_SSRCS."""
    rec = Recording("held", "room", "pertrack", "grid", tmp_path)
    for ssrc in range(10_000):
        rec.datagram_received(build_sr(ssrc, 1 << 32, 0, 1, 1), ("127.0.0.1", 9))
        rec.datagram_received(build_packet(96, 1, 1, ssrc + (1 << 20), b"x"), ("127.0.0.1", 9))
    assert len(rec._held_sr) == len(rec._held) == HOLD_SSRCS
    assert max(rec._held_sr) == 9999  # the newest are kept
    now = max(arrival for _, arrival in rec._held_sr.values())
    rec.tick(now + rec_module.HOLD_SECONDS / 2)
    assert len(rec._held_sr) == HOLD_SSRCS
    rec.tick(now + rec_module.HOLD_SECONDS + 0.01)
    assert not rec._held_sr and not rec._held


@pytest.mark.parametrize("codec", [
    {"name": "VP8", "clock_rate": 0}, {"name": "VP8", "clock_rate": 2**32},
    {"name": "VP8", "payload_type": 128}, {"name": "opus", "channels": 0},
    {"name": "VP8", "clock_rate": "90000"}, {"name": "VP8", "clock_rate": 9e4},
])
def test_recording_refuses_tracks_out_of_range(tmp_path: Path, codec: dict) -> None:
    rec = Recording("r1", "room", "pertrack", "grid", tmp_path)
    rec.dir.mkdir()
    kind = "audio" if codec["name"] == "opus" else "video"
    with pytest.raises(ValueError):
        rec.add_track(1, kind, codec, "a")
    with pytest.raises(ValueError):
        rec.add_track(2**32, "video", {"name": "VP8"}, "a")
    assert not rec.tracks
