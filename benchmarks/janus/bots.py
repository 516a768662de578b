"""The load generator's bots speaking the Janus VideoRoom API instead of our protocol.

Same publisher and subscriber bots (benchmarks.bots.PublisherBot, benchmarks.subscriber), same
media, same transports (ICE controlling, DTLS, SRTP from our own code); only the signalling
differs:

- a publisher joins the room as a publisher and `publish`es our offer; Janus answers
  `a=setup:active`, so our end is the DTLS server there (benchmarks.peer picks the role);
- a subscriber lists the room's publishers, joins as a subscriber to all of them, gets Janus's
  offer and answers with `start`.

Both write their host candidate into their SDP (Janus, unlike our server, wants it). Every bot
of one process shares one Janus session (one HTTP long poll) with one handle per
PeerConnection. Latency: Janus keeps none of our stamps, so publishers keep a send log that the
subscribers of every bot process of the run read (benchmarks.sendlog).

`BotSpec.token` carries `{"room": <Janus room id>}` as JSON (benchmarks.janus.target).
A presenter's auxiliary subscribe side (benchmarks.bots.BotSpec) is not opened here.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from mediaserver.rtp.packet import payload_offset

from ..bots import SENDER, BotContext, BotSpec, PublisherBot
from ..rtpstats import ReceiveStream
from ..sdp_client import ReceivedTrack
from ..sendlog import LoggedStream, SendLog, log_path
from ..subscriber import SubscriberBot
from .client import JanusError, JanusHandle, JanusPublisher, JanusSession, JanusSubscriber

PUBLISHER_WAIT = 5.0  # s an attendee waits for Janus to list the room's publisher

__all__ = ["JanusBotSession", "JanusLink", "room_token"]


def room_token(room_id: int) -> str:
    """What a Janus bot gets in place of our JWT: the room to join."""
    return json.dumps({"room": room_id})


class JanusLink:
    """One bot process's Janus session, and a handle for room queries."""

    def __init__(self, http_url: str) -> None:
        self.session = JanusSession(http_url, max_events=200)
        self._query: JanusHandle | None = None

    async def start(self) -> None:
        await self.session.start()
        self._query = await self.session.attach()

    async def publishers(self, room_id: int) -> list[tuple[int, str]]:
        """(feed id, display name) of the room's publishers."""
        assert self._query is not None
        data = await self._query.request({"request": "listparticipants", "room": room_id})
        return [(int(p["id"]), str(p.get("display", ""))) for p in data.get("participants", [])
                if p.get("publisher")]

    async def close(self) -> None:
        await self.session.close()  # destroys the session: Janus hangs up every handle


async def open_link(ctx: BotContext) -> None:
    """Give the bot process its Janus session (ctx.base_url is Janus's HTTP API URL)."""
    link = JanusLink(ctx.base_url)
    await link.start()
    ctx.janus = link


class JanusSubscriberBot(SubscriberBot):
    """A SubscriberBot whose latency comes from the publisher's send log."""

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self._plain: tuple[bytes, bytes | None] = (b"", None)  # last decrypted packet

    def _new_stream(self, t: ReceivedTrack, track_id: str) -> ReceiveStream:
        log = self.ctx.send_log(track_id)
        # abs-send-time id 0: Janus's own stamp on this leg is its send time, not ours
        return LoggedStream(log, t.ssrc, t.rtx_ssrc, t.kind, t.clock_rate, t.mid, 0,
                            self.hist, self.ctx.tracker, self._send_nack)

    def _on_rtp(self, data: bytes, arrival_ns: int) -> None:
        st = self.streams.get(int.from_bytes(data[8:12], "big"))
        if isinstance(st, LoggedStream) and st.needs_anchor:
            plain = self._decrypt(data)
            if plain is not None:
                try:
                    st.anchor(data[2] << 8 | data[3], plain[payload_offset(plain):],
                              arrival_ns)
                except ValueError:
                    pass
        super()._on_rtp(data, arrival_ns)

    def _decrypt(self, data: bytes) -> bytes | None:
        # SRTP refuses a replayed packet: decrypt each one once, even when the anchor
        # above and the join check both want it.
        if self._plain[0] is data:
            return self._plain[1]
        plain = super()._decrypt(data)
        self._plain = (data, plain)
        return plain


class JanusBotSession:
    """One participant in a Janus VideoRoom: the counterpart of benchmarks.bots.BotSession."""

    write_candidates = True

    def __init__(self, ctx: BotContext, spec: BotSpec) -> None:
        self.ctx = ctx
        self.spec = spec
        self.room_id = int(json.loads(spec.token)["room"])
        self.publisher: PublisherBot | None = None
        self.subscriber: SubscriberBot | None = (
            JanusSubscriberBot(self) if spec.subscribe and not spec.aux_subscriber else None)
        self.opened_at = 0.0
        self.close_code: int | None = None
        self.close_reason = ""
        self._pub: JanusPublisher | None = None
        self._sub: JanusSubscriber | None = None
        self._stopped = False

    @property
    def link(self) -> JanusLink:
        assert self.ctx.janus is not None, "open_link() first"
        return self.ctx.janus

    @property
    def closed(self) -> bool:
        """Janus hung up one of our PeerConnections (what a closed WebSocket is for ours)."""
        for part in (self._pub, self._sub):
            if part is not None and part.handle is not None and \
                    part.handle.hangup_reason is not None:
                self.close_reason = f"Janus hangup: {part.handle.hangup_reason}"
                return True
        return False

    async def start(self) -> None:
        self.opened_at = time.time()
        if self.spec.publish:
            self.publisher = PublisherBot(self, self.ctx.publisher_media(self.spec.sender_id))  # type: ignore[arg-type]
            log = SendLog(log_path(self.ctx.run_id, self.spec.name), create=True)
            self.publisher.send_log = self.ctx.send_logs[self.spec.name] = log
            await self.publisher.start()
        if self.subscriber is not None:
            # Janus lists a publisher once its PeerConnection is up, which may be a moment after
            # the publishing bot (another process) said it published: ask again for a while
            deadline = time.monotonic() + PUBLISHER_WAIT
            while True:
                feeds = [(f, d) for f, d in await self.link.publishers(self.room_id)
                         if d != self.spec.name]
                if feeds or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            if not feeds:
                raise JanusError(None, f"room {self.room_id} has no publisher to subscribe to")
            self._sub = JanusSubscriber(self.link.session, self.room_id)
            offer = await self._sub.subscribe([f for f, _ in feeds])
            tracks = {str(s.get("mid")): str(s.get("feed_display", ""))
                      for s in self._sub.streams}
            self.subscriber.on_offer({"sdp": offer, "tracks": tracks})

    async def negotiate_publish(self, offer: str, names: dict[str, str]) -> str:
        self._pub = JanusPublisher(self.link.session, self.room_id, display=self.spec.name)
        return await self._pub.publish(offer)

    async def send_answer(self, sdp: str) -> None:
        assert self._sub is not None
        await self._sub.answer(sdp)

    async def prefer_layer(self, mid: str, track_id: str, layer: int, width: int,
                           height: int) -> None:
        """Janus's own way: the subscriber's simulcast substream for that m-line."""
        assert self._sub is not None
        await self._sub.configure_substream(mid, layer)

    def sender_of(self, track_id: str) -> int:
        """track_id: the display name of the feed (our bots' names carry the sender id)."""
        found = SENDER.search(track_id)
        return int(found.group(1)) if found else -1

    async def close(self) -> None:
        """Stop sending and receiving; the process's session destroy hangs the handles up."""
        if self._stopped:
            return
        self._stopped = True
        if self.publisher is not None:
            self.publisher.stop()
        if self.subscriber is not None:
            self.subscriber.stop()

