"""sendmmsg batches of a fan-out (mediaserver/sendbatch.py) on real loopback sockets: every
message reaches its own address with its own bytes; a failing message costs only itself."""

from __future__ import annotations

import socket

from pylibsrtp._binding import ffi as srtp_ffi

from mediaserver.sendbatch import Destination, SendBatch


def receivers(n: int, family: int = socket.AF_INET) -> list[socket.socket]:
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    out = []
    for _ in range(n):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind((host, 0))
        s.settimeout(5)
        out.append(s)
    return out


def destination(addr: tuple, payload: bytes) -> tuple[Destination, object]:
    """A Destination over a buffer holding `payload`, as an SRTP context's would."""
    buffer = srtp_ffi.new("unsigned char[]", 1500)
    srtp_ffi.buffer(buffer)[0 : len(payload)] = payload
    return Destination(addr, buffer), buffer


def test_each_message_reaches_its_address_intact() -> None:
    for family in (socket.AF_INET, socket.AF_INET6):
        sinks = receivers(5, family)
        sender = socket.socket(family, socket.SOCK_DGRAM)
        batch = SendBatch()
        batch.fd = sender.fileno()
        dests = [destination(s.getsockname(), f"packet for {i}".encode() * (i + 1))
                 for i, s in enumerate(sinks)]
        for i, (dest, _buffer) in enumerate(dests):
            batch.add(dest, len(f"packet for {i}".encode() * (i + 1)))
        assert batch.count == 5
        batch.flush()
        assert batch.sent == 5 and batch.count == 0
        for i, s in enumerate(sinks):
            assert s.recv(2000) == f"packet for {i}".encode() * (i + 1)
            s.close()
        sender.close()


def test_a_destination_already_queued_is_seen_before_its_buffer_is_reused() -> None:
    """What Consumer._send checks before protecting into a transport's buffer again."""
    sink, = receivers(1)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    batch = SendBatch()
    batch.fd = sender.fileno()
    dest, buffer = destination(sink.getsockname(), b"first")
    assert dest.generation != batch.generation
    batch.add(dest, 5)
    assert dest.generation == batch.generation  # queued: flush before writing the buffer
    batch.flush()
    assert dest.generation != batch.generation
    srtp_ffi.buffer(buffer)[0:6] = b"second"
    batch.add(dest, 6)
    batch.flush()
    assert sink.recv(100) == b"first" and sink.recv(100) == b"second" and batch.sent == 2
    sink.close()
    sender.close()


def test_a_failing_message_costs_only_itself() -> None:
    a, b = receivers(2)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    batch = SendBatch()
    batch.fd = sender.fileno()
    good1, _k1 = destination(a.getsockname(), b"to a")
    bad, _k2 = destination(("127.0.0.1", 0), b"nowhere")  # port 0: EINVAL from the kernel
    good2, _k3 = destination(b.getsockname(), b"to b")
    for dest, n in ((good1, 4), (bad, 7), (good2, 4)):
        batch.add(dest, n)
    batch.flush()
    assert a.recv(100) == b"to a" and b.recv(100) == b"to b"
    assert batch.sent == 2 and batch.errors == 1 and batch.dropped == 0
    for s in (a, b, sender):
        s.close()
