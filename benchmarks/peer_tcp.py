"""The client end of one WebRTC transport over ICE-TCP (RFC 6544), for the bots.

The same ICE (controlling), DTLS and SRTP as `peer.Peer`, carried over one TCP connection to
the server's passive candidate (mediaserver/tcp.py) instead of a UDP socket: every packet
preceded by its length in two bytes (RFC 4571). This is the path of a participant whose UDP a
firewall blocks; the benchmark sends a webinar's audience over it (`--transport tcp`).

Latency is still read from the kernel's receive timestamp (SO_TIMESTAMPNS), which Linux gives
TCP reads too: the time the newest segment read arrived. Each frame is read by itself (its
length, then exactly its body) so that a read does not reach into the next packet's segment
and stamp this one with its later time. Segments that arrive while the bot has not yet read
the previous one may be merged by the kernel, and the merged one carries the newest time: when
the bot process lags, TCP's latency reads high by up to that lag (docs/benchmarks.md).
"""

from __future__ import annotations

import errno
import socket

from .peer import SO_TIMESTAMPNS, TIMESPEC, Peer
from .sdp_client import RemoteTransport

READ_BATCH = 256  # frames per wakeup before yielding to other sockets
WRITE_LIMIT = 256 * 1024  # bytes queued in user space before whole packets are dropped
_PREFIX = [n.to_bytes(2, "big") for n in range(1 << 16)]


class TcpPeer(Peer):
    """ICE (controlling) + DTLS (client) + SRTP over one TCP connection (active candidate)."""

    protocol = "tcp"

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._connecting = False
        self._server: tuple[str, int] = ("", 0)  # the server's passive candidate
        self._out = bytearray()  # what the kernel did not take yet (whole frames only queued)
        self._head = b""  # the length prefix being read
        self._body = bytearray()  # the frame being read
        self._need = 0  # bytes of the frame still to read (0: reading a length)

    # ---- lifecycle ----------------------------------------------------------------------

    def open(self) -> tuple[str, int]:
        """A TCP socket bound to a loopback port; it connects once the server's candidate is
        known (`connect`). Our server learns the address from the connectivity check."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        for level, opt in ((socket.SOL_SOCKET, SO_TIMESTAMPNS),
                           (socket.IPPROTO_TCP, socket.TCP_NODELAY)):
            try:
                sock.setsockopt(level, opt, 1)
            except OSError:
                pass
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        self._sock = sock
        return sock.getsockname()

    def connect(self, remote: RemoteTransport) -> None:
        """Connect to the server's passive TCP candidate, then check and DTLS over it."""
        if self.remote is not None or self._connecting:
            return
        sock = self._sock
        if sock is None:
            return
        if remote.tcp_addr is None:
            self._fail("ICE-TCP: the server offered no TCP candidate")
            return
        self._connecting = True
        self._server = remote.tcp_addr
        err = sock.connect_ex(remote.tcp_addr)
        if err not in (0, errno.EINPROGRESS):
            self._fail(f"ICE-TCP: connect: {errno.errorcode.get(err, err)}")
            return
        self._loop.add_writer(sock.fileno(), self._on_connected, remote)

    def _on_connected(self, remote: RemoteTransport) -> None:
        sock = self._sock
        if sock is None:
            return
        self._loop.remove_writer(sock.fileno())
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._fail(f"ICE-TCP: connect: {errno.errorcode.get(err, err)}")
            return
        self._loop.add_reader(sock.fileno(), self._on_readable)
        super().connect(remote)  # checks, then DTLS, as over UDP

    def close(self) -> None:
        if self._sock is not None:
            self._loop.remove_writer(self._sock.fileno())
        super().close()

    def _lost(self, reason: str) -> None:
        """The connection ended or broke: nothing more can come over it."""
        if self._sock is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._loop.remove_writer(self._sock.fileno())
        self._fail(f"ICE-TCP: {reason}")

    # ---- sending ------------------------------------------------------------------------

    def _send_raw(self, data: bytes) -> None:
        sock = self._sock
        if sock is None or self.remote is None or self.state == "failed":
            return
        frame = _PREFIX[len(data)] + data
        if self._out:  # behind: queue whole frames, bounded
            if len(self._out) + len(frame) > WRITE_LIMIT:
                self.send_errors += 1
                return
            self._out += frame
        else:
            try:
                sent = sock.send(frame)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.send_errors += 1
                return
            if sent < len(frame):
                self._out += frame[sent:]
                self._loop.add_writer(sock.fileno(), self._flush)
        self.datagrams_out += 1
        self.bytes_out += len(data)

    def _flush(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sent = sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(f"send: {exc}")
            return
        del self._out[:sent]
        if not self._out:
            self._loop.remove_writer(sock.fileno())

    # ---- receiving ----------------------------------------------------------------------

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        recv, recvmsg, on_packet = sock.recv, sock.recvmsg, self._on_packet
        for _ in range(READ_BATCH):
            try:
                if self._need == 0:  # the next frame's length
                    head = recv(2 - len(self._head))
                    if not head:
                        self._lost("closed by the server")
                        return
                    self._head += head
                    if len(self._head) < 2:
                        continue
                    self._need = (self._head[0] << 8) | self._head[1]
                    self._head = b""
                    if self._need == 0:
                        continue  # an empty frame: nothing to deliver
                data, ancillary, _flags, _addr = recvmsg(self._need, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._lost(f"receive: {exc}")
                return
            if not data:
                self._lost("closed by the server")
                return
            self._need -= len(data)
            if self._need or self._body:  # a frame split across reads
                self._body += data
                if self._need:
                    continue
                data = bytes(self._body)
                self._body.clear()
            arrival = 0
            for level, kind, value in ancillary:
                if kind == SO_TIMESTAMPNS and level == socket.SOL_SOCKET:
                    sec, nsec = TIMESPEC.unpack(value)
                    arrival = sec * 1_000_000_000 + nsec
            self.datagrams_in += 1
            self.bytes_in += len(data)
            on_packet(data, arrival, self._server)
