"""An aiortc participant speaking docs/protocol.md: one WebSocket, two peer connections.

Used by the integration tests (and usable by hand). Everything it does is what the browser
client does: publish offers, answer subscriber offers, map mids to remote tracks.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import aioice.ice
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)


def use_loopback_candidates() -> None:
    """aioice leaves 127.0.0.1 out of its host candidates; the test server listens there."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


use_loopback_candidates()


def new_pc() -> RTCPeerConnection:
    # max-bundle: with aiortc's default (balanced), a first offer holding two m-lines of one
    # kind leaves the second on a transport that BUNDLE then discards, so it never receives.
    return RTCPeerConnection(RTCConfiguration(iceServers=[],
                                              bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


class RequestFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class Client:
    def __init__(self, base_url: str, token: str,
                 rewrite_sdp: Callable[[str], str] | None = None,
                 query: dict[str, str] | None = None) -> None:
        self.base_url = base_url
        self.query = query or {}
        # Applied to every SDP from the server, e.g. to point the client at a relay.
        self.rewrite_sdp = rewrite_sdp or (lambda sdp: sdp)
        self.token = token
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self.events: list[dict[str, Any]] = []
        self._event_waiters: list[tuple[Callable[[dict], bool], asyncio.Future]] = []
        self._reader: asyncio.Task | None = None
        self.publish_pc: RTCPeerConnection | None = None
        self.subscribe_pc: RTCPeerConnection | None = None
        self.remote_tracks: dict[str, MediaStreamTrack] = {}  # track id -> track
        self._track_waiters: dict[str, asyncio.Future] = {}
        self._mid_tracks: dict[str, str] = {}
        self._offers: asyncio.Queue = asyncio.Queue()
        self._answerer: asyncio.Task | None = None
        self.self_id: str | None = None
        self.joined: dict[str, Any] = {}
        self.close_code: int | None = None
        self.close_reason = ""  # of the server's close frame
        self.closed = asyncio.Event()
        self.moved = asyncio.Event()  # set once a `moved` has been handled
        self.moves = 0
        self.live_tracks: dict[str, dict[str, Any]] = {}  # what we may subscribe to now

    # ---- socket -------------------------------------------------------------------------

    async def connect(self) -> None:
        self.session = aiohttp.ClientSession()
        url = self.base_url.replace("http", "ws", 1) + f"/ws?token={self.token}"
        url += "".join(f"&{k}={quote(v)}" for k, v in self.query.items())
        self.ws = await self.session.ws_connect(url, max_msg_size=0)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        ending = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)
        while (msg := await self.ws.receive()).type not in ending:  # `async for`, and the reason
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "event" in data:
                self._on_event(data)
            elif data.get("id") in self._pending:
                fut = self._pending.pop(data["id"])
                if not fut.done():
                    fut.set_result(data)
            else:
                self.events.append({"event": "_unmatched", "data": data})
        self.close_code = self.ws.close_code
        if msg.type == aiohttp.WSMsgType.CLOSE:
            self.close_reason = msg.extra or ""
        self.closed.set()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"socket closed ({self.close_code})"))

    def _on_event(self, data: dict[str, Any]) -> None:
        self.events.append(data)
        event, body = data["event"], data.get("data", {})
        if event == "trackPublished":
            self.live_tracks[body["track"]["id"]] = body["track"]
        elif event == "trackUnpublished":
            self.live_tracks.pop(body["trackId"], None)
        elif event == "moved":
            self.live_tracks = {t["id"]: t for t in body["tracks"]}
        if data["event"] == "subscriberOffer":
            self._offers.put_nowait(data["data"])
        elif data["event"] == "moved":
            self.moved.clear()
            self._offers.put_nowait({"moved": True})
        for pred, fut in list(self._event_waiters):
            if not fut.done() and pred(data):
                fut.set_result(data)

    async def request(self, method: str, params: dict | None = None, timeout: float = 10) -> Any:
        assert self.ws is not None
        request_id = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        await self.ws.send_json({"id": request_id, "method": method, "params": params or {}})
        reply = await asyncio.wait_for(fut, timeout)
        if "error" in reply:
            raise RequestFailed(reply["error"]["code"], reply["error"]["message"])
        return reply["result"]

    async def send_raw(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(text)

    async def wait_event(self, name: str, pred: Callable[[dict], bool] = lambda d: True,
                         timeout: float = 10) -> dict[str, Any]:
        for e in self.events:
            if e.get("event") == name and pred(e["data"]):
                return e["data"]
        fut = asyncio.get_running_loop().create_future()
        entry = (lambda e: e.get("event") == name and pred(e["data"]), fut)
        self._event_waiters.append(entry)
        try:
            return (await asyncio.wait_for(fut, timeout))["data"]
        finally:
            self._event_waiters.remove(entry)

    # ---- meeting ------------------------------------------------------------------------

    async def join(self) -> dict[str, Any]:
        await self.join_media()
        self.joined = await self.request("join")
        self.self_id = self.joined["self"]["id"]
        self.live_tracks.update({t["id"]: t for t in self.joined["tracks"]})
        return self.joined

    async def live_track_of(self, participant_id: str, kind: str, timeout: float = 10) -> str:
        """The id of a participant's current track of this kind (after moves and republishes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for t in self.live_tracks.values():
                if t["participantId"] == participant_id and t["kind"] == kind:
                    return t["id"]
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no live {kind} track of {participant_id}")
            try:
                await self.wait_event("trackPublished", lambda d: d["track"]["participantId"]
                                      == participant_id and d["track"]["kind"] == kind
                                      and d["track"]["id"] in self.live_tracks,
                                      timeout=remaining)
            except TimeoutError:
                continue

    async def join_media(self) -> None:
        """Set up the subscribe side; `join` calls it, a test sending its own join calls it."""
        if self.subscribe_pc is not None:
            return
        self._new_subscribe_pc()
        self._answerer = asyncio.create_task(self._answer_offers())

    def _new_subscribe_pc(self) -> None:
        pc = self.subscribe_pc = new_pc()
        self._mid_tracks = {}

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            transceiver = next(t for t in pc.getTransceivers() if t.receiver.track is track)
            track_id = self._mid_tracks.get(transceiver.mid or "")
            if track_id:
                self.remote_tracks[track_id] = track
                fut = self._track_waiters.get(track_id)
                if fut is not None and not fut.done():
                    fut.set_result(track)

    async def _answer_offers(self) -> None:
        while True:
            offer = await self._offers.get()
            if offer.get("moved"):
                # Our media moved to another group: both connections start over, as the
                # protocol asks (docs/protocol.md, breakout groups).
                for pc in (self.subscribe_pc, self.publish_pc):
                    if pc is not None:
                        await pc.close()
                self.publish_pc = None
                self._new_subscribe_pc()
                self.moves += 1
                self.moved.set()
                continue
            self._mid_tracks.update(offer["tracks"])
            pc = self.subscribe_pc
            assert pc is not None
            remote = RTCSessionDescription(self.rewrite_sdp(offer["sdp"]), "offer")
            try:
                await pc.setRemoteDescription(remote)
                await pc.setLocalDescription(await pc.createAnswer())
            except Exception as exc:  # keep answering later offers; the test sees the error
                self.events.append({"event": "_offer_failed", "data": {"error": repr(exc)}})
                continue
            try:
                await self.request("subscriberAnswer", {"sdp": pc.localDescription.sdp,
                                                        "offerId": offer.get("offerId")})
            except RequestFailed as exc:
                # `conflict`: the offer was superseded (a move began meanwhile); the protocol
                # says to drop it and go on. Anything else is recorded for the test to see.
                self.events.append({"event": "_answer_failed",
                                    "data": {"code": exc.code, "error": str(exc)}})
                if exc.code != "conflict":
                    return
            except ConnectionError:
                return

    async def publish(self, *tracks: MediaStreamTrack, video_codec: str | None = None
                      ) -> dict[str, Any]:
        if self.publish_pc is None:
            self.publish_pc = new_pc()
        pc = self.publish_pc
        for track in tracks:
            transceiver = pc.addTransceiver(track, direction="sendonly")
            if video_codec and track.kind == "video":
                codecs = RTCRtpSender.getCapabilities("video").codecs
                transceiver.setCodecPreferences(
                    [c for c in codecs if c.mimeType in (f"video/{video_codec}", "video/rtx")])
        await pc.setLocalDescription(await pc.createOffer())
        names = {t.mid: t.sender.track.kind for t in pc.getTransceivers() if t.sender.track}
        result = await self.request("publish", {"sdp": pc.localDescription.sdp, "names": names})
        answer = RTCSessionDescription(self.rewrite_sdp(result["sdp"]), "answer")
        await pc.setRemoteDescription(answer)
        return result

    async def remote_track(self, track_id: str, timeout: float = 10) -> MediaStreamTrack:
        if track_id in self.remote_tracks:
            return self.remote_tracks[track_id]
        fut = self._track_waiters.setdefault(track_id, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(fut, timeout)

    async def tracks_of(self, participant_id: str, kind: str, timeout: float = 10) -> str:
        """The id of a remote participant's track of this kind, from join or events."""
        for t in self.joined.get("tracks", []):
            if t["participantId"] == participant_id and t["kind"] == kind:
                return t["id"]
        data = await self.wait_event(
            "trackPublished",
            lambda d: d["track"]["participantId"] == participant_id and d["track"]["kind"] == kind,
            timeout)
        return data["track"]["id"]

    async def close(self) -> None:
        """Leave (as the web client does when its page closes), then tear down."""
        if self.ws is not None and not self.ws.closed and self.self_id and not self.closed.is_set():
            try:
                await self.request("leave", timeout=3)
            except (TimeoutError, RequestFailed, ConnectionError, RuntimeError):
                pass
        await self.drop()

    async def drop(self) -> None:
        """Vanish without leaving: socket and peer connections cut, as on a network loss."""
        for task in (self._answerer,):
            if task is not None:
                task.cancel()
        for pc in (self.publish_pc, self.subscribe_pc):
            if pc is not None:
                await pc.close()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 5)
            except (TimeoutError, Exception):
                self._reader.cancel()
        if self.session is not None:
            await self.session.close()
