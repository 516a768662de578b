"""WorkerPool: several media worker processes behind one MediaControl (DESIGN.md section 7).

One process per core, each with its own UDP port and its own event loop. Every id a worker
makes starts with its prefix ("w1."), its worker id, so calls are routed by the id their
declaration names (control.py); new routers go to the least loaded worker. A worker that
dies is started again on the same port, and listeners are told which prefix was lost so
signalling can ask its clients to reconnect; once the server is shutting down (begin_stop)
nothing is started again.

Workers run in sessions of their own: a signal to the server's process group (Ctrl-C) reaches
the server alone, which stops them; they leave by themselves if the server dies
(lifetime.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import MediaConfig
from .control import Call, MediaControl, bind_calls
from .lifetime import end_process, stopping_within
from .params import MediaDump, MediaError, TransportInfo
from .remote_control import RemoteMediaControl

log = logging.getLogger(__name__)

RESTART_DELAY = 0.5
STOP_WAIT = 0.5  # seconds a worker gets to exit after SIGTERM before SIGKILL


@dataclass
class WorkerHandle:
    index: int
    port: int
    rpc_path: str
    process: asyncio.subprocess.Process | None = None
    control: RemoteMediaControl | None = None
    transports: set[str] = field(default_factory=set)
    routers: set[str] = field(default_factory=set)
    restarts: int = 0

    node: str = ""  # the signalling node owning the pool: ids stay unique across nodes

    @property
    def prefix(self) -> str:
        return f"{self.node}w{self.index}."

    @property
    def load(self) -> int:
        return len(self.transports) + 4 * len(self.routers)


class WorkerPool(MediaControl):
    def __init__(self, config: MediaConfig, count: int, node: str = "") -> None:
        if count < 1:
            raise ValueError("a pool needs at least one worker")
        self.config = config
        self._dir = tempfile.mkdtemp(prefix="mediaserver-rpc-")
        self.workers = [WorkerHandle(i, config.port + i if config.port else 0,
                                     os.path.join(self._dir, f"w{i}.sock"), node=node)
                        for i in range(count)]
        # workers of other signalling nodes (same host), reached through their RPC sockets
        self.remote: dict[str, RemoteMediaControl] = {}
        self._closed_listeners: list[Callable[[str, str], None]] = []
        self._lost_listeners: list[Callable[[str], None]] = []
        self._speaker_listeners: list[Callable[[str, str | None], None]] = []
        self._watchers: list[asyncio.Task] = []
        self._stopping = asyncio.Event()

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.gather(*(self._spawn(w) for w in self.workers))
        self._watchers = [asyncio.create_task(self._watch(w)) for w in self.workers]

    async def _spawn(self, w: WorkerHandle) -> None:
        if os.path.exists(w.rpc_path):
            os.unlink(w.rpc_path)
        w.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mediaserver.worker_main", "--host", self.config.host,
            "--port", str(w.port), "--announced-ip", self.config.announced_ip,
            "--rpc", w.rpc_path, "--index", str(w.index), "--prefix", w.prefix,
            "--parent", str(os.getpid()),
            "--consent-timeout", str(self.config.consent_timeout), *self._tcp_args(w),
            stdout=asyncio.subprocess.PIPE, start_new_session=True)
        assert w.process.stdout is not None
        line = await asyncio.wait_for(w.process.stdout.readline(), 30)
        if not line.startswith(b"ready"):
            raise RuntimeError(f"media worker {w.index} failed to start")
        w.port = int(line.split()[1])
        control = RemoteMediaControl(lambda transport_id, reason, w=w:
                                     self._transport_closed(w, transport_id, reason),
                                     self._active_speaker)
        await control.rpc.connect(w.rpc_path)
        w.control = control
        w.transports.clear()
        w.routers.clear()

    def _tcp_args(self, w: WorkerHandle) -> list[str]:
        """ICE-TCP: off, or worker i on tcp_port + i (default: its UDP port's number)."""
        if not self.config.ice_tcp:
            return ["--no-ice-tcp"]
        if self.config.tcp_port:
            return ["--tcp-port", str(self.config.tcp_port + w.index)]
        return [] if self.config.tcp_port is None else ["--tcp-port", "0"]

    async def _watch(self, w: WorkerHandle) -> None:
        while not self._stopping.is_set():
            assert w.process is not None
            code = await w.process.wait()
            if w.control is not None:  # calls fail at once now: none waits on a dead socket
                await w.control.rpc.close()
            w.control = None
            # A worker ending as the server shuts down is no crash: systemd signals every
            # process of the service at once, and the worker may see it first.
            if await stopping_within(self._stopping, RESTART_DELAY):
                return
            log.error("media worker %d exited with %s; restarting", w.index, code)
            for listener in self._lost_listeners:
                listener(w.prefix)
            w.restarts += 1
            try:
                await self._spawn(w)
            except (TimeoutError, RuntimeError, OSError):
                log.exception("media worker %d did not come back", w.index)

    def begin_stop(self) -> None:
        """Shutting down: from now on no worker is started again, whatever exits."""
        self._stopping.set()

    async def stop(self) -> None:
        """Every worker ends, all at once: SIGTERM, SIGKILL after STOP_WAIT."""
        self.begin_stop()
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)  # no spawn under way
        for remote in self.remote.values():
            await remote.rpc.close()
        for w in self.workers:
            if w.control is not None:
                await w.control.rpc.close()
        await asyncio.gather(*(end_process(w.process, STOP_WAIT) for w in self.workers
                               if w.process is not None))
        shutil.rmtree(self._dir, ignore_errors=True)  # the RPC sockets' private directory

    def processes(self) -> list[Any]:
        return [w.process for w in self.workers if w.process is not None]

    def _transport_closed(self, w: WorkerHandle | None, transport_id: str, reason: str) -> None:
        if w is not None:
            w.transports.discard(transport_id)
        for listener in self._closed_listeners:
            listener(transport_id, reason)

    def _active_speaker(self, router_id: str, producer_id: str | None) -> None:
        for listener in self._speaker_listeners:
            listener(router_id, producer_id)

    # ---- routing ------------------------------------------------------------------------

    def _by_id(self, some_id: str) -> tuple[WorkerHandle, RemoteMediaControl]:
        if self._stopping.is_set():
            # The workers end with the server; one may be gone already (systemd signals them
            # too), and a call on its socket would wait for ever.
            raise MediaError("the server is shutting down")
        prefix = some_id.split(".", 1)[0] + "."
        for w in self.workers:
            if w.prefix == prefix:
                if w.control is None:
                    raise MediaError(f"media worker {w.index} is restarting")
                return w, w.control
        remote = self.remote.get(prefix)
        if remote is not None:
            return WorkerHandle(-1, 0, "", node="remote"), remote
        raise MediaError(f"no worker for id {some_id}")

    def reaches(self, some_id: str) -> bool:
        prefix = some_id.split(".", 1)[0] + "."
        return prefix in self.remote or any(w.prefix == prefix for w in self.workers)

    async def attach(self, worker: str, address: str) -> None:
        """Use another node's worker (a room whose media lives there)."""
        if self.reaches(worker):
            return
        control = RemoteMediaControl(lambda transport_id, reason:
                                     self._transport_closed(None, transport_id, reason),
                                     self._active_speaker)
        await control.rpc.connect(address)
        self.remote[worker] = control

    def addresses(self) -> dict[str, str]:
        """worker id -> RPC socket of each local worker, for other nodes to find."""
        return {w.prefix: w.rpc_path for w in self.workers}

    def least_loaded(self, exclude: tuple[str, ...] = ()) -> WorkerHandle:
        live = [w for w in self.workers if w.control is not None and w.prefix not in exclude]
        if not live:
            raise MediaError("no media worker available")
        return min(live, key=lambda w: (w.load, w.index))

    # ---- MediaControl: routed by id (control.py), but for placement and bookkeeping ------

    async def create_router(self, exclude: tuple[str, ...] = ()) -> str:
        w = self.least_loaded(exclude)
        assert w.control is not None
        router_id = await w.control.create_router()
        w.routers.add(router_id)
        return router_id

    async def worker_of(self, some_id: str) -> str:
        return self._by_id(some_id)[0].prefix

    async def close_router(self, router_id: str) -> None:
        try:
            w, c = self._by_id(router_id)
            w.routers.discard(router_id)
            await c.close_router(router_id)
        except MediaError:
            pass  # its worker is gone, and the router with it

    async def create_transport(self, router_id: str) -> TransportInfo:
        w, c = self._by_id(router_id)
        info = await c.create_transport(router_id)
        w.transports.add(info.id)
        return info

    async def close_transport(self, transport_id: str) -> None:
        try:
            w, c = self._by_id(transport_id)
            w.transports.discard(transport_id)
            await c.close_transport(transport_id)
        except MediaError:
            pass  # already gone (closed by the worker, or its worker ended or restarted)

    async def stats(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        live = [w.control for w in self.workers if w.control is not None]
        for s in await asyncio.gather(*(c.stats() for c in live), return_exceptions=True):
            if isinstance(s, dict):
                for key, value in s.items():
                    totals[key] = totals.get(key, 0) + value
        totals["workers"] = len(live)
        totals["worker_restarts"] = sum(w.restarts for w in self.workers)
        return totals

    async def dump(self) -> MediaDump:
        live = [w.control for w in self.workers if w.control is not None]
        dumps = [d for d in await asyncio.gather(*(c.dump() for c in live),
                                                  return_exceptions=True)
                 if isinstance(d, MediaDump)]
        return MediaDump([t for d in dumps for t in d.transports],
                         [p for d in dumps for p in d.producers],
                         [c for d in dumps for c in d.consumers])

    def on_transport_closed(self, listener: Callable[[str, str], None]) -> None:
        self._closed_listeners.append(listener)

    def on_worker_lost(self, listener: Callable[[str], None]) -> None:
        self._lost_listeners.append(listener)

    def on_active_speaker(self, listener: Callable[[str, str | None], None]) -> None:
        self._speaker_listeners.append(listener)


def _routed(call: Call) -> Callable:
    """Every other call goes to the worker its `route` id names."""
    assert call.route is not None, f"{call.name} needs a route or its own pool method"

    async def method(self: WorkerPool, *args: Any, **kwargs: Any) -> Any:
        arguments = call.bind(args, kwargs)
        try:
            control = self._by_id(arguments[call.route])[1]
            return await getattr(control, call.name)(**arguments)
        except MediaError:
            if call.gone_ok:
                return None  # already gone (its worker ended or restarted in between)
            raise

    return method


bind_calls(WorkerPool, _routed)
