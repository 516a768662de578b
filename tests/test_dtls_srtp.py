"""DTLS-SRTP: two DtlsEndpoints handshaking in memory, then SRTP/SRTCP with the exported keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from mediaserver import srtp
from mediaserver.dtls import DtlsCertificate, DtlsEndpoint
from mediaserver.rtp.packet import build_extensions, build_packet
from mediaserver.rtp.rtcp import build_rr
from mediaserver.srtp import PROFILES, SrtpError, SrtpPair, make_pair

HANDSHAKE_TIMEOUT = 10.0

Drop = Callable[[int, bytes], bool]


def keep_all(index: int, data: bytes) -> bool:
    return False


@dataclass
class Side:
    """One endpoint plus futures for its outcome and a hook to drop outgoing datagrams."""

    name: str
    certificate: DtlsCertificate
    connected: asyncio.Future[SrtpPair]
    failed: asyncio.Future[str]
    drop: Drop = keep_all
    peer: Side | None = None
    endpoint: DtlsEndpoint | None = None
    sent: list[bytes] = field(default_factory=list)
    dropped: list[bytes] = field(default_factory=list)

    def send(self, data: bytes) -> None:
        index = len(self.sent) + len(self.dropped)
        if self.drop(index, data):
            self.dropped.append(data)
            return
        self.sent.append(data)
        assert self.peer is not None and self.peer.endpoint is not None
        # Deliver on the next loop iteration: no recursion between the two endpoints.
        asyncio.get_running_loop().call_soon(self.peer.endpoint.receive, data)

    def on_connected(self, pair: SrtpPair) -> None:
        if not self.connected.done():
            self.connected.set_result(pair)

    def on_failed(self, reason: str) -> None:
        if not self.failed.done():
            self.failed.set_result(reason)


def make_side(name: str) -> Side:
    loop = asyncio.get_running_loop()
    return Side(name, DtlsCertificate(), loop.create_future(), loop.create_future())


def wire(
    server: Side,
    client: Side,
    server_sees: str | None = None,
    client_sees: str | None = None,
) -> None:
    """Create both endpoints; each is given the other's fingerprint unless overridden."""
    server.peer, client.peer = client, server
    for side, role, fp in (
        (server, "server", server_sees or client.certificate.fingerprint),
        (client, "client", client_sees or server.certificate.fingerprint),
    ):
        side.endpoint = DtlsEndpoint(
            side.certificate, role, [("sha-256", fp)], side.send, side.on_connected,
            side.on_failed,
        )


def start(*sides: Side) -> None:
    for side in sides:
        assert side.endpoint is not None
        side.endpoint.start()


async def outcome(side: Side) -> SrtpPair | str:
    """The pair on success or the failure reason, whichever comes first."""
    done, _ = await asyncio.wait(
        [side.connected, side.failed], timeout=HANDSHAKE_TIMEOUT,
        return_when=asyncio.FIRST_COMPLETED,
    )
    assert done, f"{side.name}: handshake neither completed nor failed"
    return done.pop().result()


@pytest.fixture
async def sides() -> AsyncIterator[tuple[Side, Side]]:
    server, client = make_side("server"), make_side("client")
    yield server, client
    for side in (server, client):
        if side.endpoint is not None:
            side.endpoint.close()


async def connect(server: Side, client: Side) -> tuple[SrtpPair, SrtpPair]:
    wire(server, client)
    start(server, client)
    server_pair, client_pair = await asyncio.gather(outcome(server), outcome(client))
    assert isinstance(server_pair, SrtpPair), server_pair
    assert isinstance(client_pair, SrtpPair), client_pair
    return server_pair, client_pair


async def connect_outcomes(server: Side, client: Side) -> None:
    results = await asyncio.gather(outcome(server), outcome(client))
    assert all(isinstance(r, SrtpPair) for r in results), results


def rtp(seq: int, ssrc: int = 0x1234ABCD, payload: bytes = b"\x10\x02\x00frame") -> bytes:
    ext = build_extensions([(1, b"0"), (2, b"\x01\x02\x03")])
    return build_packet(96, seq, seq * 3000, ssrc, payload, marker=True, extensions=ext)


# --- handshake -------------------------------------------------------------------------------


async def test_handshake_connects_both_sides(sides: tuple[Side, Side]) -> None:
    server, client = sides
    server_pair, client_pair = await connect(server, client)
    assert server.endpoint is not None and client.endpoint is not None
    assert server.endpoint.state == client.endpoint.state == "connected"
    assert not server.failed.done() and not client.failed.done()
    assert server_pair.profile == client_pair.profile
    assert server_pair.profile in PROFILES


async def test_handshake_prefers_gcm_profile(sides: tuple[Side, Side]) -> None:
    server_pair, _ = await connect(*sides)
    assert server_pair.profile.openssl_name == PROFILES[0].openssl_name


async def test_datagrams_fit_the_configured_mtu(sides: tuple[Side, Side]) -> None:
    server, client = sides
    await connect(server, client)
    assert max(len(d) for d in server.sent + client.sent) <= 1500


async def test_srtp_client_to_server(sides: tuple[Side, Side]) -> None:
    server_pair, client_pair = await connect(*sides)
    for seq in (1, 2, 3, 65535, 0):
        packet = rtp(seq)
        protected = client_pair.protect(packet)
        assert protected != packet
        assert protected[:12] == packet[:12]  # header stays in the clear
        assert server_pair.unprotect(protected) == packet


async def test_srtp_server_to_client(sides: tuple[Side, Side]) -> None:
    server_pair, client_pair = await connect(*sides)
    for seq in (100, 101, 150):
        packet = rtp(seq, ssrc=0xDEADBEEF, payload=bytes(range(200)))
        assert client_pair.unprotect(server_pair.protect(packet)) == packet


async def test_srtcp_both_directions(sides: tuple[Side, Side]) -> None:
    server_pair, client_pair = await connect(*sides)
    rr = build_rr(1234)
    assert server_pair.unprotect_rtcp(client_pair.protect_rtcp(rr)) == rr
    assert client_pair.unprotect_rtcp(server_pair.protect_rtcp(rr)) == rr


async def test_tampered_srtp_packet_fails_to_unprotect(sides: tuple[Side, Side]) -> None:
    server_pair, client_pair = await connect(*sides)
    protected = bytearray(client_pair.protect(rtp(7)))
    protected[-1] ^= 0x01
    with pytest.raises(SrtpError):
        server_pair.unprotect(bytes(protected))


async def test_tampered_srtcp_packet_fails_to_unprotect(sides: tuple[Side, Side]) -> None:
    server_pair, client_pair = await connect(*sides)
    protected = bytearray(server_pair.protect_rtcp(build_rr(99)))
    protected[9] ^= 0x80
    with pytest.raises(SrtpError):
        client_pair.unprotect_rtcp(bytes(protected))


async def test_own_packets_do_not_unprotect_with_own_receive_keys(
    sides: tuple[Side, Side],
) -> None:
    server_pair, _ = await connect(*sides)
    with pytest.raises(SrtpError):
        server_pair.unprotect(server_pair.protect(rtp(5)))


async def test_retransmission_of_same_sequence_number_can_be_protected_again(
    sides: tuple[Side, Side],
) -> None:
    server_pair, client_pair = await connect(*sides)
    packet = rtp(42)
    first = server_pair.protect(packet)
    again = server_pair.protect(packet)  # allow_repeat_tx: NACK answers reuse the seq
    assert client_pair.unprotect(first) == packet
    assert again == first


async def test_fingerprint_mismatch_fails_the_client(sides: tuple[Side, Side]) -> None:
    server, client = sides
    wrong = DtlsCertificate().fingerprint
    wire(server, client, client_sees=wrong)
    start(server, client)
    result = await outcome(client)
    assert isinstance(result, str)
    assert "fingerprint" in result
    assert not client.connected.done()
    assert client.endpoint is not None and client.endpoint.state == "failed"


async def test_fingerprint_mismatch_fails_the_server(sides: tuple[Side, Side]) -> None:
    server, client = sides
    wire(server, client, server_sees=DtlsCertificate().fingerprint)
    start(server, client)
    result = await outcome(server)
    assert isinstance(result, str)
    assert "fingerprint" in result
    assert not server.connected.done()


async def test_no_usable_fingerprint_fails(sides: tuple[Side, Side]) -> None:
    server, client = sides
    wire(server, client)
    assert client.endpoint is not None
    client.endpoint.remote_fingerprints = [("md5", "00:11")]
    start(server, client)
    result = await outcome(client)
    assert isinstance(result, str)
    assert "fingerprint" in result


async def test_lost_first_client_flight_is_retransmitted(sides: tuple[Side, Side]) -> None:
    server, client = sides
    client.drop = lambda index, data: index == 0
    server_pair, client_pair = await connect(server, client)
    assert len(client.dropped) == 1
    assert client.dropped[0][0] == 22  # a DTLS handshake record: the ClientHello
    packet = rtp(1)
    assert server_pair.unprotect(client_pair.protect(packet)) == packet


async def test_lost_first_server_flight_is_retransmitted(sides: tuple[Side, Side]) -> None:
    server, client = sides
    server.drop = lambda index, data: index == 0
    server_pair, client_pair = await connect(server, client)
    assert len(server.dropped) == 1
    packet = rtp(2)
    assert client_pair.unprotect(server_pair.protect(packet)) == packet


async def test_server_start_sends_nothing(sides: tuple[Side, Side]) -> None:
    server, client = sides
    wire(server, client)
    start(server)
    assert server.sent == [] and server.dropped == []
    start(client)
    assert len(client.sent) >= 1
    await connect_outcomes(server, client)


async def test_garbage_records_are_ignored_before_handshake(sides: tuple[Side, Side]) -> None:
    server, client = sides
    wire(server, client)
    assert server.endpoint is not None
    server.endpoint.receive(b"\x17\xfe\xfd" + b"\x00" * 30)
    start(server, client)
    await connect_outcomes(server, client)


async def test_close_after_connect_sets_closed_state(sides: tuple[Side, Side]) -> None:
    server, client = sides
    await connect(server, client)
    assert client.endpoint is not None
    client.endpoint.close()
    assert client.endpoint.state == "closed"


async def test_bad_role_is_rejected() -> None:
    with pytest.raises(ValueError):
        DtlsEndpoint(DtlsCertificate(), "both", [], lambda d: None, lambda p: None,
                     lambda r: None)


def test_certificate_fingerprint_format() -> None:
    fp = DtlsCertificate().fingerprint
    parts = fp.split(":")
    assert len(parts) == 32
    assert all(len(p) == 2 and p == p.upper() for p in parts)
    int(fp.replace(":", ""), 16)


# --- make_pair with fixed key material (RFC 5764 section 4.2) --------------------------------


def material_for(profile: srtp.SrtpProfile, seed: int = 0) -> bytes:
    n = 2 * (profile.key_length + profile.salt_length)
    return bytes((seed + i * 7) & 0xFF for i in range(n))


@pytest.mark.parametrize("profile", PROFILES, ids=[p.openssl_name.decode() for p in PROFILES])
def test_make_pair_client_and_server_interoperate(profile: srtp.SrtpProfile) -> None:
    material = material_for(profile)
    client = make_pair(profile.openssl_name, material, is_server=False)
    server = make_pair(profile.openssl_name, material, is_server=True)
    assert client.profile == server.profile == profile
    up, down = rtp(10), rtp(20, ssrc=0x55)
    assert server.unprotect(client.protect(up)) == up
    assert client.unprotect(server.protect(down)) == down
    rr = build_rr(1234)
    assert server.unprotect_rtcp(client.protect_rtcp(rr)) == rr
    assert client.unprotect_rtcp(server.protect_rtcp(rr)) == rr


@pytest.mark.parametrize("profile", PROFILES, ids=[p.openssl_name.decode() for p in PROFILES])
def test_make_pair_two_clients_do_not_interoperate(profile: srtp.SrtpProfile) -> None:
    material = material_for(profile)
    a = make_pair(profile.openssl_name, material, is_server=False)
    b = make_pair(profile.openssl_name, material, is_server=False)
    with pytest.raises(SrtpError):
        b.unprotect(a.protect(rtp(1)))


@pytest.mark.parametrize("profile", PROFILES, ids=[p.openssl_name.decode() for p in PROFILES])
def test_make_pair_different_material_does_not_interoperate(profile: srtp.SrtpProfile) -> None:
    client = make_pair(profile.openssl_name, material_for(profile, 0), is_server=False)
    server = make_pair(profile.openssl_name, material_for(profile, 1), is_server=True)
    with pytest.raises(SrtpError):
        server.unprotect(client.protect(rtp(1)))


@pytest.mark.parametrize("profile", PROFILES, ids=[p.openssl_name.decode() for p in PROFILES])
def test_make_pair_tampered_packet_raises(profile: srtp.SrtpProfile) -> None:
    material = material_for(profile)
    client = make_pair(profile.openssl_name, material, is_server=False)
    server = make_pair(profile.openssl_name, material, is_server=True)
    protected = bytearray(client.protect(rtp(3)))
    protected[20] ^= 0xFF
    with pytest.raises(SrtpError):
        server.unprotect(bytes(protected))


@pytest.mark.parametrize(
    ("profile", "auth_tag"),
    [(PROFILES[0], 16), (PROFILES[1], 10)],
    ids=[p.openssl_name.decode() for p in PROFILES],
)
def test_make_pair_adds_the_profile_auth_tag(profile: srtp.SrtpProfile, auth_tag: int) -> None:
    client = make_pair(profile.openssl_name, material_for(profile), is_server=False)
    packet = rtp(9)
    assert len(client.protect(packet)) == len(packet) + auth_tag


def test_profile_split_follows_rfc5764_layout() -> None:
    # client_write_key | server_write_key | client_write_salt | server_write_salt
    profile = srtp.SrtpProfile(b"TEST", 0, key_length=2, salt_length=3)
    material = b"CCSScccsss"
    assert profile.split(material, 0) == b"CCccc"
    assert profile.split(material, 1) == b"SSsss"


def test_make_pair_rejects_unknown_profile() -> None:
    with pytest.raises(ValueError):
        make_pair(b"SRTP_NULL_NULL", b"\x00" * 60, is_server=True)
