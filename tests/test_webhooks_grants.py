"""Signed webhooks with retries, against a real HTTP receiver; signed recording grants."""

from __future__ import annotations

import hashlib
import hmac
import json

from aiohttp import web

from signaling.grants import check, check_participant, grant_path, participant_grant_path
from signaling.webhooks import Webhooks
from tests.support.server import free_port


async def test_webhook_signed_and_retried_until_accepted() -> None:
    received: list[tuple[dict, dict]] = []
    statuses = [500, 503, 200]

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.json()))
        return web.Response(status=statuses[len(received) - 1])

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        hooks = Webhooks(f"http://127.0.0.1:{port}/hook", "hook-secret", first_delay=0.05)
        hooks.send("recording.ready", {"recordingId": "rec-1", "duration": 20.0})
        await hooks.drain()
        assert len(received) == 3 and hooks.delivered == 1 and hooks.failed == 0
        headers, body = received[-1]
        assert body == {"event": "recording.ready",
                        "data": {"recordingId": "rec-1", "duration": 20.0}}
        raw = json.dumps(body, separators=(",", ":")).encode()
        timestamp = headers["X-Mediaserver-Timestamp"]
        expected = hmac.new(b"hook-secret", timestamp.encode() + b"." + raw,
                            hashlib.sha256).hexdigest()
        assert headers["X-Mediaserver-Signature"] == f"sha256={expected}"
        assert headers["X-Mediaserver-Event"] == "recording.ready"
    finally:
        await runner.cleanup()


async def test_webhook_gives_up_after_attempts() -> None:
    hooks = Webhooks(f"http://127.0.0.1:{free_port()}/nobody", "s", attempts=2,
                     first_delay=0.01, timeout=1)
    hooks.send("recording.ready", {})
    await hooks.drain()
    assert hooks.failed == 1 and hooks.delivered == 0


def test_grants_expire_and_cannot_be_forged() -> None:
    path = grant_path("secret", "rec-9", ttl=60, now=1000)
    _, _, rec, _, expires, signature = path.split("/")
    assert rec == "rec-9"
    assert check("secret", "rec-9", expires, signature, now=1030)
    assert not check("secret", "rec-9", expires, signature, now=1061)  # expired
    assert not check("secret", "rec-8", expires, signature, now=1030)  # another recording
    assert not check("other", "rec-9", expires, signature, now=1030)  # forged
    assert not check("secret", "rec-9", str(int(expires) + 100), signature, now=1030)
    assert not check("secret", "rec-9", "soon", signature, now=1030)


def test_participant_grants_bind_the_participant() -> None:
    path = participant_grant_path("secret", "rec-9", "p-1a2b", ttl=60, now=1000)
    _, _, rec, kind, who, expires, signature = path.split("/")
    assert (rec, kind, who) == ("rec-9", "p", "p-1a2b")
    assert check_participant("secret", "rec-9", "p-1a2b", expires, signature, now=1030)
    assert not check_participant("secret", "rec-9", "p-1a2b", expires, signature, now=1061)
    assert not check_participant("secret", "rec-9", "p-9999", expires, signature, now=1030)
    assert not check_participant("secret", "rec-8", "p-1a2b", expires, signature, now=1030)
    assert not check_participant("other", "rec-9", "p-1a2b", expires, signature, now=1030)
    assert not check_participant("secret", "rec-9", "../x", expires, signature, now=1030)
    # a recording's own grant is no participant's, and the other way round
    assert not check("secret", "rec-9", expires, signature, now=1030)
