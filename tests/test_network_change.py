"""A participant whose address changes mid-call (issue "Every firewall", network change), with
real aiortc peers through the real server.

The subscriber reaches the server through a relay on loopback (tests/support/relay.py, no
loss); moving the relay's upstream socket to a new port is the client's new address as the
server sees it. Then a valid Binding request carrying USE-CANDIDATE from the new address (the
client nominating its new pair, ICE-lite, RFC 8445 7.3.1.5) moves the server's media there,
and the subscriber decodes the publisher's pattern advancing again, over the new address only.
The ICE restart of both connections and the socket resume (docs/protocol.md, "Network
change") are tested through the protocol with the same peers.
"""

from __future__ import annotations

import asyncio
import re

from aioice import stun

from mediaserver.api import CONSENT_EXPIRED
from tests.support.client import Client
from tests.support.relay import LossyRelay, _Upstream
from tests.support.tracks import FrameChecker, PatternVideoTrack

PUBLISHER = 11


class MovingRelay(LossyRelay):
    """A relay without loss whose server-facing socket can be replaced (a new address)."""

    def __init__(self, server_addr: tuple[str, int]) -> None:
        super().__init__(server_addr, loss=0.0)

    async def move(self) -> tuple[str, int]:
        """Every client's traffic leaves from a new port from now on (the old ones are closed:
        nothing sent there arrives); returns the new address."""
        assert len(self.upstreams) == 1, self.upstreams
        (client, old), = self.upstreams.items()
        loop = asyncio.get_running_loop()
        _, new = await loop.create_datagram_endpoint(lambda: _Upstream(self, client),
                                                     local_addr=("127.0.0.1", 0))
        self.upstreams[client] = new
        assert old.transport is not None
        old.transport.close()
        return new.transport.get_extra_info("sockname")

    def send_up(self, data: bytes) -> None:
        (upstream,) = self.upstreams.values()
        assert upstream.transport is not None
        upstream.transport.sendto(data, self.server_addr)


def nominating_check(local_ufrag: str, local_pwd: str, remote_ufrag: str) -> bytes:
    """A Binding request as the controlling client sends to nominate a pair: USERNAME
    'server:client', keyed by the server's password, with USE-CANDIDATE."""
    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    request.attributes["USERNAME"] = f"{local_ufrag}:{remote_ufrag}"
    request.attributes["PRIORITY"] = 1853824767
    request.attributes["ICE-CONTROLLING"] = 1
    request.attributes["USE-CANDIDATE"] = None
    request.add_message_integrity(local_pwd.encode())
    request.add_fingerprint()
    return bytes(request)


async def pair(server, relay: MovingRelay | None = None) -> tuple[Client, Client, FrameChecker]:
    """A publisher of the pattern and a subscriber (through `relay`, if any) decoding it."""
    await server.create_room("ward")
    rtc_port = server.config.rtc_port

    def via_relay(sdp: str) -> str:
        if relay is None:
            return sdp
        return sdp.replace(f" 127.0.0.1 {rtc_port} typ host",
                           f" 127.0.0.1 {relay.transport.get_extra_info('sockname')[1]} typ host")

    rep = Client(server.base_url, server.token("ward", "rep"))
    doctor = Client(server.base_url, server.token("ward", "doctor"), rewrite_sdp=via_relay)
    try:
        for c in (rep, doctor):
            await c.connect()
            await c.join()
        await rep.publish(PatternVideoTrack(PUBLISHER))
        seen = FrameChecker()
        track = await doctor.remote_track(await doctor.tracks_of(rep.self_id, "video"))
        asyncio.get_running_loop().create_task(seen.run(track))
        await seen.wait_for(PUBLISHER, 20, timeout=20)
    except BaseException:
        for c in (rep, doctor):
            await c.close()
        raise
    return rep, doctor, seen


def subscribe_transport(server, identity: str):
    session = next(p for p in server.state.sessions if p.identity == identity)
    return server.state.media.worker.transports[session.subscribe_transport]


async def test_media_follows_a_nominating_check_from_a_new_address(server) -> None:
    relay = MovingRelay(("127.0.0.1", server.config.rtc_port))
    await relay.start()
    rep = doctor = None
    try:
        rep, doctor, seen = await pair(server, relay)
        transport = subscribe_transport(server, "doctor")
        old_addr = transport.addr
        before = seen.senders[PUBLISHER].readable
        rep_video = next(c.stream for c in transport.consumers.values() if c.kind == "video")
        keyframes = rep_video.keyframe_requests
        new_addr = await relay.move()
        assert new_addr != old_addr
        relay.send_up(nominating_check(transport.local_ufrag, transport.local_pwd,
                                       transport.remote.ice_ufrag))
        # media now goes to the new address, and only the new socket carries it back
        moved_at = relay.forwarded_down
        stats = await seen.wait_for(PUBLISHER, before + 30, timeout=20)
        assert transport.addr == new_addr, (transport.addr, new_addr)
        assert relay.forwarded_down > moved_at
        assert stats.advances >= before + 29, seen.describe()
        assert transport.state == "connected" and transport.srtp is not None  # same DTLS
        # what was sent meanwhile is lost: the video goes on from a keyframe asked at once
        assert transport.path_changes == 1
        assert rep_video.keyframe_requests > keyframes
    finally:
        for c in (rep, doctor):
            if c is not None:
                await c.close()
        relay.close()


def ice_credentials(sdp: str) -> tuple[str, str]:
    ufrag = re.search(r"^a=ice-ufrag:(\S+)", sdp, re.M)
    pwd = re.search(r"^a=ice-pwd:(\S+)", sdp, re.M)
    assert ufrag and pwd, sdp
    return ufrag.group(1), pwd.group(1)


def media_lines(sdp: str) -> list[str]:
    """What an ICE restart must leave alone: m-lines, mids, SSRCs, fingerprint, setup."""
    keep = ("m=", "a=mid:", "a=ssrc:", "a=fingerprint:", "a=setup:", "a=msid:")
    return [line for line in sdp.splitlines() if line.startswith(keep)]


async def resume_on_new_socket(client: Client) -> dict:
    """What the web client does when its socket died with its old address: a new socket, the
    old one left as it is (the server may still hold it), `join` with keepMedia."""
    assert client.session is not None and client._reader is not None
    client._reader.cancel()  # the old socket is abandoned, not closed
    old_ws = client.ws
    url = client.base_url.replace("http", "ws", 1) + f"/ws?token={client.token}"
    client.ws = await client.session.ws_connect(url, max_msg_size=0)
    client._reader = asyncio.create_task(client._read())
    result = await client.request("join", {"keepMedia": True})
    assert old_ws is not None
    await old_ws.close()
    return result


async def test_resume_on_a_new_socket_keeps_the_connections(server) -> None:
    rep, doctor, seen = await pair(server)
    try:
        await doctor.publish(PatternVideoTrack(PUBLISHER + 1))
        rep_sees = FrameChecker()
        track = await rep.remote_track(await rep.tracks_of(doctor.self_id, "video"))
        asyncio.get_running_loop().create_task(rep_sees.run(track))
        await rep_sees.wait_for(PUBLISHER + 1, 10, timeout=20)
        session = next(p for p in server.state.sessions if p.identity == "doctor")
        transports = (session.publish_transport, session.subscribe_transport)
        offers = sum(e["event"] == "subscriberOffer" for e in doctor.events)

        result = await resume_on_new_socket(doctor)
        assert result["resumed"] and result["mediaKept"], result
        assert result["self"]["id"] == doctor.self_id
        assert any(t["participantId"] == rep.self_id for t in result["tracks"])
        resumed = next(p for p in server.state.sessions if p.identity == "doctor")
        assert resumed is not session
        assert (resumed.publish_transport, resumed.subscribe_transport) == transports
        # the offer lost with the old socket is made again, on the same connection
        await doctor.wait_event("subscriberOffer", lambda d: True)
        assert sum(e["event"] == "subscriberOffer" for e in doctor.events) > offers
        # media never stopped, either way, and nobody saw the doctor go
        good_rep, good_doctor = rep_sees._good(PUBLISHER + 1), seen._good(PUBLISHER)
        await rep_sees.wait_for(PUBLISHER + 1, good_rep + 30, timeout=20)
        await seen.wait_for(PUBLISHER, good_doctor + 30, timeout=20)
        seen_by_rep = {e["event"] for e in rep.events}
        assert not seen_by_rep & {"participantLeft", "trackUnpublished"}, seen_by_rep
        assert server.state.media.worker.transports.keys() >= set(transports)
    finally:
        for c in (rep, doctor):
            await c.close()


async def test_ice_restart_of_both_connections(server) -> None:
    """New ICE credentials on both connections, everything else as it was: the subscribe one
    through `restartIce` and the server's next offer, the publish one through a new offer.
    (aiortc cannot restart ICE itself: the media after it is the browser test's.)"""
    rep, doctor, seen = await pair(server)
    try:
        worker = server.state.media.worker
        last_offer = [e for e in doctor.events if e["event"] == "subscriberOffer"][-1]["data"]
        old = ice_credentials(last_offer["sdp"])
        assert await doctor.request("restartIce") == {"restarting": True}
        offer = await doctor.wait_event("subscriberOffer",
                                        lambda d: d["offerId"] > last_offer["offerId"])
        new = ice_credentials(offer["sdp"])
        assert new[0] != old[0] and new[1] != old[1]
        assert media_lines(offer["sdp"]) == media_lines(last_offer["sdp"])
        ufrags = worker.transport_ids_by_ufrag()
        assert old[0] not in ufrags and new[0] in ufrags

        pc = rep.publish_pc
        assert pc is not None and pc.localDescription is not None
        sent = pc.localDescription.sdp
        ufrag, pwd = ice_credentials(sent)
        restarted = sent.replace(f"a=ice-ufrag:{ufrag}", "a=ice-ufrag:newufrag").replace(
            f"a=ice-pwd:{pwd}", "a=ice-pwd:aNewPasswordOf24Characters")
        tracks = [t["id"] for t in (await rep.request("publish", {"sdp": sent}))["tracks"]]
        answered = ice_credentials(pc.remoteDescription.sdp)
        result = await rep.request("publish", {"sdp": restarted})
        assert [t["id"] for t in result["tracks"]] == tracks  # the same tracks go on
        again = ice_credentials(result["sdp"])
        assert again[0] != answered[0] and again[1] != answered[1]
        assert answered[0] not in worker.transport_ids_by_ufrag()
        assert not {e["event"] for e in doctor.events} & {"participantLeft", "trackUnpublished"}
        assert await rep.request("restartIce") == {"restarting": False}  # nothing received yet
    finally:
        for c in (rep, doctor):
            await c.close()


async def test_resume_without_the_connections_falls_back_to_a_rejoin(server) -> None:
    """A connection that expired (ICE consent) while the doctor was away cannot be kept: the
    new session is told (mediaKept false) and her media starts over, as on any reconnect."""
    rep, doctor, seen = await pair(server)
    try:
        session = next(p for p in server.state.sessions if p.identity == "doctor")
        worker = server.state.media.worker
        worker.transports[session.subscribe_transport].close(CONSENT_EXPIRED)
        await asyncio.wait_for(doctor.closed.wait(), 10)  # 4503 media_lost: come back
        assert doctor.close_code == 4503
        result = await resume_on_new_socket(doctor)
        assert result["resumed"] and not result["mediaKept"], result
        assert result["self"]["id"] == doctor.self_id
        assert session.subscribe_transport not in worker.transports
        seen_by_rep = {e["event"] for e in rep.events}
        assert "participantLeft" not in seen_by_rep, seen_by_rep
    finally:
        for c in (rep, doctor):
            await c.close()
