"""Bad input gets a clear error or is dropped; the other participants' media keeps flowing."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket

import aiohttp
import pytest
from aioice import stun

from tests.support.client import Client, RequestFailed
from tests.support.tracks import FrameChecker, PatternVideoTrack


async def raw_socket(server, token: str | None) -> aiohttp.ClientWebSocketResponse:
    session = aiohttp.ClientSession()
    url = server.base_url.replace("http", "ws", 1) + "/ws" + (f"?token={token}" if token else "")
    ws = await session.ws_connect(url)
    ws._test_session = session  # type: ignore[attr-defined]
    return ws


async def close_raw(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.close()
    await ws._test_session.close()  # type: ignore[attr-defined]


async def expect_refused(server, token: str | None, code: str) -> None:
    ws = await raw_socket(server, token)
    try:
        msg = await ws.receive_json(timeout=5)
        assert msg == {"event": "error", "data": {"code": code, "message": msg["data"]["message"]}}
        closing = await ws.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 4401
    finally:
        await close_raw(ws)


async def test_tokens_refused_with_codes(server) -> None:
    await server.create_room("guarded")
    await expect_refused(server, None, "token_missing")
    await expect_refused(server, "not.a.token", "token_invalid")
    good = server.token("guarded", "eve")
    header, payload, sig = good.split(".")
    forged = f"{header}.{payload}.{sig[:-4]}AAAA"
    await expect_refused(server, forged, "token_invalid")
    from signaling.tokens import mint

    other_secret = mint("some-other-secret-at-least-32-bytes", "guarded", "eve", "eve", "host")
    await expect_refused(server, other_secret, "token_invalid")
    await expect_refused(server, server.token("guarded", "eve", ttl=-5), "token_expired")


async def test_bad_messages_get_error_codes(server) -> None:
    await server.create_room("bad")
    ws = await raw_socket(server, server.token("bad", "mallory"))
    try:
        async def reply_to(text: str) -> dict:
            await ws.send_str(text)
            return await ws.receive_json(timeout=5)

        assert (await reply_to("{not json"))["error"]["code"] == "bad_json"
        assert (await reply_to("[1, 2]"))["error"]["code"] == "bad_request"
        assert (await reply_to('{"id": 1}'))["error"]["code"] == "bad_request"
        r = await reply_to('{"id": 2, "method": "fly"}')
        assert r == {"id": 2, "error": {"code": "unknown_method", "message": r["error"]["message"]}}
        assert (await reply_to('{"id": 3, "method": "publish", "params": {"sdp": "v=0"}}')
                )["error"]["code"] == "not_joined"
        assert (await reply_to('{"id": 4, "method": "join", "params": 7}'))["error"]["code"] \
            == "bad_request"
        joined = await reply_to('{"id": 5, "method": "join"}')
        assert joined["result"]["self"]["name"] == "mallory"
        assert (await reply_to('{"id": 6, "method": "join"}'))["error"]["code"] == \
            "already_joined"
        assert (await reply_to('{"id": 7, "method": "chat", "params": {"text": 5}}')
                )["error"]["code"] == "bad_request"
        assert (await reply_to('{"id": 8, "method": "publish", "params": {"sdp": "garbage"}}')
                )["error"]["code"] == "bad_sdp"
        bad_sdp = "v=0\r\nm=video notaport UDP/TLS/RTP/SAVPF 96\r\n"
        assert (await reply_to(json.dumps({"id": 9, "method": "publish",
                                           "params": {"sdp": bad_sdp}})))["error"]["code"] \
            == "bad_sdp"
        assert (await reply_to('{"id": 10, "method": "mute", "params": {"trackId": "t-x", '
                               '"muted": true}}'))["error"]["code"] == "not_found"
        # still a working session after all that
        ok = await reply_to('{"id": 11, "method": "chat", "params": {"text": "still here"}}')
        assert "result" in ok or ok.get("event") == "chat"
    finally:
        await close_raw(ws)


async def test_oversized_message_closes_socket(server) -> None:
    await server.create_room("big")
    ws = await raw_socket(server, server.token("big", "bigmouth"))
    try:
        await ws.send_str(json.dumps({"id": 1, "method": "chat",
                                      "params": {"text": "x" * (2 * 1024 * 1024)}}))
        msg = await ws.receive(timeout=5)
        while msg.type == aiohttp.WSMsgType.TEXT:
            msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.CLOSING)
        assert ws.close_code == 1009
    finally:
        await close_raw(ws)
    health = await aiohttp.ClientSession().__aenter__()
    try:
        async with health.get(server.base_url + "/api/health") as r:
            assert (await r.json())["status"] == "ok"
    finally:
        await health.close()


async def test_flooding_is_rate_limited_then_closed(server) -> None:
    await server.create_room("flood")
    ws = await raw_socket(server, server.token("flood", "flooder"))
    try:
        for i in range(400):
            await ws.send_str(json.dumps({"id": i, "method": "ping"}))
        codes = []
        while True:
            msg = await ws.receive(timeout=10)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            if "error" in data:
                codes.append(data["error"]["code"])
        assert "rate_limited" in codes
        assert ws.close_code == 1008
    finally:
        await close_raw(ws)


def garbage_datagrams(transport_ufrag: str, remote_ufrag: str, transport_pwd: str
                      ) -> tuple[list[bytes], bytes]:
    rng = random.Random(3)
    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    request.attributes["USERNAME"] = f"{transport_ufrag}:{remote_ufrag}"
    request.add_message_integrity(transport_pwd.encode())
    valid_stun = bytes(request)
    forged = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    forged.attributes["USERNAME"] = f"{transport_ufrag}:attacker"
    forged.add_message_integrity(b"wrong password")
    out = [os.urandom(rng.randint(1, 1400)) for _ in range(200)]
    out += [valid_stun[:n] for n in range(0, len(valid_stun), 7)]  # truncated STUN
    out += [bytes(forged)]
    out += [bytes([22, 254, 253]) + os.urandom(rng.randint(0, 200)) for _ in range(50)]  # DTLS
    out += [bytes([0x80, 96]) + os.urandom(rng.randint(0, 60)) for _ in range(50)]  # RTP
    out += [bytes([0x80, 200]) + os.urandom(rng.randint(0, 60)) for _ in range(50)]  # RTCP
    out += [b"\x90"] + [b"\x00" * 20]
    return out, valid_stun


async def test_garbage_datagrams_do_not_disturb_media(server) -> None:
    await server.create_room("noise")
    a = Client(server.base_url, server.token("noise", "a"))
    b = Client(server.base_url, server.token("noise", "b"))
    task = None
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        for c in (a, b):
            await c.connect()
            await c.join()
        await a.publish(PatternVideoTrack(6))
        frames = FrameChecker()
        task = asyncio.create_task(frames.run(
            await b.remote_track(await b.tracks_of(a.self_id, "video"))))
        await frames.wait_for(6, 10, timeout=20)

        # b's subscribe connection: the server's end through the control API, b's own end
        # from its SDP
        session = next(p for p in server.state.sessions if p.id == b.self_id)
        info = await server.state.media.transport_info(session.subscribe_transport)
        target = (info.candidates[0].ip, info.candidates[0].port)
        assert b.subscribe_pc is not None and b.subscribe_pc.localDescription is not None
        b_ufrag = next(line.split(":", 1)[1].strip() for line in
                       b.subscribe_pc.localDescription.sdp.splitlines()
                       if line.startswith("a=ice-ufrag:"))
        datagrams, valid_stun = garbage_datagrams(info.ice_ufrag, b_ufrag, info.ice_pwd)
        for data in datagrams:  # from an unknown address
            sock.sendto(data, target)
        # authenticate this socket's address to a real transport, then send garbage from
        # an address the server routes: it must reach SRTP/DTLS checks and be dropped there
        sock.sendto(valid_stun, target)
        loop = asyncio.get_running_loop()
        wanted = stun.parse_message(valid_stun).transaction_id
        while True:  # the forged request above got its own 401 answer first
            response = stun.parse_message(await asyncio.wait_for(loop.sock_recv(sock, 2048), 5))
            if response.transaction_id == wanted:
                break
            assert response.attributes["ERROR-CODE"][0] == 401
        assert response.message_class == stun.Class.RESPONSE
        for data in datagrams:
            sock.sendto(data, target)

        before = frames.senders[6].readable
        await frames.wait_for(6, before + 30, timeout=20)
        assert frames.sender_ids == {6}
        stats = await server.state.media.stats()
        assert stats["errors"] == 0, "a datagram raised inside the worker"
        assert stats["dropped"] > 0
        # the session state is intact
        chat = await b.request("chat", {"text": "after the noise"})
        assert chat["message"]["text"] == "after the noise"
        assert len(server.state.rooms.rooms["noise"].participants) == 2
    finally:
        sock.close()
        if task:
            task.cancel()
        await a.close()
        await b.close()


async def test_request_errors_surface_in_client(server) -> None:
    await server.create_room("errs")
    c = Client(server.base_url, server.token("errs", "c"))
    await c.connect()
    try:
        try:
            await c.request("publish", {"sdp": "v=0"})
        except RequestFailed as exc:
            assert exc.code == "not_joined"
        else:
            raise AssertionError("publish before join succeeded")
    finally:
        await c.close()


async def test_each_class_of_bad_params_is_refused_and_the_socket_stays(server) -> None:
    """The classes of the fuzzer's findings over a real socket: deep nesting is bad_json (no id)
    with the socket kept open; wrong types, integers past 64 bits, NUL and lone surrogates are
    bad_request naming the fields in the message and in data.fields; the session goes on."""
    await server.create_room("classes", type="webinar")
    ws = await raw_socket(server, server.token("classes", "ann"))
    try:
        async def reply_to(text: str) -> dict:
            await ws.send_str(text)
            while True:
                msg = await ws.receive_json(timeout=5)
                if "event" not in msg:
                    return msg

        assert "result" in await reply_to('{"id": 1, "method": "join"}')
        deep = '{"id": 2, "method": "chat", "params": ' + "[" * 20_000 + "]" * 20_000 + "}"
        reply = await reply_to(deep)
        assert reply["error"]["code"] == "bad_json" and "id" not in reply
        assert "nested deeper than 32" in reply["error"]["message"]
        assert "result" in await reply_to('{"id": 3, "method": "ping"}')  # still open

        cases = [
            ({"trackId": {"a": 1}}, "unpublish", ["params.trackId"]),
            ({"questionId": [1]}, "qaUpvote", ["params.questionId"]),
            ({"questionId": 2**64 + 1}, "qaAnswer", ["params.questionId"]),
            ({"pollId": 10**300, "option": 0}, "pollVote", ["params.pollId"]),
            ({"text": "hi\u0000"}, "chat", ["params.text"]),
            ({"text": "\ud800"}, "qaAsk", ["params.text"]),
            ({"participantId": "p-x", "kind": ["audio"]}, "muteParticipant", ["params.kind"]),
            ({"seconds": True}, "breakoutTimer", ["params.seconds"]),
        ]
        for n, (params, method, fields) in enumerate(cases, start=10):
            reply = await reply_to(json.dumps({"id": n, "method": method, "params": params}))
            assert reply["id"] == n
            error = reply["error"]
            assert error["code"] == "bad_request", (method, error)
            assert error["data"] == {"fields": fields}, (method, error)
            assert error["message"].startswith(f"{fields[0]}: "), error
        reply = await reply_to('{"id": 30, "method": "qaAsk", "params": {"text": "still?"}}')
        assert reply["result"]["question"]["text"] == "still?"
        reply = await reply_to('{"id": 31, "method": "qaUpvote", "params": {"questionId": '
                               f'{reply["result"]["question"]["id"]}}}}}')
        assert reply["result"]["question"]["votes"] == 1
        assert (await reply_to('{"id": 2e400, "method": "ping"}'))["error"]["code"] == \
            "bad_request"
    finally:
        await close_raw(ws)


async def test_permission_is_checked_before_params(server) -> None:
    """A caller that may not use a method learns nothing about its params: forbidden, whatever
    they are (docs/protocol.md, "Validation")."""
    await server.create_room("perm-first", type="webinar")
    c = Client(server.base_url, server.token("perm-first", "att", role="attendee"))
    await c.connect()
    try:
        await c.join()
        for params in ({}, {"seconds": "x"}, {"seconds": 10}):
            with pytest.raises(RequestFailed) as refused:
                await c.request("breakoutTimer", params)
            assert refused.value.code == "forbidden"
    finally:
        await c.close()
