"""TURN credentials (signaling/turn.py) and coturn accepting or refusing them.

A coturn of the test's own (tests/support/turn_server.py, `use-auth-secret` with a random
secret) is asked for an allocation over TCP and UDP with aioice's TURN client: a credential made
by signalling is accepted (a relayed address comes back), an expired one, one signed with
another secret and a username altered after signing are refused with 401.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ssl
import time
from pathlib import Path

import aiohttp
import pytest
from aioice import stun
from aioice.turn import create_turn_endpoint

from signaling import turn
from signaling.config import ServerConfig
from tests.support.server import running_server
from tests.support.turn_server import turn_server

WAIT_S = 10


def test_credential_is_the_turn_rest_api_scheme() -> None:
    issuer = turn.TurnIssuer(("turn:203.0.113.5:3478?transport=tcp",), "s3cret", 3600)
    [entry] = issuer.ice_servers("p_abc", now=1_700_000_000)
    assert entry["urls"] == ["turn:203.0.113.5:3478?transport=tcp"]
    assert entry["username"] == "1700003600:p_abc"
    expected = base64.b64encode(hmac.new(b"s3cret", b"1700003600:p_abc",
                                         hashlib.sha1).digest()).decode()
    assert entry["credential"] == expected


def test_config_without_turn_has_no_issuer_and_turn_needs_a_secret() -> None:
    assert turn.issuer((), "", 3600) is None
    assert turn.parse_urls("turn:a:3478?transport=tcp, turns:a:443?transport=tcp") == (
        "turn:a:3478?transport=tcp", "turns:a:443?transport=tcp")
    with pytest.raises(ValueError):
        turn.parse_urls("http://a")
    with pytest.raises(ValueError):
        ServerConfig(dev=True, turn_urls=("turn:a:3478",))
    with pytest.raises(ValueError):
        ServerConfig(dev=True, turn_urls=("turn:a:3478",), turn_secret="x", turn_ttl=1)


class _Sink(asyncio.DatagramProtocol):
    pass


async def allocate(server, username: str, password: str, transport: str,
                   tls: ssl.SSLContext | None = None) -> tuple[str, int] | int:
    """The relayed address, or the error code coturn answered the Allocate with. `tls`: over
    TLS to the server's TLS port (transport "tcp")."""
    port = server.tls_port if tls else server.port
    try:
        relay, _ = await asyncio.wait_for(create_turn_endpoint(
            _Sink, (server.host, port), username, password, lifetime=60,
            transport=transport, ssl=tls), WAIT_S)
    except stun.TransactionFailed as exc:
        return exc.response.attributes["ERROR-CODE"][0]
    try:
        return relay.get_extra_info("sockname")
    finally:
        relay.close()
        await asyncio.sleep(0.1)  # its Refresh(0) goes out


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_coturn_accepts_valid_and_refuses_expired_or_forged(transport: str) -> None:
    with turn_server() as server:
        issuer = turn.TurnIssuer((server.url(transport),), server.secret, 3600)
        [good] = issuer.ice_servers("p_good")
        relayed = await allocate(server, good["username"], good["credential"], transport)
        assert isinstance(relayed, tuple) and relayed[0] == server.host, relayed

        [expired] = issuer.ice_servers("p_late", now=time.time() - 3600 - 60)
        assert int(expired["username"].split(":")[0]) < time.time()
        assert await allocate(server, expired["username"], expired["credential"],
                              transport) == 401

        forged = turn.TurnIssuer((server.url(transport),), "not-the-secret", 3600)
        [other] = forged.ice_servers("p_forged")
        assert await allocate(server, other["username"], other["credential"], transport) == 401

        # a valid credential with the expiry pushed later after signing
        stretched = f"{int(time.time()) + 86400}:p_good"
        assert await allocate(server, stretched, good["credential"], transport) == 401


async def test_coturn_over_tls() -> None:
    """turns: (TURN over TLS, what a firewall that lets out only 443 passes), with a
    certificate the client checks: accepted with the server's credential, refused forged."""
    with turn_server(tls=True) as server:
        context = ssl.create_default_context(cafile=str(server.cert))
        issuer = turn.TurnIssuer((server.tls_url(),), server.secret, 3600)
        [good] = issuer.ice_servers("p_tls")
        relayed = await allocate(server, good["username"], good["credential"], "tcp", context)
        assert isinstance(relayed, tuple) and relayed[0] == server.host, relayed
        [other] = turn.TurnIssuer((server.tls_url(),), "forged", 3600).ice_servers("p_tls")
        assert await allocate(server, other["username"], other["credential"], "tcp",
                              context) == 401


async def test_join_result_carries_ice_servers_only_when_turn_is_configured(
        tmp_path: Path) -> None:
    async with running_server(tmp_path / "plain", dev=True) as server:
        assert "iceServers" not in await _join(server)
    async with running_server(tmp_path / "turn", dev=True,
                              turn_urls=("turn:127.0.0.1:3478?transport=tcp",),
                              turn_secret="shared", turn_ttl=600) as server:
        before = time.time()
        result = await _join(server)
        [entry] = result["iceServers"]
        expiry, who = entry["username"].split(":", 1)
        assert who == result["self"]["id"]
        assert before + 600 <= int(expiry) + 1 <= time.time() + 601
        assert entry["credential"] == turn.credential("shared", entry["username"])
        assert entry["urls"] == ["turn:127.0.0.1:3478?transport=tcp"]


async def _join(server) -> dict:
    await server.create_room("r1")
    token = server.token("r1", "alice")
    async with aiohttp.ClientSession() as s, s.ws_connect(
            f"{server.base_url}/ws?token={token}") as ws:
        await ws.send_json({"id": 1, "method": "join"})
        while True:
            msg = await asyncio.wait_for(ws.receive_json(), WAIT_S)
            if msg.get("id") == 1:
                assert "result" in msg, msg
                return msg["result"]


async def test_an_allocation_made_in_time_outlives_its_credential() -> None:
    """coturn checks the expiry when it authenticates (Allocate), not at each Refresh or
    CreatePermission of an allocation it already has (its default: no stale-nonce): why the
    credentials' lifetime only needs to cover the allocations a session makes."""
    with turn_server() as server:
        [entry] = turn.TurnIssuer((server.url(),), server.secret, 2).ice_servers("p_short")
        relay, _ = await asyncio.wait_for(create_turn_endpoint(
            _Sink, (server.host, server.port), entry["username"], entry["credential"],
            lifetime=600, transport="tcp"), WAIT_S)
        try:
            while time.time() <= int(entry["username"].split(":")[0]) + 1:
                await asyncio.sleep(0.2)  # until the credential has expired (wall clock)
            client = relay._TurnTransport__inner_protocol  # type: ignore[attr-defined]
            refresh = stun.Message(message_method=stun.Method.REFRESH,
                                   message_class=stun.Class.REQUEST)
            refresh.attributes["LIFETIME"] = 600
            response, _ = await asyncio.wait_for(client.request_with_retry(refresh), WAIT_S)
            assert response.attributes["LIFETIME"] == 600
            # a new allocation with the same, now expired, credential is refused
            assert await allocate(server, entry["username"], entry["credential"], "tcp") == 401
        finally:
            relay.close()
