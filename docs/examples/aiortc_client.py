#!/usr/bin/env python3
"""A minimal participant written from docs/protocol.md with aiortc ("Writing a client").

It gets a token (dev mode: POST /api/dev/token, as the web client does; production: one your
backend minted with the API key), opens the WebSocket, joins, publishes a synthetic camera
(colour bars over a moving white block) and a 440 Hz tone, answers every subscriberOffer,
follows breakout moves and reports the remote tracks it decoded.

    python docs/examples/aiortc_client.py http://127.0.0.1:8080 --room demo --name Bot
    python docs/examples/aiortc_client.py https://media.example.com --token eyJ... --duration 60

It stays until --duration runs out, Ctrl-C or SIGTERM, then leaves. With --output DIR it writes
DIR/report.json and the last decoded picture of each remote video track as DIR/<trackId>.png.
Left out for brevity: the lobby, reconnecting after a drop, mute, chat and the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import signal
from pathlib import Path
from urllib.parse import quote, urlparse

import aiohttp
import aioice.ice
import av
import numpy as np
from aiortc import (
    AudioStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError

WIDTH, HEIGHT = 320, 240
# white, yellow, cyan, green, magenta, red, blue, black: one bar each, left to right
BARS = [(235, 235, 235), (235, 235, 16), (16, 235, 235), (16, 235, 16),
        (235, 16, 235), (235, 16, 16), (16, 16, 235), (16, 16, 16)]
TONE_HZ = 440.0


def picture(n: int) -> np.ndarray:
    """Frame n of the camera: bars over the top two thirds, a block moving along the bottom."""
    rgb = np.repeat(np.array(BARS, np.uint8), WIDTH // len(BARS), axis=0)[None].repeat(HEIGHT, 0)
    rgb[HEIGHT * 2 // 3:] = 16
    x = n * 4 % (WIDTH - 40)
    rgb[HEIGHT * 3 // 4:HEIGHT * 11 // 12, x:x + 40] = 235
    return rgb


class Camera(VideoStreamTrack):
    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()  # paced at 30 frames a second
        frame = av.VideoFrame.from_ndarray(picture(pts // 3000), format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class Microphone(AudioStreamTrack):
    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()  # 20 ms of silence, paced; we fill in the tone
        t = (frame.pts + np.arange(frame.samples)) / frame.sample_rate
        frame.planes[0].update((8000 * np.sin(2 * np.pi * TONE_HZ * t)).astype("<i2").tobytes())
        return frame


def new_pc() -> RTCPeerConnection:
    # No ICE servers: the server is ICE-lite, offers its own address and learns ours from our
    # checks, so aiortc's default (a public STUN server) is of no use. max-bundle: every m-line
    # on one transport, as the server does (aiortc's default loses a second m-line of a kind).
    return RTCPeerConnection(RTCConfiguration(iceServers=[],
                                              bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


class RequestFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class Participant:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.ids, self.replies = ws, itertools.count(1), {}
        self.events: asyncio.Queue[dict] = asyncio.Queue()
        self.names: dict[str, str] = {}  # participant id -> display name
        self.tracks: dict[str, dict] = {}  # track id -> {"participantId", "kind", "name", ...}
        self.received: dict[str, dict] = {}  # track id -> what we decoded of it
        self.pictures: dict[str, av.VideoFrame] = {}
        self.sounds: dict[str, collections.deque] = {}
        self.publish_pc = self.subscribe_pc = None

    async def read(self) -> None:
        async for msg in self.ws:
            message = json.loads(msg.data)
            if "event" in message:
                self.events.put_nowait(message)
            elif message.get("id") in self.replies:
                self.replies.pop(message["id"]).set_result(message)
            else:  # an error about a message whose id the server could not read
                print("server:", message)
        for reply in self.replies.values():
            reply.set_exception(ConnectionError(f"socket closed ({self.ws.close_code})"))

    async def request(self, method: str, params: dict | None = None) -> dict:
        request_id = next(self.ids)
        self.replies[request_id] = reply = asyncio.get_running_loop().create_future()
        await self.ws.send_json({"id": request_id, "method": method, "params": params or {}})
        message = await reply
        if "error" in message:
            raise RequestFailed(message["error"]["code"], message["error"]["message"])
        return message["result"]

    async def publish(self) -> None:
        """A new publish connection: the client offers, the server answers."""
        pc = self.publish_pc = new_pc()
        for track in (Camera(), Microphone()):
            pc.addTransceiver(track, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        names = {t.mid: "camera" if t.kind == "video" else "microphone"
                 for t in pc.getTransceivers()}
        result = await self.request("publish", {"sdp": pc.localDescription.sdp, "names": names})
        await pc.setRemoteDescription(RTCSessionDescription(result["sdp"], "answer"))

    def new_subscribe_pc(self) -> None:
        """A new subscribe connection: it waits for the server's subscriberOffer."""
        pc = self.subscribe_pc = new_pc()
        mids = self.mids = {}  # mid -> track id, from this connection's offers
        pc.on("track", lambda track: asyncio.ensure_future(self.decode(pc, mids, track)))

    async def answer(self, offer: dict) -> None:
        pc = self.subscribe_pc
        self.mids.update(offer["tracks"])
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        try:
            await self.request("subscriberAnswer", {"sdp": pc.localDescription.sdp,
                                                    "offerId": offer["offerId"]})
        except RequestFailed as exc:
            if exc.code != "conflict":
                raise  # conflict: a `moved` superseded this offer and is next in the queue

    async def follow(self) -> None:
        """Handle server events in order, until cancelled."""
        while True:
            message = await self.events.get()
            event, data = message["event"], message["data"]
            if event == "subscriberOffer":
                await self.answer(data)
            elif event == "moved":  # breakout group changed: both connections start over
                for pc in (self.publish_pc, self.subscribe_pc):
                    await pc.close()
                self.tracks.update({t["id"]: t for t in data["tracks"]})
                self.new_subscribe_pc()
                await self.publish()
            elif event == "trackPublished":
                self.tracks[data["track"]["id"]] = data["track"]
            elif event == "participantJoined":
                self.names[data["participant"]["id"]] = data["participant"]["name"]

    async def decode(self, pc: RTCPeerConnection, mids: dict, track) -> None:
        mid = next(t.mid for t in pc.getTransceivers() if t.receiver.track is track)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return  # the connection closed (a move or the end)
            track_id = mids.get(mid, mid)
            if track_id not in self.received:
                who = self.tracks.get(track_id, {}).get("participantId")
                self.received[track_id] = {"kind": track.kind, "participantId": who,
                                           "name": self.names.get(who), "frames": 0}
                print(f"decoding {track.kind} {track_id} of {self.names.get(who)}", flush=True)
            self.received[track_id]["frames"] += 1
            if track.kind == "video":
                self.pictures[track_id] = frame
            else:  # keep the last second of the first channel
                sound = self.sounds.setdefault(track_id, collections.deque(maxlen=frame.rate))
                sound.extend(frame.to_ndarray()[0, ::len(frame.layout.channels)])
                self.received[track_id]["rate"] = frame.rate

    def report(self, output: Path | None) -> None:
        for track_id, info in self.received.items():
            if info["kind"] == "video":
                frame = self.pictures[track_id]
                info.update(width=frame.width, height=frame.height)
                if output:
                    save_png(frame, output / f"{track_id}.png")
            else:  # the loudest frequency of the last second
                sound = np.array(self.sounds[track_id], dtype=float)
                info["toneHz"] = np.argmax(np.abs(np.fft.rfft(sound))) * info["rate"] / len(sound)
            print(track_id, json.dumps(info), flush=True)
        if output:
            (output / "report.json").write_text(json.dumps({"tracks": self.received}))


def save_png(frame: av.VideoFrame, path: Path) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, "rgb24"
        out.mux(stream.encode(frame.reformat(format="rgb24")))
        out.mux(stream.encode())


def offer_loopback_candidate() -> None:
    """aioice never offers 127.0.0.1 as a host candidate; a server on this machine (listening on
    127.0.0.1) needs it. This makes it the one address aioice gathers: for local trials only."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


async def dev_token(http: aiohttp.ClientSession, server: str, room: str, name: str) -> str:
    """Dev mode only (production answers 404): any name gets a host token; the room is made."""
    async with http.post(f"{server}/api/dev/token", json={"room": room, "name": name}) as r:
        body = await r.json()
        if r.status != 200:
            raise SystemExit(f"no dev token: HTTP {r.status} {body}")
        return body["token"]


async def run(args: argparse.Namespace) -> None:
    if urlparse(args.server).hostname in ("127.0.0.1", "localhost"):
        offer_loopback_candidate()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    if args.duration:
        asyncio.get_running_loop().call_later(args.duration, stop.set)
    async with aiohttp.ClientSession() as http:
        token = args.token or await dev_token(http, args.server, args.room, args.name)
        ws_url = args.server.replace("http", "ws", 1) + "/ws?token=" + quote(token)
        async with http.ws_connect(ws_url) as ws:
            me = Participant(ws)
            reader = asyncio.create_task(me.read())
            reader.add_done_callback(lambda _: stop.set())  # the server closed the socket
            joined = await me.request("join")
            me.names.update({p["id"]: p["name"] for p in joined["participants"]})
            me.tracks.update({t["id"]: t for t in joined["tracks"]})
            print(f"joined {joined['room']} as {joined['self']['id']}", flush=True)
            me.new_subscribe_pc()  # its first offer may come much later: nothing times out
            await me.publish()
            follower = asyncio.create_task(me.follow())
            follower.add_done_callback(lambda _: stop.set())  # it ends only by failing
            await stop.wait()
            if follower.done():
                follower.result()  # raises what went wrong
            follower.cancel()
            if not ws.closed:
                await me.request("leave")
            else:
                print(f"closed by the server: {ws.close_code}")
            for pc in (me.publish_pc, me.subscribe_pc):
                await pc.close()
    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
    me.report(args.output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", help="the server's base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--room", help="room to join (dev mode: a token is fetched for it)")
    parser.add_argument("--name", default="aiortc example", help="display name (dev mode)")
    parser.add_argument("--token", help="an access token (production); without: dev mode")
    parser.add_argument("--duration", type=float, default=0, help="seconds (0: until Ctrl-C)")
    parser.add_argument("--output", type=Path, help="directory for report.json and pictures")
    args = parser.parse_args()
    if not args.token and not args.room:
        parser.error("give --token, or --room for a dev-mode token")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
