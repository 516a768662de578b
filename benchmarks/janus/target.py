"""Janus as the runner's target: the counterpart of benchmarks.server_proc.ServerProcess.

Started with our configuration (benchmarks/janus/config) through `running_janus`, inside the
network namespace that the CLI re-executes itself in (launcher.ensure_namespace). CPU time and
RSS are read from /proc for the Janus process and its descendants, all threads included, as
for our server. Janus has no /metrics: `metrics()` is empty, and the runner then counts the
forwarded packets at the bots (what they received), the same measuring stick it also reports
for our server.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..server_proc import ProcSample, descendants, sample
from .bots import room_token
from .client import JanusRoom, JanusSession
from .launcher import JanusInfo, running_janus

# Below Linux's ephemeral range (32768-60999), so that the bots' sockets never take them.
RTP_PORTS = (20000, 22999)


class JanusTarget:
    kind = "janus"

    def __init__(self, workdir: Path, event_loops: int | None = 1,
                 rtp_ports: tuple[int, int] = RTP_PORTS) -> None:
        self.workdir = workdir
        self.event_loops = event_loops
        self.rtp_ports = rtp_ports
        self.info: JanusInfo | None = None
        self.rooms: dict[str, int] = {}
        self._stack = contextlib.AsyncExitStack()
        self._session: JanusSession | None = None

    @property
    def base_url(self) -> str:
        assert self.info is not None
        return self.info.http_url

    @property
    def pid(self) -> int | None:
        return self.info.pid if self.info else None

    @property
    def rtc_ports(self) -> set[int]:
        return set(range(self.rtp_ports[0], self.rtp_ports[1] + 1))

    def describe(self) -> str:
        loops = "one per handle" if self.event_loops is None else str(self.event_loops)
        return f"Janus pid {self.pid} on {self.base_url}, event loops: {loops}"

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.info = await self._stack.enter_async_context(running_janus(
            self.workdir, rtp_port_range=self.rtp_ports, event_loops=self.event_loops))
        self._session = JanusSession(self.info.http_url)
        await self._stack.enter_async_context(self._session)

    async def create_room(self, name: str, room_type: str) -> None:
        assert self._session is not None
        # a webinar and a meeting are the same VideoRoom here: no cap on the bitrate, no
        # periodic keyframe requests (fir_freq 0), as many publishers as a meeting needs
        # transport_wide_cc_ext: Janus's default, said explicitly (transport-cc is negotiated
        # with a publisher that offers it, and Janus sends it feedback every twcc_period);
        # simulcast needs nothing here: Janus takes it from the publisher's offer
        self.rooms[name] = await JanusRoom(self._session, publishers=64,
                                           extra={"transport_wide_cc_ext": True}).create()

    def token(self, room: str, identity: str, name: str, role: str) -> str:
        return room_token(self.rooms[room])

    def sample(self) -> list[ProcSample]:
        if self.pid is None:
            return []
        out = []
        for pid in [self.pid, *descendants(self.pid)]:
            s = sample(pid)
            if s is not None:
                s.name = "janus"
                out.append(s)
        return out

    async def metrics(self) -> dict[str, float]:
        return {}

    async def stop(self) -> None:
        await self._stack.aclose()  # session destroyed, then Janus stopped by its PID
