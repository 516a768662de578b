"""The control API in-process: the embedded default (one Worker in the signalling process's
event loop), and what a worker process serves over RPC (remote_control.py).

Every call is the Worker's method of the same name (control.py declares them); the Worker's
are synchronous except where they wait for a socket (a pipe's).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .control import Call, MediaControl, bind_calls
from .worker import Worker


def _local(call: Call) -> Callable:
    async def method(self: LocalMediaControl, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.worker, call.name)(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    return method


class LocalMediaControl(MediaControl):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def on_transport_closed(self, listener: Callable[[str, str], None]) -> None:
        self.worker.transport_closed_listeners.append(listener)

    def on_active_speaker(self, listener: Callable[[str, str | None], None]) -> None:
        self.worker.speakers.listeners.append(listener)

    async def start(self) -> None:
        await self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()


bind_calls(LocalMediaControl, _local)
