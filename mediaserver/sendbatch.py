"""The sends of one fan-out in one system call: sendmmsg(2) through cffi.

Under load `sendto` is more than half of a worker's time (docs/benchmarks.md), and much of that
is the per-call cost: the system call itself and uvloop's address handling. One incoming packet
fans out to every subscriber; each Consumer protects its copy in its transport's SRTP buffer
(srtp_fast), and instead of sending it at once it appends a message that points at that buffer
(`add`); the Producer sends them all with one `flush` when the fan-out is done. On this machine
that is 3.1-3.3 µs of CPU per datagram, message setup included, against 4.5-5.1 through
`transport.sendto` (150 loopback destinations).

Why it is safe to point at the SRTP buffers: nothing else writes a transport's outbound buffer
between its Consumer's protect and the flush, since the fan-out is synchronous and a transport
gets one copy of a packet. Should a transport come round again within one batch, the Consumer
flushes before protecting into its buffer (its Destination's `generation` is the batch's).

A failed message costs that message only, as a failed `sendto` would: the call stops at it, the
error is counted, and the rest go on. A full socket buffer drops what is left of the batch
(UDP; uvloop would have queued it in memory instead).
"""

from __future__ import annotations

import errno
import socket
import struct

from cffi import FFI
from pylibsrtp._binding import ffi as srtp_ffi

ffi = FFI()
ffi.cdef("""
struct iovec { void *iov_base; size_t iov_len; };
struct msghdr { void *msg_name; unsigned int msg_namelen; struct iovec *msg_iov;
                size_t msg_iovlen; void *msg_control; size_t msg_controllen; int msg_flags; };
struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; };
int sendmmsg(int sockfd, struct mmsghdr *msgvec, unsigned int vlen, int flags);
""")
_libc = ffi.dlopen(None)
_sendmmsg = _libc.sendmmsg
_memmove = ffi.memmove
MSG_SIZE = ffi.sizeof("struct mmsghdr")
CAPACITY = 1024  # Linux's UIO_MAXIOV: the most one call takes
_FULL = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS)


def sockaddr(addr: tuple) -> bytes:
    """struct sockaddr_in / sockaddr_in6 for (host, port[, flowinfo, scope_id])."""
    host, port = addr[0], addr[1]
    if ":" in host:
        flow, scope = (addr[2], addr[3]) if len(addr) >= 4 else (0, 0)
        return struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, flow) + \
            socket.inet_pton(socket.AF_INET6, host) + struct.pack("=I", scope)
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + \
        socket.inet_aton(host) + bytes(8)


class Destination:
    """Where one transport's packets go: its address and its outbound SRTP buffer, as a
    ready-made message header that `add` copies into the batch."""

    __slots__ = ("iov", "template", "generation", "_keep")

    def __init__(self, addr: tuple, buffer: object) -> None:
        name = ffi.new("unsigned char[]", sockaddr(addr))
        self.iov = ffi.new("struct iovec *")
        self.iov.iov_base = ffi.cast("void *", int(srtp_ffi.cast("uintptr_t", buffer)))
        self.template = ffi.new("struct mmsghdr *")
        header = self.template.msg_hdr
        header.msg_name = name
        header.msg_namelen = len(ffi.buffer(name))
        header.msg_iov = self.iov
        header.msg_iovlen = 1
        self.generation = -1  # the batch generation it was last added to
        self._keep = (name, buffer)  # the memory the template points at lives as long as it


class SendBatch:
    """Messages of one fan-out, sent by `flush`. `active` only while a Producer fans out; a
    worker without a socket yet (tests that drive it directly) never turns it on."""

    __slots__ = ("fd", "active", "count", "generation", "sent", "errors", "dropped", "_msgs")

    def __init__(self) -> None:
        self.fd = -1
        self.active = False
        self.count = 0
        self.generation = 0
        self.sent = self.errors = self.dropped = 0
        self._msgs = ffi.new("struct mmsghdr[]", CAPACITY)

    def add(self, dest: Destination, length: int) -> None:
        if self.count == CAPACITY:
            self.flush()
        dest.generation = self.generation
        dest.iov.iov_len = length
        _memmove(self._msgs + self.count, dest.template, MSG_SIZE)
        self.count += 1

    def flush(self) -> None:
        n = self.count
        if not n:
            return
        self.count = 0
        self.generation += 1
        msgs, start = self._msgs, 0
        while start < n:
            done = _sendmmsg(self.fd, msgs + start, n - start, 0)
            if done > 0:
                start += done
                self.sent += done
                continue
            if ffi.errno in _FULL:
                self.dropped += n - start
                return
            self.errors += 1  # e.g. an ICMP error reported late: this message is lost
            start += 1


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
