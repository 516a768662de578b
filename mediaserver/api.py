"""Control API between signalling and the media plane (DESIGN.md section 2).

Async calls taking and returning the plain dataclasses of `params`, so that the in-process
implementation here and a later RPC to a worker process have the same surface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .params import ConsumerInfo, ConsumerParams, ProducerParams, RemoteParams, TransportInfo
from .stats import worker_stats
from .worker import CONSENT_EXPIRED, MediaError, Worker

__all__ = ["CONSENT_EXPIRED", "MediaControl", "LocalMediaControl", "MediaError"]


class MediaControl(Protocol):
    async def create_router(self) -> str: ...
    async def close_router(self, router_id: str) -> None: ...
    async def create_transport(self, router_id: str) -> TransportInfo: ...
    async def transport_info(self, transport_id: str) -> TransportInfo: ...
    async def connect_transport(self, transport_id: str, remote: RemoteParams) -> None: ...
    async def restart_ice(self, transport_id: str) -> TransportInfo: ...
    async def close_transport(self, transport_id: str) -> None: ...
    async def produce(self, transport_id: str, params: ProducerParams) -> str: ...
    async def close_producer(self, producer_id: str) -> None: ...
    async def pause_producer(self, producer_id: str, paused: bool) -> None: ...
    async def consume(self, transport_id: str, producer_id: str,
                      params: ConsumerParams) -> ConsumerInfo: ...
    async def pause_consumer(self, consumer_id: str, paused: bool) -> None: ...
    async def close_consumer(self, consumer_id: str) -> None: ...
    async def request_keyframe(self, producer_id: str) -> None: ...
    async def create_pipe_transport(self, router_id: str) -> dict[str, Any]: ...
    async def connect_pipe_transport(self, pipe_id: str, ip: str, port: int) -> None: ...
    async def close_pipe_transport(self, pipe_id: str) -> None: ...
    async def pipe_consume(self, pipe_id: str, producer_id: str) -> ProducerParams: ...
    async def pipe_produce(self, pipe_id: str, params: ProducerParams) -> str: ...
    async def stats(self) -> dict[str, int]: ...
    def on_transport_closed(self, listener: Callable[[str, str], None]) -> None: ...


class LocalMediaControl:
    """The embedded default: the Worker runs in the signalling process's event loop."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def create_router(self) -> str:
        return self.worker.create_router()

    async def close_router(self, router_id: str) -> None:
        self.worker.close_router(router_id)

    async def create_transport(self, router_id: str) -> TransportInfo:
        return self.worker.create_transport(router_id)

    async def transport_info(self, transport_id: str) -> TransportInfo:
        return self.worker.transport_info(transport_id)

    async def connect_transport(self, transport_id: str, remote: RemoteParams) -> None:
        self.worker.connect_transport(transport_id, remote)

    async def restart_ice(self, transport_id: str) -> TransportInfo:
        return self.worker.restart_ice(transport_id)

    async def close_transport(self, transport_id: str) -> None:
        self.worker.close_transport(transport_id)

    async def produce(self, transport_id: str, params: ProducerParams) -> str:
        return self.worker.produce(transport_id, params)

    async def close_producer(self, producer_id: str) -> None:
        self.worker.close_producer(producer_id)

    async def pause_producer(self, producer_id: str, paused: bool) -> None:
        self.worker.set_producer_paused(producer_id, paused)

    async def consume(self, transport_id: str, producer_id: str,
                      params: ConsumerParams) -> ConsumerInfo:
        return self.worker.consume(transport_id, producer_id, params)

    async def pause_consumer(self, consumer_id: str, paused: bool) -> None:
        self.worker.set_consumer_paused(consumer_id, paused)

    async def close_consumer(self, consumer_id: str) -> None:
        self.worker.close_consumer(consumer_id)

    async def request_keyframe(self, producer_id: str) -> None:
        self.worker.request_keyframe(producer_id)

    async def create_pipe_transport(self, router_id: str) -> dict[str, Any]:
        return await self.worker.create_pipe_transport(router_id)

    async def connect_pipe_transport(self, pipe_id: str, ip: str, port: int) -> None:
        self.worker.connect_pipe_transport(pipe_id, ip, port)

    async def close_pipe_transport(self, pipe_id: str) -> None:
        self.worker.close_pipe_transport(pipe_id)

    async def pipe_consume(self, pipe_id: str, producer_id: str) -> ProducerParams:
        return self.worker.pipe_consume(pipe_id, producer_id)

    async def pipe_produce(self, pipe_id: str, params: ProducerParams) -> str:
        return self.worker.pipe_produce(pipe_id, params)

    async def stats(self) -> dict[str, int]:
        return worker_stats(self.worker)

    def on_transport_closed(self, listener: Callable[[str, str], None]) -> None:
        self.worker.transport_closed_listeners.append(listener)
