"""ICE-TCP: the worker's passive TCP candidate (RFC 6544), packets framed as RFC 4571.

For a peer whose UDP is blocked (hospital and company firewalls), the worker also listens on
TCP. The peer connects (its candidate is "active", ours "passive") and sends over the
connection what it would send in datagrams: connectivity checks, DTLS, SRTP and SRTCP, each
packet preceded by its length in two bytes (RFC 4571).

A connection is one more remote "address" of a WebRtcTransport, learnt like a UDP one: from
an authenticated STUN Binding request arriving on it (`Worker._on_stun`). Its address is a
`TcpAddr`, a tuple (host, port, "tcp", serial) that never equals a UDP address, so the
worker's demultiplexing table and everything above it (ICE consent, DTLS, SRTP, RTCP, NACK,
keyframes, transport-cc) work unchanged: each frame goes to `Worker.datagram_received`, and
what the worker sends to such an address goes to `TcpConnection.send` (the worker's send is
`Worker._send_any` while any TCP connection is open, the socket's own `sendto` otherwise).
The sendmmsg batch (sendbatch.py) never takes a TCP address: a transport whose selected
address is TCP has no `destination`, so its consumers write directly.

What a connection may cost is bounded:
- reading: a frame longer than MAX_FRAME, an empty frame, or one that no WebRTC peer sends
  (its first byte outside the RFC 7983 ranges) closes the connection; so does a first frame
  that is not STUN. At most one partial frame is kept between reads.
- writing: at most WRITE_BUFFER bytes wait in user space (beyond the kernel's SEND_BUFFER);
  a packet that does not fit is dropped and counted (`send_dropped`), never queued: a slow
  reader loses its own packets (its NACKs and its estimate, from transport-cc feedback, see
  it), and the event loop and everyone else go on.
- time: a connection without an authenticated check for BIND_TIMEOUT seconds (since it was
  accepted, or since its transport forgot it: closed, ICE restart) is closed; so is the
  newest one past MAX_UNBOUND of them waiting at once.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .worker import Worker

log = logging.getLogger(__name__)

# Largest frame accepted. WebRTC stacks keep packets under a path MTU (RTP ~1200 bytes, our
# DTLS flights 1200): nothing legitimate comes near this.
MAX_FRAME = 4096
# Bytes a connection may queue in user space before its packets are dropped, and the kernel's
# send buffer beneath (a fixed size: autotuning would let a slow path queue seconds of media).
WRITE_BUFFER = 256 * 1024
SEND_BUFFER = 256 * 1024
# Priority of the passive TCP host candidate (RFC 8445 5.1.2.1), below the UDP one's
# (2130706431) so that a peer prefers UDP whenever it gets through: type preference 90 (what
# libwebrtc gives a host TCP candidate), local preference by RFC 6544 4.2 (direction passive
# 4 << 13, other 8191), component 1.
TCP_PRIORITY = (90 << 24) | ((4 << 13 | 8191) << 8) | 255
BIND_TIMEOUT = 5.0  # seconds a connection may go without an authenticated check
MAX_UNBOUND = 256  # connections waiting for their first check, at once

# A frame's 2-byte length prefix, made once for every size a frame can have: one allocation
# per packet sent (the frame itself, `bytes`, which uvloop writes without copying).
_PREFIX = [n.to_bytes(2, "big") for n in range(MAX_FRAME + 1)]


class TcpAddr(tuple):
    """The remote "address" of one TCP connection: (host, port, "tcp", serial). The third
    item keeps it from ever equalling a UDP address (2-tuples, or IPv6 4-tuples of ints);
    `conn` is the connection itself."""

    conn: TcpConnection


class TcpConnection(asyncio.Protocol):
    """One accepted connection: RFC 4571 frames in and out."""

    def __init__(self, server: TcpServer) -> None:
        self.server = server
        self.worker = server.worker
        self.addr: TcpAddr | None = None
        self.transport: asyncio.Transport | None = None
        self.bound = False  # a transport's address: it passed an authenticated check
        self.checked = False  # it has passed one at least once
        self._pending = b""  # the start of a frame whose end has not arrived yet
        self._timer: asyncio.TimerHandle | None = None
        # counters
        self.frames_in = self.frames_out = 0
        self.send_dropped = 0

    # ---- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        addr = self.addr = TcpAddr((peer[0], peer[1], "tcp", next(self.server.serials)))
        addr.conn = self
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            except OSError:
                pass
        self.server.opened(self)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        if self._pending:
            data = self._pending + data  # a frame split across reads: at most MAX_FRAME + 1
            self._pending = b""
        end, offset = len(data), 0
        deliver, addr = self.worker.datagram_received, self.addr
        while end - offset >= 2:
            size = (data[offset] << 8) | data[offset + 1]
            if size == 0 or size > MAX_FRAME:
                self.reject("oversize" if size else "empty frame")
                return
            start = offset + 2
            offset = start + size
            if offset > end:
                offset = start - 2
                break
            first = data[start]
            # RFC 7983: STUN 0-3, DTLS 20-63, RTP/RTCP 128-191; nothing else is ours, and
            # a peer checks (STUN) before anything else
            if first > 3 and (not self.checked or not (19 < first < 64 or 127 < first < 192)):
                self.reject("garbage" if self.checked else "no check first")
                return
            self.frames_in += 1
            deliver(data[start:offset], addr)
            if self.transport is None:  # closed by what it carried (a worker stop)
                return
        if offset < end:
            self._pending = data[offset:]

    def eof_received(self) -> bool:
        return False  # the peer is done: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._pending = b""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.server.lost(self)

    # ---- sending (the worker's send for this address) -------------------------------------

    def send(self, data: bytes | memoryview) -> None:
        """One packet, framed. Dropped when the connection is gone or its queue is full."""
        transport = self.transport
        size = len(data)
        try:
            if transport is None or size > MAX_FRAME or \
                    transport.get_write_buffer_size() + size > WRITE_BUFFER:
                self.send_dropped += 1
                return
            transport.write(_PREFIX[size] + data)  # a copy: `data` may be a reused SRTP buffer
        except (RuntimeError, OSError):  # uvloop: reset, connection_lost not yet called
            self.send_dropped += 1
            return
        self.frames_out += 1

    # ---- state ------------------------------------------------------------------------------

    def bind(self, bound: bool) -> None:
        """The worker (un)registered this address for a transport."""
        if bound == self.bound:
            return
        self.bound = bound
        self.server.rebound(self, bound)
        if bound:
            self.checked = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        else:
            self._arm()

    def reject(self, reason: str) -> None:
        """Close a connection that broke the rules (counted)."""
        self.server.rejected += 1
        log.debug("ICE-TCP connection from %s closed: %s", self.addr, reason)
        self.close()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        transport = self.transport
        if transport is not None:
            transport.abort()  # connection_lost follows on the next loop iteration
            self.transport = None
            self.server.lost(self)

    def _arm(self) -> None:
        if self._timer is None and self.transport is not None:
            self._timer = self.worker.loop.call_later(BIND_TIMEOUT, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if not self.bound:
            self.server.expired += 1
            self.reject("no authenticated check")


class TcpServer:
    """The worker's TCP listener and its open connections."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.server: asyncio.Server | None = None
        self.port = 0
        self.connections: set[TcpConnection] = set()
        self.unbound = 0  # connections without a transport now
        self.serials = itertools.count(1)
        # counters
        self.accepted = 0
        self.rejected = 0  # closed for garbage, oversize frames, no check in time, too many
        self.expired = 0  # of those: no authenticated check within BIND_TIMEOUT
        self.retired_dropped = 0  # send_dropped of closed connections
        self.retired_frames_in = 0
        self.retired_frames_out = 0

    async def start(self, host: str, port: int, fallback: bool = False) -> int:
        """Listen on host:port; with `fallback`, an ephemeral port if that one is taken."""
        loop = self.worker.loop
        try:
            self.server = await loop.create_server(lambda: TcpConnection(self), host, port,
                                                   reuse_address=True, backlog=256)
        except OSError as exc:
            if not fallback or exc.errno != errno.EADDRINUSE:
                raise
            self.server = await loop.create_server(lambda: TcpConnection(self), host, 0,
                                                   reuse_address=True, backlog=256)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for conn in list(self.connections):
            conn.close()

    # ---- bookkeeping (called by the connections) -------------------------------------------

    def opened(self, conn: TcpConnection) -> None:
        self.accepted += 1
        if self.unbound >= MAX_UNBOUND or self.server is None:
            self.rejected += 1
            conn.transport.abort()  # type: ignore[union-attr]
            conn.transport = None
            return
        self.connections.add(conn)
        self.unbound += 1
        if len(self.connections) == 1:
            self.worker.tcp_in_use(True)

    def rebound(self, conn: TcpConnection, bound: bool) -> None:
        if conn in self.connections:
            self.unbound += -1 if bound else 1

    def lost(self, conn: TcpConnection) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        if not conn.bound:
            self.unbound -= 1
        self.retired_dropped += conn.send_dropped
        self.retired_frames_in += conn.frames_in
        self.retired_frames_out += conn.frames_out
        self.worker.tcp_lost(conn.addr)  # type: ignore[arg-type]
        if not self.connections:
            self.worker.tcp_in_use(False)

    def counters(self) -> dict[str, int]:
        conns = self.connections
        return {
            "tcp_connections": self.accepted,
            "tcp_rejected": self.rejected,
            "tcp_send_dropped": self.retired_dropped + sum(c.send_dropped for c in conns),
            "tcp_frames_in": self.retired_frames_in + sum(c.frames_in for c in conns),
            "tcp_frames_out": self.retired_frames_out + sum(c.frames_out for c in conns),
        }
