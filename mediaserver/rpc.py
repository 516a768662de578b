"""Control API over a Unix socket: the same calls as `api.MediaControl`, for worker processes.

JSON lines in both directions: requests `{"id", "method", "params"}`, replies `{"id",
"result"}` or `{"id", "error"}`, and events `{"event", ...}` pushed by the worker (a transport
closed by ICE consent or DTLS failure). Control calls are rare next to packets, so JSON over a
local socket costs nothing that matters.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Callable
from typing import Any

from . import wire
from .api import LocalMediaControl
from .params import ConsumerInfo, ConsumerParams, ProducerParams, RemoteParams, TransportInfo
from .worker import MediaError

log = logging.getLogger(__name__)

MAX_LINE = 1 << 20


def _typed(kind: type) -> Callable[[Any], Any]:
    """A decoder that takes a JSON value of exactly this type (no bool for int)."""

    def decode(value: Any) -> Any:
        if type(value) is not kind:
            raise TypeError(f"expected {kind.__name__}, not {type(value).__name__}")
        return value

    return decode


STR, BOOL, INT = _typed(str), _typed(bool), _typed(int)

# method -> how to decode its params from JSON (name -> decoder), and how to encode its result
ARGS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "create_router": {},
    "close_router": {"router_id": STR},
    "create_transport": {"router_id": STR},
    "transport_info": {"transport_id": STR},
    "connect_transport": {"transport_id": STR, "remote": wire.remote_params},
    "restart_ice": {"transport_id": STR},
    "close_transport": {"transport_id": STR},
    "produce": {"transport_id": STR, "params": wire.producer_params},
    "close_producer": {"producer_id": STR},
    "pause_producer": {"producer_id": STR, "paused": BOOL},
    "consume": {"transport_id": STR, "producer_id": STR, "params": wire.consumer_params},
    "pause_consumer": {"consumer_id": STR, "paused": BOOL},
    "close_consumer": {"consumer_id": STR},
    "request_keyframe": {"producer_id": STR},
    "stats": {},
    "create_pipe_transport": {"router_id": STR},
    "connect_pipe_transport": {"pipe_id": STR, "ip": STR, "port": INT},
    "close_pipe_transport": {"pipe_id": STR},
    "pipe_consume": {"pipe_id": STR, "producer_id": STR},
    "pipe_produce": {"pipe_id": STR, "params": wire.producer_params},
}


class RpcServer:
    """Serves one worker's LocalMediaControl to the signalling process."""

    def __init__(self, control: LocalMediaControl) -> None:
        self.control = control
        self._writers: set[asyncio.StreamWriter] = set()
        control.on_transport_closed(self._transport_closed)

    async def serve(self, path: str) -> asyncio.AbstractServer:
        return await asyncio.start_unix_server(self._client, path=path, limit=MAX_LINE)

    def _transport_closed(self, transport_id: str, reason: str) -> None:
        self._push({"event": "transportClosed", "transportId": transport_id, "reason": reason})

    def _push(self, message: dict[str, Any]) -> None:
        line = (json.dumps(message) + "\n").encode()
        for writer in list(self._writers):
            writer.write(line)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while line := await reader.readline():
                reply = await self._handle(line)
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        except asyncio.CancelledError:
            # The worker is shutting down (Ctrl-C reaches it too): the connection ends with it.
            # Re-raised, asyncio would log the cancelled handler as an error.
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _handle(self, line: bytes) -> dict[str, Any]:
        request_id = None
        try:
            request = json.loads(line)
            request_id, method = request["id"], request["method"]
            decoders = ARGS[method]
            # Decoding builds the params dataclasses, whose checks refuse out-of-range values
            # (ParamsError): the caller's call fails with MediaError, under its own id.
            params = {k: decoders[k](v) for k, v in request.get("params", {}).items()}
            if params.keys() != decoders.keys():
                raise TypeError(f"{method} takes {', '.join(decoders) or 'no params'}")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if not isinstance(request_id, (int, str)):
                request_id = None
            return {"id": request_id, "error": {"type": "bad_request", "message": str(exc)}}
        try:
            result = await getattr(self.control, method)(**params)
        except MediaError as exc:
            return {"id": request_id, "error": {"type": "media", "message": str(exc)}}
        except Exception as exc:  # reported to the caller; the worker keeps serving
            log.exception("control call %s failed", method)
            return {"id": request_id, "error": {"type": "internal", "message": str(exc)}}
        return {"id": request_id, "result": wire.encode(result)}


class RpcClient:
    def __init__(self, on_event: Callable[[dict[str, Any]], None]) -> None:
        self._on_event = on_event
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None

    async def connect(self, path: str) -> None:
        reader, self._writer = await asyncio.open_unix_connection(path, limit=MAX_LINE)
        self._reader_task = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                message = json.loads(line)
                if "event" in message:
                    self._on_event(message)
                    continue
                fut = self._pending.pop(message.get("id"), None)
                if fut is not None and not fut.done():
                    fut.set_result(message)
        except (ConnectionError, ValueError):
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(MediaError("media worker connection lost"))
            self._pending.clear()

    async def call(self, method: str, **params: Any) -> Any:
        if self._writer is None or self._writer.is_closing() or \
                self._reader_task is None or self._reader_task.done():
            # the worker hung up (exited, crashed): no reply can come; waiting would be for ever
            raise MediaError("media worker not connected")
        request_id = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        self._writer.write((json.dumps({"id": request_id, "method": method,
                                        "params": wire.encode(params)}) + "\n").encode())
        reply = await fut
        if "error" in reply:
            raise MediaError(reply["error"]["message"])
        return reply["result"]

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()


class RemoteMediaControl:
    """MediaControl of one worker process, through its RPC socket."""

    def __init__(self, client: RpcClient) -> None:
        self.rpc = client

    async def create_router(self) -> str:
        return await self.rpc.call("create_router")

    async def close_router(self, router_id: str) -> None:
        await self.rpc.call("close_router", router_id=router_id)

    async def create_transport(self, router_id: str) -> TransportInfo:
        return wire.transport_info(await self.rpc.call("create_transport", router_id=router_id))

    async def transport_info(self, transport_id: str) -> TransportInfo:
        return wire.transport_info(await self.rpc.call("transport_info",
                                                       transport_id=transport_id))

    async def connect_transport(self, transport_id: str, remote: RemoteParams) -> None:
        await self.rpc.call("connect_transport", transport_id=transport_id, remote=remote)

    async def restart_ice(self, transport_id: str) -> TransportInfo:
        return wire.transport_info(await self.rpc.call("restart_ice", transport_id=transport_id))

    async def close_transport(self, transport_id: str) -> None:
        await self.rpc.call("close_transport", transport_id=transport_id)

    async def produce(self, transport_id: str, params: ProducerParams) -> str:
        return await self.rpc.call("produce", transport_id=transport_id, params=params)

    async def close_producer(self, producer_id: str) -> None:
        await self.rpc.call("close_producer", producer_id=producer_id)

    async def pause_producer(self, producer_id: str, paused: bool) -> None:
        await self.rpc.call("pause_producer", producer_id=producer_id, paused=paused)

    async def consume(self, transport_id: str, producer_id: str,
                      params: ConsumerParams) -> ConsumerInfo:
        return wire.consumer_info(await self.rpc.call(
            "consume", transport_id=transport_id, producer_id=producer_id, params=params))

    async def pause_consumer(self, consumer_id: str, paused: bool) -> None:
        await self.rpc.call("pause_consumer", consumer_id=consumer_id, paused=paused)

    async def close_consumer(self, consumer_id: str) -> None:
        await self.rpc.call("close_consumer", consumer_id=consumer_id)

    async def request_keyframe(self, producer_id: str) -> None:
        await self.rpc.call("request_keyframe", producer_id=producer_id)

    async def stats(self) -> dict[str, int]:
        return await self.rpc.call("stats")

    async def create_pipe_transport(self, router_id: str) -> dict[str, Any]:
        return await self.rpc.call("create_pipe_transport", router_id=router_id)

    async def connect_pipe_transport(self, pipe_id: str, ip: str, port: int) -> None:
        await self.rpc.call("connect_pipe_transport", pipe_id=pipe_id, ip=ip, port=port)

    async def close_pipe_transport(self, pipe_id: str) -> None:
        await self.rpc.call("close_pipe_transport", pipe_id=pipe_id)

    async def pipe_consume(self, pipe_id: str, producer_id: str) -> ProducerParams:
        return wire.producer_params(await self.rpc.call(
            "pipe_consume", pipe_id=pipe_id, producer_id=producer_id))

    async def pipe_produce(self, pipe_id: str, params: ProducerParams) -> str:
        return await self.rpc.call("pipe_produce", pipe_id=pipe_id, params=params)

