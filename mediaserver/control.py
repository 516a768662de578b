"""The control API between signalling and the media plane, declared once (DESIGN.md section 2).

`MediaControl` lists every call with typed params and results (the dataclasses of `params`).
Each implementation gets its methods from this one declaration (`CALLS`, read by
introspection): the in-process worker (local_control.py), the RPC client and server to a
worker process (remote_control.py) and the pool's dispatch by id (pool.py). Adding a call is
one method here and one on `Worker`.

A call's `route` names the param whose id says which worker serves it (ids carry their
worker's prefix, "w1."); `gone_ok` calls close something, and a worker that already took it
down with itself (it died, it restarted) is no error for them.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .params import (
    ConsumerInfo,
    ConsumerParams,
    MediaDump,
    PipeInfo,
    ProducerParams,
    RemoteParams,
    TransportInfo,
)

__all__ = ["CALLS", "Call", "MediaControl", "bind_calls"]


@dataclass(frozen=True)
class Call:
    name: str
    params: dict[str, Any]  # name -> type, in order
    result: Any
    route: str | None
    gone_ok: bool
    signature: inspect.Signature  # without self

    def bind(self, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by name, defaults filled in; TypeError when they do not fit."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)


def call(route: str | None = None, gone_ok: bool = False) -> Callable[[Callable], Callable]:
    def mark(method: Callable) -> Callable:
        method.__control__ = (route, gone_ok)  # type: ignore[attr-defined]
        return method

    return mark


class MediaControl:
    """Every call of the media plane. Ids are opaque strings made by the worker."""

    # ---- placement ----------------------------------------------------------------------

    @call()
    async def create_router(self, exclude: tuple[str, ...] = ()) -> str:
        """A Router (one per room or group) on the least loaded worker whose id (worker_of)
        is not in `exclude`; MediaError when there is none."""
        raise NotImplementedError

    @call(route="some_id")
    async def worker_of(self, some_id: str) -> str:
        """The id of the worker that holds the router, transport, producer... `some_id`."""
        raise NotImplementedError

    @call(route="router_id", gone_ok=True)
    async def close_router(self, router_id: str) -> None:
        raise NotImplementedError

    # ---- WebRTC transports --------------------------------------------------------------

    @call(route="router_id")
    async def create_transport(self, router_id: str) -> TransportInfo:
        raise NotImplementedError

    @call(route="transport_id")
    async def transport_info(self, transport_id: str) -> TransportInfo:
        raise NotImplementedError

    @call(route="transport_id")
    async def connect_transport(self, transport_id: str, remote: RemoteParams) -> None:
        raise NotImplementedError

    @call(route="transport_id")
    async def restart_ice(self, transport_id: str) -> TransportInfo:
        raise NotImplementedError

    @call(route="transport_id", gone_ok=True)
    async def close_transport(self, transport_id: str) -> None:
        raise NotImplementedError

    # ---- producers and consumers --------------------------------------------------------

    @call(route="transport_id")
    async def produce(self, transport_id: str, params: ProducerParams) -> str:
        raise NotImplementedError

    @call(route="producer_id")
    async def pause_producer(self, producer_id: str, paused: bool) -> None:
        """Paused: nothing is forwarded; resumed: every consumer restarts on a keyframe."""
        raise NotImplementedError

    @call(route="producer_id")
    async def request_keyframe(self, producer_id: str) -> None:
        raise NotImplementedError

    @call(route="producer_id", gone_ok=True)
    async def close_producer(self, producer_id: str) -> None:
        raise NotImplementedError

    @call(route="transport_id")
    async def consume(self, transport_id: str, producer_id: str,
                      params: ConsumerParams) -> ConsumerInfo:
        raise NotImplementedError

    @call(route="consumer_id")
    async def pause_consumer(self, consumer_id: str, paused: bool) -> None:
        raise NotImplementedError

    @call(route="consumer_id")
    async def set_preferred_layers(self, consumer_id: str, spatial: int, temporal: int) -> None:
        """Simulcast: forward encoding `spatial` (0 the lowest; the highest there is if fewer)
        from its next keyframe, which is requested. Temporal layers are not selected yet.
        No effect on a consumer of a single encoding."""
        raise NotImplementedError

    @call(route="consumer_id")
    async def set_consumer_view(self, consumer_id: str, visible: bool, width: int, height: int
                                ) -> None:
        """The subscriber's tile of this consumer: hidden (nothing is sent) or shown, and its
        size in device pixels (0: unknown), which caps the simulcast layer the bandwidth
        allocator gives it. Audio consumers ignore visibility."""
        raise NotImplementedError

    @call(route="consumer_id", gone_ok=True)
    async def close_consumer(self, consumer_id: str) -> None:
        raise NotImplementedError

    # ---- plain RTP pipes (to the recorder, between workers) -----------------------------

    @call(route="router_id")
    async def create_pipe_transport(self, router_id: str) -> PipeInfo:
        raise NotImplementedError

    @call(route="pipe_id")
    async def connect_pipe_transport(self, pipe_id: str, ip: str, port: int) -> None:
        raise NotImplementedError

    @call(route="pipe_id", gone_ok=True)
    async def close_pipe_transport(self, pipe_id: str) -> None:
        raise NotImplementedError

    @call(route="pipe_id")
    async def pipe_consume(self, pipe_id: str, producer_id: str,
                           every_encoding: bool = False) -> ProducerParams:
        """Send a producer into the pipe; the params the far side mirrors it with. A simulcast
        producer goes as one stream, or with `every_encoding` (to an edge worker) as all of
        its encodings."""
        raise NotImplementedError

    @call(route="pipe_id")
    async def pipe_produce(self, pipe_id: str, params: ProducerParams) -> str:
        """The mirror of a far producer, fed by the pipe, in the pipe's router."""
        raise NotImplementedError

    # ---- observation --------------------------------------------------------------------

    @call()
    async def stats(self) -> dict[str, int]:
        """Counter totals (they never go down) and open object counts, for /metrics."""
        raise NotImplementedError

    @call()
    async def dump(self) -> MediaDump:
        """Every open transport, producer and consumer with its counters (tests, debugging)."""
        raise NotImplementedError

    # ---- not calls: events and lifecycle, each implementation's own ---------------------

    def on_transport_closed(self, listener: Callable[[str, str], None]) -> None:
        """listener(transport_id, reason) for transports the worker closed by itself."""
        raise NotImplementedError

    def on_worker_lost(self, listener: Callable[[str], None]) -> None:
        """listener(worker id) when a worker process died (it is started again)."""

    def on_active_speaker(self, listener: Callable[[str, str | None], None]) -> None:
        """listener(router_id, producer_id or None) when a Router's active speaker changed
        (mediaserver/speaker.py: audio level with hysteresis)."""
        raise NotImplementedError

    async def start(self) -> None:
        raise NotImplementedError

    def begin_stop(self) -> None:
        """Shutting down: nothing is started again from now on."""

    async def stop(self) -> None:
        raise NotImplementedError

    def processes(self) -> list[Any]:
        """The child processes (asyncio subprocesses) of this media plane, if any."""
        return []

    # ---- several signalling nodes on one host (signaling/cluster.py) --------------------

    def addresses(self) -> dict[str, str]:
        """worker id -> where other nodes reach its control API (none in-process)."""
        return {}

    def reaches(self, some_id: str) -> bool:
        """Whether calls about `some_id` can be routed from here."""
        return True

    async def attach(self, worker: str, address: str) -> None:
        """Route calls about ids of `worker` (another node's) to `address`."""
        raise NotImplementedError


def _declared() -> dict[str, Call]:
    calls = {}
    for name, method in vars(MediaControl).items():
        marks = getattr(method, "__control__", None)
        if marks is None:
            continue
        hints = typing.get_type_hints(method)
        signature = inspect.signature(method)
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])
        calls[name] = Call(name, {p: hints[p] for p in signature.parameters},
                           hints["return"], marks[0], marks[1], signature)
    return calls


CALLS: dict[str, Call] = _declared()


def bind_calls(cls: type, make: Callable[[Call], Callable]) -> type:
    """Give `cls` a method for every call it does not define itself, made by `make`."""
    for c in CALLS.values():
        if c.name not in vars(cls):
            method = make(c)
            method.__name__ = method.__qualname__ = c.name
            method.__doc__ = getattr(MediaControl, c.name).__doc__
            setattr(cls, c.name, method)
    return cls
