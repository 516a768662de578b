"""The control API across a process border: a worker process serves its LocalMediaControl
(`serve_control`), the signalling process calls it through RemoteMediaControl. Both follow
from the declaration in control.py: params are decoded by their declared types (wire.py), so
a call the declaration does not allow never reaches the worker.

Events pushed by the worker: {"event": "transportClosed", "transportId", "reason"},
{"event": "activeSpeaker", "routerId", "producerId" (or null)}.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from . import wire
from .control import CALLS, Call, MediaControl, bind_calls
from .params import MediaError
from .rpc import BadRequest, RpcClient, RpcError, RpcServer


async def serve_control(control: MediaControl, path: str) -> asyncio.AbstractServer:
    return await control_server(control).serve(path)


def control_server(control: MediaControl) -> RpcServer:
    async def handle(method: str, params: dict[str, Any]) -> Any:
        call = CALLS.get(method)
        if call is None:
            raise BadRequest(f"unknown method {method[:64]!r}")
        try:
            # Decoding builds the params dataclasses, whose checks refuse out-of-range values
            # (ParamsError); the caller's call fails with MediaError, under its own id.
            args = {name: wire.decode(call.params[name], value) for name, value in params.items()
                    if name in call.params}
            call.bind((), args)
            if params.keys() - call.params.keys():
                raise TypeError(f"{method} takes {', '.join(call.params) or 'no params'}")
        except (TypeError, ValueError) as exc:
            raise BadRequest(str(exc)) from None
        return wire.encode(await getattr(control, method)(**args))

    server = RpcServer(handle, lambda exc: "media" if isinstance(exc, MediaError) else None)
    control.on_transport_closed(lambda transport_id, reason: server.push(
        {"event": "transportClosed", "transportId": transport_id, "reason": reason}))
    control.on_active_speaker(lambda router_id, producer_id: server.push(
        {"event": "activeSpeaker", "routerId": router_id, "producerId": producer_id}))
    return server


# the worker is gone (exited, crashed, restarting): no answer came or can come
LINK_ERRORS = {"not_connected": "media worker not connected",
               "lost": "media worker connection lost"}


def _remote(call: Call) -> Callable:
    async def method(self: RemoteMediaControl, *args: Any, **kwargs: Any) -> Any:
        params = wire.encode(call.bind(args, kwargs))
        try:
            result = await self.rpc.call(call.name, params)
        except RpcError as exc:
            raise MediaError(LINK_ERRORS.get(exc.type, str(exc))) from None
        return wire.decode(call.result, result)

    return method


class RemoteMediaControl(MediaControl):
    """The control API of one worker process, through its RPC socket."""

    def __init__(self, on_transport_closed: Callable[[str, str], None],
                 on_active_speaker: Callable[[str, str | None], None] | None = None) -> None:
        self._closed = on_transport_closed
        self._speaker_listeners = [on_active_speaker] if on_active_speaker else []
        self.rpc = RpcClient(self._on_event)

    def on_active_speaker(self, listener: Callable[[str, str | None], None]) -> None:
        self._speaker_listeners.append(listener)

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "transportClosed":
            self._closed(event["transportId"], event["reason"])
        elif event.get("event") == "activeSpeaker":
            for listener in self._speaker_listeners:
                listener(event["routerId"], event["producerId"])


bind_calls(RemoteMediaControl, _remote)
