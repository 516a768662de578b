"""DTLS-SRTP handshake over memory BIOs (RFC 5763, RFC 5764), driven by datagrams.

No socket and no task: the transport feeds received DTLS records in and gets records to send
through a callback; retransmission of handshake flights runs on a `call_later` timer, as
OpenSSL's DTLSv1_get_timeout asks.
"""

from __future__ import annotations

import asyncio
import binascii
import datetime
import os
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL

from .srtp import PROFILES, SrtpPair, make_pair

DIGESTS = {"sha-256": hashes.SHA256(), "sha-384": hashes.SHA384(), "sha-512": hashes.SHA512()}
CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
    b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"
)


def fingerprint(cert: x509.Certificate, algorithm: str = "sha-256") -> str:
    digest = cert.fingerprint(DIGESTS[algorithm]).hex().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


class DtlsCertificate:
    """One self-signed ECDSA certificate per Worker, as a browser has one per connection."""

    def __init__(self, days: int = 30) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [x509.NameAttribute(x509.NameOID.COMMON_NAME, binascii.hexlify(os.urandom(8)).decode())]
        )
        now = datetime.datetime.now(tz=datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .sign(self.key, hashes.SHA256())
        )
        self.fingerprint = fingerprint(self.cert)
        self._context: SSL.Context | None = None

    def context(self) -> SSL.Context:
        if self._context is None:
            ctx = SSL.Context(SSL.DTLS_METHOD)
            ctx.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_QUERY_MTU)
            # The peer's certificate is self-signed: it is checked against the SDP fingerprint
            # after the handshake instead of against a CA.
            ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *a: True)
            ctx.use_certificate(self.cert)
            ctx.use_privatekey(self.key)
            ctx.set_cipher_list(CIPHERS)
            ctx.set_tlsext_use_srtp(b":".join(p.openssl_name for p in PROFILES))
            self._context = ctx
        return self._context


class DtlsEndpoint:
    """One side of a DTLS-SRTP association.

    role: "server" (we answered a=setup:passive, or the peer answered active) waits for the
    ClientHello; "client" starts the handshake when `start()` is called.
    """

    def __init__(
        self,
        certificate: DtlsCertificate,
        role: str,
        remote_fingerprints: list[tuple[str, str]],
        send: Callable[[bytes], None],
        on_connected: Callable[[SrtpPair], None],
        on_failed: Callable[[str], None],
    ) -> None:
        if role not in ("server", "client"):
            raise ValueError(f"bad DTLS role {role!r}")
        self.role = role
        self.remote_fingerprints = remote_fingerprints
        self.state = "new"
        self._send = send
        self._on_connected = on_connected
        self._on_failed = on_failed
        self._timer: asyncio.TimerHandle | None = None
        self._ssl = SSL.Connection(certificate.context())
        self._ssl.set_ciphertext_mtu(1200)  # stay under typical path MTUs with UDP+IP headers
        if role == "server":
            self._ssl.set_accept_state()
        else:
            self._ssl.set_connect_state()

    def start(self) -> None:
        """Begin the handshake; a server just waits for the peer's first flight."""
        if self.state != "new":
            return
        self.state = "connecting"
        if self.role == "client":
            self._step()

    def receive(self, data: bytes) -> None:
        if self.state in ("closed", "failed"):
            return
        if self.state == "new":
            self.state = "connecting"
        try:
            self._ssl.bio_write(data)
        except SSL.Error:
            return
        if self.state == "connecting":
            self._step()
        else:
            # After the handshake: a retransmitted final flight from the peer needs our last
            # flight again; application data (SCTP) is not supported and is discarded.
            try:
                self._ssl.recv(1500)
            except (SSL.WantReadError, SSL.ZeroReturnError):
                pass
            except SSL.Error:
                pass
            self._flush()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.state == "connected":
            try:
                self._ssl.shutdown()
                self._flush()
            except SSL.Error:
                pass
        if self.state not in ("failed",):
            self.state = "closed"

    def _step(self) -> None:
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            self._flush()
            self._arm_timer()
            return
        except SSL.Error as exc:
            self._flush()
            self._fail(f"handshake error: {exc}")
            return
        self._flush()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._finish()

    def _finish(self) -> None:
        cert = self._ssl.get_peer_certificate(as_cryptography=True)
        if cert is None:
            self._fail("peer sent no certificate")
            return
        checked = 0
        for algorithm, value in self.remote_fingerprints:
            algorithm = algorithm.lower()
            if algorithm in DIGESTS:
                if value.upper() != fingerprint(cert, algorithm):
                    self._fail("certificate does not match the SDP fingerprint")
                    return
                checked += 1
        if not checked:
            self._fail("no usable fingerprint in SDP")
            return
        profile = self._ssl.get_selected_srtp_profile()
        if not profile:
            self._fail("no SRTP profile negotiated")
            return
        lengths = {p.openssl_name: 2 * (p.key_length + p.salt_length) for p in PROFILES}
        material = self._ssl.export_keying_material(b"EXTRACTOR-dtls_srtp", lengths[profile])
        self.state = "connected"
        self._on_connected(make_pair(profile, material, is_server=self.role == "server"))

    def _fail(self, reason: str) -> None:
        self.state = "failed"
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._on_failed(reason)

    def _flush(self) -> None:
        while True:
            try:
                data = self._ssl.bio_read(1500)
            except SSL.Error:
                return
            if not data:
                return
            self._send(data)

    def _arm_timer(self) -> None:
        timeout = self._ssl.DTLSv1_get_timeout()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if timeout is not None:
            self._timer = asyncio.get_running_loop().call_later(timeout, self._on_timeout)

    def _on_timeout(self) -> None:
        self._timer = None
        if self.state != "connecting":
            return
        try:
            self._ssl.DTLSv1_handle_timeout()
        except SSL.Error as exc:
            self._fail(f"handshake timeout error: {exc}")
            return
        self._flush()
        self._arm_timer()
