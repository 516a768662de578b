"""The fan-out's sends in C (mediaserver/sendbatch.py, native/fanout.c) on real loopback
sockets and real SRTP: each copy reaches its own address and decrypts to the packet the Python
reference (ExtensionWriter.render + SrtpContext.protect_parts) builds, byte for byte; a
transport that comes round again within a batch is sent before its buffer is reused; a failing
message costs only itself; bad lengths are refused without touching any state."""

from __future__ import annotations

import os
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pylibsrtp import Policy

from mediaserver.bwe.history import SendHistory
from mediaserver.rtp.packet import ExtensionWriter
from mediaserver.sendbatch import (
    NOT_CONNECTED,
    NULL,
    SRTP_ERROR,
    TOO_LONG,
    UNQUEUED,
    Outbound,
    SendBatch,
    ffi,
    send_copy,
)
from mediaserver.srtp import PROFILES, SrtpError, make_pair
from mediaserver.srtp_fast import SrtpContext


def receivers(n: int, family: int = socket.AF_INET) -> list[socket.socket]:
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    out = []
    for _ in range(n):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind((host, 0))
        s.settimeout(5)
        out.append(s)
    return out


class Copy:
    """A consumer's per-copy constants (ms_copy) from an ExtensionWriter, as Consumer sets them."""

    def __init__(self, writer: ExtensionWriter, tcc: bool) -> None:
        self.c = c = ffi.new("ms_copy *")
        block = bytes(writer.template)
        ffi.memmove(c.ext, block, len(block))
        c.ext_len = len(block)
        c.abs_pos, c.tcc_pos, c.level_pos = writer.abs_pos, writer.tcc_pos, writer.level_pos
        c.x_bit = 0x10 if block else 0
        c.tcc = int(tcc)


def keyed(addr: tuple | None) -> tuple[Outbound, object, object]:
    """An Outbound keyed with real SRTP towards `addr`, and the receiving side's pair."""
    material = os.urandom(2 * (PROFILES[0].key_length + PROFILES[0].salt_length))
    server = make_pair(PROFILES[0].openssl_name, material, is_server=True)
    client = make_pair(PROFILES[0].openssl_name, material, is_server=False)
    out = Outbound()
    out.set_path(server, addr)
    history = SendHistory()
    out.set_history(history)
    return out, client, history


WRITER = dict(mid_id=1, mid="v0", abs_send_time_id=2, transport_cc_id=3)


def test_each_copy_reaches_its_address_and_decrypts_to_the_reference() -> None:
    data = bytes.fromhex("80e0") + bytes(10) + b"frame" * 150  # marker set, payload at 12
    for family in (socket.AF_INET, socket.AF_INET6):
        sinks = receivers(5, family)
        sender = socket.socket(family, socket.SOCK_DGRAM)
        batch = SendBatch()
        batch.fd = sender.fileno()
        batch.active = True
        outs = [keyed(s.getsockname()) for s in sinks]
        copies = [Copy(ExtensionWriter(**WRITER), tcc=True) for _ in sinks]
        for i, ((out, _client, _h), copy) in enumerate(zip(outs, copies, strict=True)):
            size = send_copy(batch.c, out.c, copy.c, data, len(data), 12, b"", 0, 100 + i,
                             9000, 0xABC + i, 100, b"\x01\x02\x03", -1, 5.0)
            assert size > 0
        assert batch.count == 5
        batch.flush()
        assert batch.sent == 5 and batch.count == 0
        for i, (s, (out, client, history)) in enumerate(zip(sinks, outs, strict=True)):
            writer = ExtensionWriter(**WRITER)
            ext = writer.render(b"\x01\x02\x03", 1, None)
            expected = bytes((0x90, 0x80 | 100)) + (100 + i).to_bytes(2, "big") + \
                (9000).to_bytes(4, "big") + (0xABC + i).to_bytes(4, "big") + ext + data[12:]
            assert client.unprotect(s.recv(2000)) == expected
            assert out.c.tcc_seq == 1 and out.c.packets == 1 and history.lookup(1, 1)[0][1] == 5.0
            s.close()
        sender.close()


def test_a_transport_queued_again_is_sent_before_its_buffer_is_reused() -> None:
    sink, = receivers(1)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    batch = SendBatch()
    batch.fd = sender.fileno()
    batch.active = True
    out, client, _history = keyed(sink.getsockname())
    copy = Copy(ExtensionWriter(), tcc=False)
    for seq, body in ((1, b"first"), (2, b"second")):
        data = bytes((0x80, 96)) + bytes(10) + body
        assert send_copy(batch.c, out.c, copy.c, data, len(data), 12, b"", 0, seq, 0, 7, 96,
                         NULL, -1, 0.0) > 0
    assert batch.count == 1 and batch.sent == 1  # the first went before the second was built
    batch.flush()
    assert client.unprotect(sink.recv(100))[12:] == b"first"
    assert client.unprotect(sink.recv(100))[12:] == b"second"
    sink.close()
    sender.close()


def test_outside_a_fan_out_a_copy_goes_at_once() -> None:
    sink, = receivers(1)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    batch = SendBatch()
    batch.fd = sender.fileno()
    out, client, _history = keyed(sink.getsockname())
    data = bytes((0x80, 96)) + bytes(10) + b"resend"
    assert send_copy(batch.c, out.c, Copy(ExtensionWriter(), False).c, data, len(data), 12,
                     b"\x00\x07", 2, 5, 0, 7, 97, NULL, -1, 0.0) > 0
    assert batch.count == 0 and batch.sent == 1
    assert client.unprotect(sink.recv(100))[12:] == b"\x00\x07resend"
    sink.close()
    sender.close()


def test_a_failing_message_costs_only_itself() -> None:
    a, b = receivers(2)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    batch = SendBatch()
    batch.fd = sender.fileno()
    batch.active = True
    copy = Copy(ExtensionWriter(), tcc=False)
    targets = [keyed(a.getsockname()), keyed(("127.0.0.1", 0)),  # port 0: EINVAL
               keyed(b.getsockname())]
    for out, _client, _h in targets:
        data = bytes((0x80, 96)) + bytes(10) + b"to"
        send_copy(batch.c, out.c, copy.c, data, len(data), 12, b"", 0, 1, 0, 7, 96, NULL, -1, 0)
    batch.flush()
    assert targets[0][1].unprotect(a.recv(100))[12:] == b"to"
    assert targets[2][1].unprotect(b.recv(100))[12:] == b"to"
    assert batch.sent == 2 and batch.errors == 1 and batch.dropped == 0
    for s in (a, b, sender):
        s.close()


def test_bad_lengths_and_unkeyed_transports_change_nothing() -> None:
    batch = SendBatch()
    out, _client, history = keyed(None)
    copy = Copy(ExtensionWriter(**WRITER), tcc=True)
    big = bytes((0x80, 96)) + bytes(10) + b"x" * 1489  # with the extension block: over 1500
    for data, off in ((big, 12), (b"\x80\x60", 5), (b"\x80\x60" + bytes(10), 1)):
        assert send_copy(batch.c, out.c, copy.c, data, len(data), off, b"", 0, 1, 0, 7, 96,
                         NULL, -1, 0.0) == TOO_LONG
    assert out.c.tcc_seq == 0 and out.c.packets == 0 and history.lookup(0, 10) == []
    out.set_path(None, None)
    assert send_copy(batch.c, out.c, copy.c, b"\x80\x60" + bytes(10), 12, 12, b"", 0, 1, 0,
                     7, 96, NULL, -1, 0.0) == NOT_CONNECTED


@pytest.mark.fuzz
@settings(deadline=None)
@given(
    st.lists(st.tuples(
        st.binary(min_size=0, max_size=1300),  # payload
        st.binary(max_size=4),  # prefix
        st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF),
        st.integers(0, 127), st.booleans(), st.booleans(),  # pt, marker, padding bit
        st.one_of(st.none(), st.binary(min_size=3, max_size=3)),
        st.one_of(st.none(), st.binary(min_size=1, max_size=1)),
    ), min_size=1, max_size=6),
    st.booleans(), st.booleans(), st.booleans(), st.booleans(),
)
def test_the_c_builds_what_the_python_reference_builds(packets, mid, abs_, tcc, level) -> None:
    """Unqueued (no socket), so the C leaves each protected copy in the buffer to compare with
    the reference's, protected by an identical SRTP context."""
    profile = PROFILES[0]
    key = os.urandom(profile.key_length + profile.salt_length)
    policy = Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                    srtp_profile=profile.libsrtp_profile)
    policy.allow_repeat_tx = True
    ours, reference = SrtpContext(policy), SrtpContext(policy)
    pair = type("Pair", (), {"tx_native": ours.native})()
    out = Outbound()
    out.set_path(pair, ("127.0.0.1", 9))  # type: ignore[arg-type]
    out.set_history(SendHistory())
    args = dict(mid_id=1 if mid else 0, mid="m7", abs_send_time_id=2 if abs_ else 0,
                transport_cc_id=3 if tcc else 0, audio_level_id=4 if level else 0)
    copy, writer = Copy(ExtensionWriter(**args), tcc), ExtensionWriter(**args)
    batch = SendBatch()  # fd -1: nothing queued
    tcc_seq = 0
    for payload, prefix, seq, ts, ssrc, pt, marker, padded, abs_time, lvl in packets:
        data = bytes((0x80 | (0x20 if padded else 0), (0x80 if marker else 0) | 96)) + \
            bytes(10) + payload
        size = send_copy(batch.c, out.c, copy.c, data, len(data), 12, prefix, len(prefix), seq,
                         ts, ssrc, pt, abs_time or NULL, lvl[0] if lvl else -1, 1.0)
        ext = writer.render(abs_time, (tcc_seq + 1) & 0xFFFF if tcc else 0, lvl) \
            if writer.template else b""
        try:
            expected = reference.protect_parts(
                0x80 | (data[0] & 0x20) | (0x10 if ext else 0), (data[1] & 0x80) | pt, seq, ts,
                ssrc, ext, prefix, memoryview(data)[12:])
        except SrtpError:  # libsrtp refuses it (a number far behind): so does the C
            assert size == SRTP_ERROR
            continue
        tcc_seq = (tcc_seq + 1) & 0xFFFF if tcc else 0
        assert UNQUEUED - size == expected and out.c.tcc_seq == tcc_seq
        assert ours._view[0:expected] == reference._view[0:expected]
