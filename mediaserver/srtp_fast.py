"""SRTP through pylibsrtp's low-level cffi binding, with buffers reused across packets.

pylibsrtp's `Session` allocates an `int *` and checks types on every call; at tens of thousands
of packets a second that is a measurable share of the forwarding budget (PERFORMANCE_NOTES:
about 2.3 against 3.6 microseconds for a 1,200-byte packet). `_binding` is private API, so it is
used here only, the pylibsrtp version is pinned in pyproject.toml, and tests check this module
against `Session` byte for byte.
"""

from __future__ import annotations

import struct

from pylibsrtp import Error as SrtpError
from pylibsrtp import Policy
from pylibsrtp._binding import ffi, lib

# libsrtp's worst-case trailer (auth tag + MKI) and the largest packet we handle
MAX_TRAILER = 16 + 128 + 4
MAX_PACKET = 1500


class SrtpContext:
    """One libsrtp session (one direction) and a scratch buffer for in-place processing."""

    __slots__ = ("_srtp", "_buf", "_view", "_len", "protect", "protect_rtcp", "unprotect",
                 "unprotect_rtcp", "protect_parts")

    def __init__(self, policy: Policy) -> None:
        srtp = ffi.new("srtp_t *")
        rc = lib.srtp_create(srtp, policy._policy)
        if rc:
            raise SrtpError(f"srtp_create failed ({rc})")
        self._srtp = ffi.gc(srtp, lambda x: lib.srtp_dealloc(x[0]))
        self._buf = ffi.new("unsigned char[]", MAX_PACKET + MAX_TRAILER)
        self._view = ffi.buffer(self._buf)
        self._len = ffi.new("int *")
        self.protect = self._bind(lib.srtp_protect, MAX_TRAILER)
        self.protect_rtcp = self._bind(lib.srtp_protect_rtcp, MAX_TRAILER)
        self.unprotect = self._bind(lib.srtp_unprotect, 0)
        self.unprotect_rtcp = self._bind(lib.srtp_unprotect_rtcp, 0)
        self.protect_parts = _parts_binder(self)

    @property
    def native(self) -> tuple[int, int, int]:
        """(session, srtp_protect, buffer) as addresses, for the fan-out's C
        (sendbatch.Outbound), which must keep this context alive while it uses them."""
        def address(cdata: object) -> int:
            return int(ffi.cast("uintptr_t", cdata))
        return (address(self._srtp[0]), address(ffi.addressof(lib, "srtp_protect")),
                address(self._buf))

    def _bind(self, func, trailer: int):  # type: ignore[no-untyped-def]
        # A closure over locals: the call does no attribute lookups beyond the C function.
        session = self._srtp[0]
        buf, view, length = self._buf, self._view, self._len
        limit = MAX_PACKET + MAX_TRAILER - trailer

        # `_owner` keeps the gc-managed srtp_t alive as long as this function is: SrtpPair
        # holds only these functions, and freeing the session under them would crash.
        def process(packet: bytes, _owner: object = self._srtp) -> bytes:
            n = len(packet)
            if n > limit:
                raise ValueError("packet is too long")
            view[0:n] = packet
            length[0] = n
            rc = func(session, buf, length)
            if rc:
                raise SrtpError(f"srtp error {rc}")
            return view[0 : length[0]]

        return process


_HEADER = struct.Struct("!BBHII")


def _parts_binder(ctx: SrtpContext):  # type: ignore[no-untyped-def]
    session = ctx._srtp[0]
    buf, view, length = ctx._buf, ctx._view, ctx._len
    pack_into = _HEADER.pack_into
    protect = lib.srtp_protect
    limit = MAX_PACKET

    def protect_parts(b0: int, b1: int, seq: int, ts: int, ssrc: int, ext: bytes | bytearray,
                      prefix: bytes, payload: bytes | memoryview,
                      _owner: object = ctx._srtp) -> int:
        """Build an RTP packet straight into the SRTP buffer and protect it in place; returns
        its length. The packet stays in the buffer (the context's `_view`) until the next
        call: no packet object per send (see Consumer._send), none returned."""
        pos = 12 + len(ext)
        end = pos + len(prefix) + len(payload)
        if end > limit:
            raise ValueError("packet is too long")
        pack_into(view, 0, b0, b1, seq, ts, ssrc)
        view[12:pos] = ext
        if prefix:
            view[pos:pos + len(prefix)] = prefix
            pos += len(prefix)
        view[pos:end] = payload
        length[0] = end
        rc = protect(session, buf, length)
        if rc:
            raise SrtpError(f"srtp error {rc}")
        return length[0]

    return protect_parts

