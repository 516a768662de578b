"""The fan-out's sends: each copy built, protected and queued in C, all sent by one sendmmsg(2).

Under load the send is most of a worker's time (docs/benchmarks.md): the system call and, per
copy, the Python that laid out the header and extension block, copied the payload into the
transport's SRTP buffer, protected it, counted and recorded it. One incoming packet fans out to
every subscriber: the Producer makes one C call, `fan_out` (mediaserver/native/fanout.c
`ms_fan`), which renumbers each copy in its steady case (the rest is left to the consumer's
Python `forward`, which hands its numbers to `send_copy`) and, as `send_copy` does, builds the
copy in its transport's SRTP buffer, protects it there, counts it, records it for
transport-cc and queues a message that points at the buffer; the Producer sends them all with
one `flush` when the fan-out is done. Outside a fan-out (a resend, padding) a copy goes out
at once.

Why it is safe to point at the SRTP buffers: nothing else writes a transport's outbound buffer
between its copy's protect and the flush, since the fan-out is synchronous, and should a
transport come round again within one batch, `send_copy` flushes before building into its
buffer (its `generation` is the batch's).

A failed message costs that message only, as a failed `sendto` would: the call stops at it, the
error is counted, and the rest go on. A full socket buffer drops what is left of the batch
(UDP; uvloop would have queued it in memory instead).
"""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING

from .native._fanout import ffi, lib

if TYPE_CHECKING:
    from .bwe.history import SendHistory
    from .srtp import SrtpPair

# send_copy's results: > 0 the protected length, queued; UNQUEUED - length: protected in the
# transport's buffer but not queued (no socket, or a TCP connection: the caller sends it)
NOT_CONNECTED, SRTP_ERROR, TOO_LONG, UNQUEUED = (lib.MS_NOT_CONNECTED, lib.MS_SRTP_ERROR,
                                                  lib.MS_TOO_LONG, lib.MS_UNQUEUED)
send_copy = lib.ms_send
# the fan-out's lane: the steady case of each copy of one packet (producer.py, consumer.py)
fan_out = lib.ms_fan
flush = lib.ms_flush  # of a SendBatch's `c`
NULL = ffi.NULL
EXT_MAX = lib.MS_EXT_MAX
# "protection" that leaves packets as they are, for tests that read back what is sent
PLAIN_PROTECT = int(ffi.cast("uintptr_t", ffi.addressof(lib, "ms_plain_protect")))


def sockaddr(addr: tuple) -> bytes:
    """struct sockaddr_in / sockaddr_in6 for (host, port[, flowinfo, scope_id])."""
    host, port = addr[0], addr[1]
    if ":" in host:
        flow, scope = (addr[2], addr[3]) if len(addr) >= 4 else (0, 0)
        return struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, flow) + \
            socket.inet_pton(socket.AF_INET6, host) + struct.pack("=I", scope)
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + \
        socket.inet_aton(host) + bytes(8)


class SendBatch:
    """The messages of one fan-out (`c`, a C `ms_batch`), sent by `flush`. `active` only while
    a Producer fans out; a worker without a socket yet (tests that drive it directly) has fd -1
    and its consumers send each copy themselves."""

    __slots__ = ("c",)

    def __init__(self) -> None:
        self.c = ffi.new("ms_batch *")
        self.c.fd = -1

    fd = property(lambda self: self.c.fd, lambda self, fd: setattr(self.c, "fd", fd))
    active = property(lambda self: bool(self.c.active),
                      lambda self, on: setattr(self.c, "active", int(on)))
    count = property(lambda self: self.c.count)
    generation = property(lambda self: self.c.generation)
    sent = property(lambda self: self.c.sent)
    errors = property(lambda self: self.c.errors)
    dropped = property(lambda self: self.c.dropped)

    def flush(self) -> None:
        lib.ms_flush(self.c)


class Outbound:
    """One transport's end of the fan-out (`c`, a C `ms_out`): its outbound SRTP session and
    buffer, its address, its transport-wide sequence numbers and SendHistory, its counters.
    Holds the Python objects whose memory the struct points at for as long as it does."""

    __slots__ = ("c", "_srtp", "_history", "_arrays")

    def __init__(self) -> None:
        self.c = ffi.new("ms_out *")
        self.c.generation = -1
        self._srtp: SrtpPair | None = None
        self._history: SendHistory | None = None
        self._arrays: tuple = ()

    def set_path(self, srtp: SrtpPair | None, addr: tuple | None) -> None:
        """Its SRTP (None: not keyed, or nowhere to send: nothing is built) and its UDP
        address (None: none the batch can send to, as for a TCP connection, whose packets the
        caller sends)."""
        c = self.c
        if srtp is None:
            c.session = c.buf = NULL
        else:
            session, protect, buffer = srtp.tx_native
            c.protect = ffi.cast("ms_protect_fn", protect)
            c.buf = ffi.cast("unsigned char *", buffer)
            c.session = ffi.cast("void *", session)
        self._srtp = srtp
        name = sockaddr(addr) if addr is not None else b""
        ffi.memmove(c.addr, name, len(name))
        c.addrlen = len(name)
        c.generation = -1

    def set_history(self, history: SendHistory) -> None:
        """Where transport-cc send records go (a new one after a path change)."""
        arrays = (ffi.from_buffer("double[]", history._times),
                  ffi.from_buffer("uint16_t[]", history._sizes),
                  ffi.from_buffer("int64_t[]", history._head))
        c = self.c
        c.hist_times, c.hist_sizes, c.hist_head = arrays
        c.hist_mask = history._mask
        self._history, self._arrays = history, arrays


def set_buffers(sock: socket.socket, recv: int, send: int) -> None:
    """Large buffers absorb bursts (a keyframe is dozens of packets at once)."""
    for force, plain, size in (
        (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF, recv),
        (getattr(socket, "SO_SNDBUFFORCE", None), socket.SO_SNDBUF, send),
    ):
        try:
            if force is None:
                raise OSError
            sock.setsockopt(socket.SOL_SOCKET, force, size)  # root may exceed rmem_max
        except OSError:
            try:
                sock.setsockopt(socket.SOL_SOCKET, plain, size)
            except OSError:
                pass
