"""A small asyncio client of the Janus HTTP API (VideoRoom plugin), for the benchmark bots.

It stands in for our own WebSocket protocol when the bots run against Janus 1.1.2. SDP strings
are opaque here: whatever produces and consumes them (aiortc, or the bots' own transports)
is the caller's business. Janus is ICE-lite with half-trickle, so its candidates are in its
SDP; the client is the controlling ICE agent and puts its own candidates in its SDP too, then
sends `trickle {completed: true}`.

One `JanusSession` (one Janus session, one long poll) can carry many handles, so one bot
process can hold hundreds of publishers and subscribers without one HTTP long poll each:

    async with JanusSession(info.http_url) as session:
        room_id = await JanusRoom(session).create()
        pub = JanusPublisher(session, room_id)
        answer_sdp = await pub.publish(offer_sdp)          # pub.feed_id is now set
        sub = JanusSubscriber(session, room_id)
        offer_sdp = await sub.subscribe(pub.feed_id)
        await sub.answer(answer_sdp)
        await sub.wait_webrtcup(timeout=10)                # optional: ICE+DTLS done on Janus's side

Final interface:

    class JanusSession:
        JanusSession(http_url: str, *, http: aiohttp.ClientSession | None = None,
                     max_events: int = 100, keepalive_interval: float = 25.0)
        async start() -> None / async close() -> None      # or `async with`
        async attach(plugin: str = VIDEOROOM) -> JanusHandle
        session_id: int | None; closed: bool

    class JanusHandle:                                     # one plugin handle = one PeerConnection
        async request(body: dict) -> dict                  # synchronous request: plugin data
        async message(body: dict, jsep: dict | None = None, timeout: float = 15)
            -> tuple[dict, dict | None]                    # asynchronous: (plugin data, jsep)
        async trickle_completed() -> None
        async wait_webrtcup(timeout: float) -> None        # raises JanusError on hangup
        async detach() -> None
        handle_id: int; webrtcup: asyncio.Event; hangup_reason: str | None
        events: deque[dict]                                # last 50 unsolicited events

    class JanusRoom:
        JanusRoom(session, room_id: int | None = None, *, publishers: int = 100,
                  bitrate: int = 0, fir_freq: int = 0, videocodec: str = "vp8",
                  audiocodec: str = "opus", extra: dict | None = None)
        async create() -> int                              # room id (Janus picks one if None)
        async destroy() -> None
        room_id: int | None

    class JanusPublisher:
        JanusPublisher(session, room_id: int, display: str | None = None)
        async publish(offer_sdp: str, *, timeout: float = 15) -> str   # answer sdp; .feed_id
        async wait_webrtcup(timeout: float) -> None
        async close() -> None                              # leave and detach
        feed_id: int | None; handle: JanusHandle | None

    class JanusSubscriber:
        JanusSubscriber(session, room_id: int)
        async subscribe(feed_id: int | list[int], *, timeout: float = 15) -> str  # its offer
        async answer(answer_sdp: str, *, timeout: float = 15) -> None
        async wait_webrtcup(timeout: float) -> None
        async close() -> None                              # leave and detach
        handle: JanusHandle | None; streams: list[dict]   # what Janus says it attached

    class JanusError(Exception): code: int | None; reason: str

VideoRoom request forms used (checked against Janus 1.1.2 from Debian):
  create   {"request": "create", "publishers": N, "videocodec": "vp8", "audiocodec": "opus",
            "bitrate": B, "fir_freq": F, "is_private": true, "permanent": false}   (synchronous)
  join     {"request": "join", "ptype": "publisher", "room": R[, "display": D]}  -> "joined", id
  publish  {"request": "publish"} + jsep offer           -> "configured": "ok" + jsep answer
  join     {"request": "join", "ptype": "subscriber", "room": R, "streams": [{"feed": F}]}
                                                          -> "attached" + jsep offer
  start    {"request": "start"} + jsep answer             -> "started": "ok"
  leave    {"request": "leave"}
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections import deque
from typing import Any

import aiohttp

VIDEOROOM = "janus.plugin.videoroom"


class JanusError(Exception):
    """An error from the Janus core (`janus: error`) or from the VideoRoom (`error_code`)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"Janus error {code}: {reason}")
        self.code = code
        self.reason = reason


def _plugin_data(msg: dict) -> dict:
    data = (msg.get("plugindata") or {}).get("data") or {}
    if "error_code" in data or "error" in data:
        raise JanusError(data.get("error_code"), str(data.get("error")))
    return data


class JanusSession:
    """One Janus session over HTTP: requests, a long poll for events, keepalives."""

    def __init__(
        self,
        http_url: str,
        *,
        http: aiohttp.ClientSession | None = None,
        max_events: int = 100,
        keepalive_interval: float = 25.0,
    ) -> None:
        self.http_url = http_url.rstrip("/")
        self._own_http = http is None
        self._http = http
        self.max_events = max_events
        self.keepalive_interval = keepalive_interval
        self.session_id: int | None = None
        self.closed = False
        self.handles: dict[int, JanusHandle] = {}
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)
        self._pending: dict[str, asyncio.Future] = {}  # transaction -> future of the event
        self._tasks: list[asyncio.Task] = []
        self.poll_error: BaseException | None = None

    # ---- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> JanusSession:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        if self._http is None:
            # Many concurrent requests during joins; the long poll holds one connection.
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            )
        reply = await self._post(self.http_url, {"janus": "create"})
        self.session_id = int(reply["data"]["id"])
        self._tasks = [
            asyncio.create_task(self._poll(), name=f"janus-poll-{self.session_id}"),
            asyncio.create_task(self._keepalive(), name=f"janus-keepalive-{self.session_id}"),
        ]

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.session_id is not None and self._http is not None:
            # Destroying the session detaches every handle and hangs up their PeerConnections.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._post(self._url(), {"janus": "destroy"}), 5)
        self._fail_pending(JanusError(None, "session closed"))
        if self._own_http and self._http is not None:
            await self._http.close()

    async def attach(self, plugin: str = VIDEOROOM) -> JanusHandle:
        reply = await self._post(self._url(), {"janus": "attach", "plugin": plugin})
        handle = JanusHandle(self, int(reply["data"]["id"]))
        self.handles[handle.handle_id] = handle
        return handle

    # ---- plumbing -------------------------------------------------------------------------

    def _url(self, handle_id: int | None = None) -> str:
        url = f"{self.http_url}/{self.session_id}"
        return url if handle_id is None else f"{url}/{handle_id}"

    def _transaction(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"

    async def _post(self, url: str, body: dict, transaction: str | None = None) -> dict:
        assert self._http is not None, "session not started"
        body = dict(body, transaction=transaction or self._transaction())
        async with self._http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=15)) as r:
            reply = await r.json(content_type=None) if r.status == 200 else None
            if not isinstance(reply, dict):
                raise JanusError(r.status, f"HTTP {r.status}, no JSON reply from {url}")
        if reply.get("janus") == "error":
            err = reply.get("error") or {}
            raise JanusError(err.get("code"), str(err.get("reason")))
        return reply

    async def _message(self, handle_id: int, body: dict, jsep: dict | None,
                       timeout: float) -> dict:
        """Send an asynchronous plugin message and return the event answering it."""
        transaction = self._transaction()
        future = asyncio.get_running_loop().create_future()
        self._pending[transaction] = future  # before the POST: the event may come first
        try:
            msg: dict[str, Any] = {"janus": "message", "body": body}
            if jsep is not None:
                msg["jsep"] = jsep
            reply = await self._post(self._url(handle_id), msg, transaction)
            if reply.get("janus") == "success":  # answered synchronously after all
                return reply
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(transaction, None)

    async def _poll(self) -> None:
        assert self._http is not None
        url = f"{self._url()}?maxev={self.max_events}"
        failures = 0
        while not self.closed:
            try:
                # Janus answers an idle long poll after 30 s with a keepalive.
                async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=45)) as r:
                    if r.status != 200:  # 404 with an empty body once the session is gone
                        raise JanusError(r.status, f"HTTP {r.status} on the event long poll")
                    payload = await r.json(content_type=None)
                if isinstance(payload, dict) and payload.get("janus") == "error":
                    # e.g. 458 "No such session" after a timeout: polling again would spin.
                    err = payload.get("error") or {}
                    raise JanusError(err.get("code"), str(err.get("reason")))
                failures = 0
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, TimeoutError, ValueError, JanusError) as exc:
                failures += 1
                if failures >= 3 or isinstance(exc, JanusError):
                    self.poll_error = exc
                    self._fail_pending(JanusError(None, f"event long poll failed: {exc!r}"))
                    return
                await asyncio.sleep(0.2)
                continue
            for event in payload if isinstance(payload, list) else [payload]:
                if isinstance(event, dict):
                    self._dispatch(event)

    async def _keepalive(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.keepalive_interval)
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, JanusError):
                await self._post(self._url(), {"janus": "keepalive"})

    def _dispatch(self, event: dict) -> None:
        kind = event.get("janus")
        if kind == "keepalive":
            return
        if kind == "error" and event.get("session_id") is None and not event.get("transaction"):
            return
        future = self._pending.get(event.get("transaction") or "")
        if future is not None and kind in ("event", "error", "success") and not future.done():
            if kind == "error":
                err = event.get("error") or {}
                future.set_exception(JanusError(err.get("code"), str(err.get("reason"))))
            else:
                future.set_result(event)
            return
        handle = self.handles.get(event.get("sender") or 0)
        if handle is not None:
            handle._on_event(event)

    def _fail_pending(self, exc: BaseException) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)
        for handle in self.handles.values():
            handle._fail(exc)


class JanusHandle:
    """One plugin handle, i.e. at most one PeerConnection."""

    def __init__(self, session: JanusSession, handle_id: int) -> None:
        self.session = session
        self.handle_id = handle_id
        self.webrtcup = asyncio.Event()
        self.hangup_reason: str | None = None
        self.events: deque[dict] = deque(maxlen=50)
        self._ended = asyncio.Event()
        self._error: BaseException | None = None

    async def request(self, body: dict) -> dict:
        """A synchronous plugin request (create, destroy, list, ...): returns the plugin data."""
        reply = await self.session._post(
            self.session._url(self.handle_id), {"janus": "message", "body": body})
        return _plugin_data(reply)

    async def message(self, body: dict, jsep: dict | None = None,
                      timeout: float = 15) -> tuple[dict, dict | None]:
        """An asynchronous plugin request: returns (plugin data, jsep) of the answering event."""
        event = await self.session._message(self.handle_id, body, jsep, timeout)
        return _plugin_data(event), event.get("jsep")

    async def trickle_completed(self) -> None:
        await self.session._post(self.session._url(self.handle_id),
                                 {"janus": "trickle", "candidate": {"completed": True}})

    async def wait_webrtcup(self, timeout: float) -> None:
        """Wait until Janus reports ICE and DTLS done for this handle."""
        ended = asyncio.ensure_future(self._ended.wait())
        up = asyncio.ensure_future(self.webrtcup.wait())
        try:
            await asyncio.wait({ended, up}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            up.cancel()
        if self.webrtcup.is_set():
            return
        if self._error is not None:
            raise self._error
        if self.hangup_reason is not None:
            raise JanusError(None, f"hangup: {self.hangup_reason}")
        raise TimeoutError(f"Janus handle {self.handle_id}: no webrtcup within {timeout} s")

    async def detach(self) -> None:
        self.session.handles.pop(self.handle_id, None)
        with contextlib.suppress(JanusError, aiohttp.ClientError, TimeoutError):
            await self.session._post(self.session._url(self.handle_id), {"janus": "detach"})

    def _on_event(self, event: dict) -> None:
        kind = event.get("janus")
        if kind == "webrtcup":
            self.webrtcup.set()
        elif kind == "hangup":
            self.hangup_reason = str(event.get("reason"))
            self._ended.set()
        elif kind == "detached":
            self._ended.set()
        self.events.append(event)

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self._ended.set()


class JanusRoom:
    """A VideoRoom room created through the API (no static rooms in our configuration)."""

    def __init__(
        self,
        session: JanusSession,
        room_id: int | None = None,
        *,
        publishers: int = 100,
        bitrate: int = 0,
        fir_freq: int = 0,
        videocodec: str = "vp8",
        audiocodec: str = "opus",
        extra: dict | None = None,
    ) -> None:
        self.session = session
        self.room_id = room_id
        self.options = {
            "publishers": publishers,
            "bitrate": bitrate,  # 0: no REMB cap from the room
            "fir_freq": fir_freq,  # 0: no periodic keyframe requests
            "videocodec": videocodec,
            "audiocodec": audiocodec,
            "is_private": True,
            "permanent": False,
            **(extra or {}),
        }
        self._handle: JanusHandle | None = None

    async def create(self) -> int:
        self._handle = await self.session.attach()
        body = {"request": "create", **self.options}
        if self.room_id is not None:
            body["room"] = self.room_id
        data = await self._handle.request(body)
        if data.get("videoroom") != "created":
            raise JanusError(None, f"unexpected reply to create: {data}")
        self.room_id = int(data["room"])
        return self.room_id

    async def destroy(self) -> None:
        if self._handle is None:
            return
        with contextlib.suppress(JanusError, aiohttp.ClientError, TimeoutError):
            await self._handle.request({"request": "destroy", "room": self.room_id})
        await self._handle.detach()
        self._handle = None


class _Participant:
    def __init__(self, session: JanusSession, room_id: int) -> None:
        self.session = session
        self.room_id = room_id
        self.handle: JanusHandle | None = None

    async def wait_webrtcup(self, timeout: float) -> None:
        assert self.handle is not None, "not negotiated yet"
        await self.handle.wait_webrtcup(timeout)

    async def close(self) -> None:
        handle, self.handle = self.handle, None
        if handle is None or self.session.closed:
            return
        with contextlib.suppress(JanusError, aiohttp.ClientError, TimeoutError):
            await handle.message({"request": "leave"}, timeout=5)
        await handle.detach()


class JanusPublisher(_Participant):
    """One publishing PeerConnection: join as publisher, then publish an offer."""

    def __init__(self, session: JanusSession, room_id: int, display: str | None = None) -> None:
        super().__init__(session, room_id)
        self.display = display
        self.feed_id: int | None = None
        self.private_id: int | None = None

    async def publish(self, offer_sdp: str, *, timeout: float = 15) -> str:
        handle = self.handle = await self.session.attach()
        join: dict[str, Any] = {"request": "join", "ptype": "publisher", "room": self.room_id}
        if self.display is not None:
            join["display"] = self.display
        data, _ = await handle.message(join, timeout=timeout)
        if data.get("videoroom") != "joined":
            raise JanusError(None, f"unexpected reply to publisher join: {data}")
        self.feed_id = int(data["id"])
        self.private_id = data.get("private_id")
        offer: dict[str, Any] = {"type": "offer", "sdp": offer_sdp}
        if "a=simulcast:" in offer_sdp:
            # our rids are listed lowest first (as the web client and Firefox do); Janus
            # assumes high, medium, low unless told
            offer["rid_order"] = "lmh"
        data, jsep = await handle.message({"request": "publish"}, offer, timeout=timeout)
        if data.get("configured") != "ok" or not jsep or jsep.get("type") != "answer":
            raise JanusError(None, f"unexpected reply to publish: {data} jsep={jsep}")
        await handle.trickle_completed()
        return jsep["sdp"]


class JanusSubscriber(_Participant):
    """One subscribing PeerConnection: Janus offers, we answer."""

    def __init__(self, session: JanusSession, room_id: int) -> None:
        super().__init__(session, room_id)
        self.streams: list[dict] = []

    async def subscribe(self, feed_id: int | list[int], *, timeout: float = 15) -> str:
        """Join as a subscriber to one feed or several (one offer with all their streams)."""
        feeds = feed_id if isinstance(feed_id, list) else [feed_id]
        handle = self.handle = await self.session.attach()
        data, jsep = await handle.message(
            {"request": "join", "ptype": "subscriber", "room": self.room_id,
             "streams": [{"feed": f} for f in feeds]},
            timeout=timeout,
        )
        if data.get("videoroom") != "attached" or not jsep or jsep.get("type") != "offer":
            raise JanusError(None, f"unexpected reply to subscriber join: {data} jsep={jsep}")
        self.streams = list(data.get("streams") or [])
        return jsep["sdp"]

    async def answer(self, answer_sdp: str, *, timeout: float = 15) -> None:
        assert self.handle is not None, "subscribe() first"
        data, _ = await self.handle.message(
            {"request": "start"}, {"type": "answer", "sdp": answer_sdp}, timeout=timeout)
        if data.get("started") != "ok":
            raise JanusError(None, f"unexpected reply to start: {data}")
        await self.handle.trickle_completed()

    async def configure_substream(self, mid: str, substream: int, *,
                                  timeout: float = 15) -> None:
        """The simulcast encoding Janus sends on m-line `mid` (0: the lowest). Janus 1.1's
        multistream form: `configure` with `streams: [{mid, substream}]`."""
        assert self.handle is not None, "subscribe() first"
        data, _ = await self.handle.message(
            {"request": "configure", "streams": [{"mid": mid, "substream": substream}]},
            timeout=timeout)
        if data.get("configured") != "ok":
            raise JanusError(None, f"unexpected reply to configure: {data}")
