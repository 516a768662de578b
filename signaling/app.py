"""The aiohttp application: wires the store, the media worker, rooms and the endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from mediaserver.api import (
    CLOSED_BY_SIGNALLING,
    CONSENT_EXPIRED,
    MediaConfig,
    MediaControl,
    MediaError,
    open_media,
)

from . import analytics_api, speaking, websocket
from .cluster import Cluster, same_worker, worker_prefix
from .cluster_sync import RoomSync
from .config import ServerConfig
from .http_api import add_routes
from .metrics import MediaCollector, metrics_handler
from .participant import Participant
from .placement import Placement
from .recordings import Recordings
from .rooms import Room, RoomRegistry
from .state import STATE, AppState
from .store import SqliteStore, Store
from .store_redis import RedisStore
from .webhooks import Webhooks

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SHUTDOWN_RESERVE = 2.0  # of that, what the recorder does not get: its exit, workers, HTTP
SESSIONS_CLOSE_WAIT = 1.0  # for the sessions' cleanup; their clients were told at once
# WebSocket close code and reason of a shutdown: come back at once (through the load balancer,
# to another node); the web client joins again (docs/protocol.md, "WebSocket")
COME_BACK, DRAINING = 4503, "server_draining"
NODE_EXPIRED = "node_expired"  # with COME_BACK: we were frozen past our TTL, the session ended
# refused with 503 once a shutdown began, so that a load balancer sends no one here any more
DRAIN_REFUSED = ("/ws", "/api/health")
# why a stopping worker closes transports (worker.py, router.py): media to build again elsewhere
MEDIA_ENDED = ("worker stopped", "router closed")


def media_config(config: ServerConfig) -> MediaConfig:
    return MediaConfig(host=config.rtc_host or config.host, port=config.rtc_port,
                       ice_tcp=config.ice_tcp, tcp_port=config.rtc_tcp_port,
                       announced_ip=config.announced_ip,
                       consent_timeout=config.ice_consent_timeout)


def make_app(config: ServerConfig) -> web.Application:
    """Of `config.shutdown_timeout`, how long SIGTERM/SIGINT may take, the recorder gets all
    but SHUTDOWN_RESERVE to finalize recordings."""
    app = web.Application(client_max_size=64 * 1024, middlewares=[_refuse_while_draining])
    store: Store
    if config.store.startswith(("redis://", "rediss://")):
        store = RedisStore(config.store)
    else:
        store = SqliteStore(config.data_dir / "mediaserver.sqlite3")
    cluster: Cluster | None = None
    clustered = bool(config.workers and isinstance(store, RedisStore) and config.node)
    media: MediaControl = open_media(media_config(config), config.workers,
                                     node=config.node if clustered else "")
    if clustered:
        # several signalling nodes on one Redis: rooms, events and workers are shared
        cluster = Cluster(config.store, media, node=config.node, ttl=config.node_ttl,
                          grace=config.grace_period)
    spread = config.subscribers_per_worker if config.workers > 1 and cluster is None else 0
    secret = config.effective_jwt_secret
    recordings = Recordings(store, media, config.data_dir / "recordings", secret,
                            Webhooks(config.webhook_url, config.webhook_secret or secret))
    recordings.shared = cluster  # one recording per room, whichever node runs it
    rooms = RoomRegistry(store, Placement(media, spread, cluster),
                         RoomSync(cluster) if cluster is not None else None, recordings)
    state = AppState(config, store, media, rooms, recordings)
    app[STATE] = state
    analytics_api.install(app)  # the event log, its routes (docs/analytics.md)

    collector = MediaCollector(lambda: len(state.rooms.rooms),
                               lambda: state.rooms.participant_count)
    registry = CollectorRegistry()
    registry.register(collector)
    app.router.add_get("/metrics", metrics_handler(registry, collector, media))
    app.router.add_get("/ws", websocket.handle)
    add_routes(app, config.web_root)
    app.cleanup_ctx.append(_lifecycle)
    app.on_startup.append(_finish_unfinished)  # after _lifecycle's start: the store is open
    app.on_shutdown.append(_shutdown)
    recordings.link.stop_seconds = max(0.0, config.shutdown_timeout - SHUTDOWN_RESERVE)
    return app


def begin_shutdown(app: web.Application) -> None:
    """The first thing SIGTERM or SIGINT does, before anything else can happen: from now on
    no child process is started again, whatever exits (systemd signals all of them at once)."""
    state: AppState = app[STATE]
    state.draining = True
    state.media.begin_stop()
    state.recordings.link.begin_stop()


@web.middleware
async def _refuse_while_draining(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No new session once a shutdown began (a request already on a kept-alive connection)."""
    if request.app[STATE].draining and request.path in DRAIN_REFUSED:
        return web.json_response({"error": {"code": DRAINING, "message": "this node is "
                                            "shutting down: connect again"}},
                                 status=503, headers={"Retry-After": "1"})
    return await handler(request)


def tell_to_move(participant: Participant) -> None:
    """Close the participant's socket with COME_BACK/DRAINING now, before its cleanup (which
    may take longer than SESSIONS_CLOSE_WAIT on a busy host, while the recorder finalizes):
    its close() then finds the callback used. As in media_lost, the socket's end keeps the
    place (websocket.py suspends, never closes): only _shutdown closes it, once."""
    participant.keep_place = True
    callback, participant.on_closed = participant.on_closed, None
    if callback is not None:
        callback(DRAINING, COME_BACK)


def kill_children(app: web.Application) -> None:
    """The watchdog's last resort (cli.py): SIGKILL every child process, even one stopped or
    stuck, which a SIGTERM from its parent's death would never end."""
    state: AppState = app[STATE]
    processes = [state.recordings.link.process, *state.media.processes()]
    for process in processes:
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()


async def _shutdown(app: web.Application) -> None:
    """Before the HTTP side waits for its handlers (WebSockets are open handlers): the recorder
    finalizes every running recording (within its stop_seconds), every client is told to come
    back elsewhere (4503 "server_draining"), then every session is closed (with several nodes
    the others see them leave). The workers and the store go after, in _lifecycle.
    docs/operations.md, "Stopping and restarting"."""
    state: AppState = app[STATE]
    begin_shutdown(app)
    recordings = state.recordings.stop_process()  # takes the running recordings first
    # connected sessions and those waiting out their grace period
    present = {p for room in state.rooms.rooms.values() for p in room.participants.values()}
    everyone = list(state.sessions | present)
    for participant in everyone:
        tell_to_move(participant)
    # with other nodes, each comes back through one of them and resumes there (same id,
    # nobody sees a leave); a survivor ends those who don't after the grace period
    state.handed_over = state.rooms.cluster is not None and bool(present)

    async def close_sessions() -> None:
        for participant in everyone:
            try:
                await participant.close(DRAINING, code=COME_BACK,
                                        handed_over=state.handed_over)
            except MediaError as exc:  # its media went with a worker already gone: no error
                log.info("closing %s: %s", participant.id, exc)
            except Exception:
                log.exception("error closing %s", participant.id)

    try:
        await asyncio.wait_for(close_sessions(), SESSIONS_CLOSE_WAIT)
    except TimeoutError:
        log.warning("shutdown: sessions still closing after %.1f s", SESSIONS_CLOSE_WAIT)
    await recordings


async def _ended_while_frozen(state: AppState) -> None:
    """We were frozen past our TTL and the grace period: a survivor ended our participants
    (the others saw them leave, their tracks stopped). Those still connected here are asked
    to come back (4503 "node_expired"), and join afresh; those it did not end stay."""
    cluster = state.rooms.cluster
    assert cluster is not None
    for room in list(state.rooms.rooms.values()):
        ours = await cluster.ours(room.name)
        for participant in list(room.participants.values()):
            if participant.joined and participant.id not in ours:
                # (handed_over: their leave was announced by whoever ended them)
                await participant.close(NODE_EXPIRED, code=COME_BACK, handed_over=True)


async def _finish_unfinished(app: web.Application) -> None:
    await app[STATE].recordings.finish_unfinished()


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    state: AppState = app[STATE]
    await state.store.open()
    await state.media.start()
    if state.rooms.cluster is not None:
        await state.rooms.cluster.start()
    if state.rooms.sync is not None:  # another node takes one of ours over (a resume there)
        state.rooms.sync.let_go = lambda participant: participant.close(
            "replaced by a newer session", handed_over=True)

    def on_transport_closed(transport_id: str, reason: str) -> None:
        if reason == CLOSED_BY_SIGNALLING:
            return  # we closed it ourselves (leave, move to a group)
        for participant in list(state.sessions):
            if not (participant.owns_transport(transport_id) and participant.joined):
                continue
            if reason == CONSENT_EXPIRED:
                # A connection that was up went silent (the worker never expires one that
                # has not connected yet): the client comes back and keeps its place.
                participant.media_lost()
            elif reason in MEDIA_ENDED:  # e.g. another node's worker, ending with its node
                cluster, room = state.rooms.cluster, participant.room
                origin = room is not None and participant.group is None and \
                    same_worker(room.router_id, transport_id)  # the main group's media
                if cluster is not None and origin:
                    cluster.router_gone(room.router_id, transport_id)
                prefix = worker_prefix(transport_id)
                if origin and not state.draining:
                    # the room's Router or its worker is gone (another node stopping): the
                    # room moves now, in place, not at our next look at the registry
                    if reason == MEDIA_ENDED[0] and prefix not in state.media.addresses():
                        on_worker_lost(prefix)  # every room of ours on it
                    else:
                        on_worker_lost(prefix, room)
                    continue
                asyncio.ensure_future(participant.close("media_restart", code=4503))
            else:  # DTLS failed: the peer cannot do media with us; end with the reason
                asyncio.ensure_future(participant.close(f"media transport closed: {reason}"))

    state.media.on_transport_closed(on_transport_closed)

    def on_worker_lost(prefix: str, only: Room | None = None) -> None:
        # A media worker died (or its node stopped): its rooms move to live workers and
        # their participants get new connections in place (rooms.py); members of a breakout
        # group whose Router was there are asked to come back (4503).
        if state.draining:
            return  # everyone is being told to come back through another node
        cluster = state.rooms.cluster
        for room in state.rooms.rooms.values():  # the placement too: never that Router again
            if cluster is not None and room.router_id.startswith(prefix) and \
                    only in (None, room):
                cluster.router_gone(room.router_id, room.router_id)

        async def move() -> None:
            for participant in await state.rooms.worker_lost(prefix, only):
                await participant.close("media_restart", code=4503)

        asyncio.ensure_future(move())

    state.media.on_worker_lost(on_worker_lost)
    if state.rooms.cluster is not None:  # another node died: its workers with it
        state.rooms.cluster.liveness.on_node_lost(
            lambda prefixes: [on_worker_lost(prefix) for prefix in prefixes])
        state.rooms.cluster.liveness.on_expired(
            lambda: asyncio.ensure_future(_ended_while_frozen(state)))
    state.media.on_active_speaker(lambda router_id, producer_id: speaking.on_active_speaker(
        state.rooms, state.recordings, router_id, producer_id))
    yield
    # _shutdown has run: sessions closed, recordings finalized, the recorder gone
    if state.rooms.cluster is not None:
        await state.rooms.cluster.stop(state.handed_over)
    await state.media.stop()
    await state.store.close()
