"""The server under test as a subprocess, and what /proc and /metrics say about it.

`mediaserver serve` runs on free loopback ports with its own data directory; CPU time and RSS are
read for the signalling process and every media worker process it started (its descendants),
so "server CPU" is the whole server. Every process is ended by PID at the end, even on errors.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import aiohttp

from signaling.tokens import mint

CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Media ports are picked below Linux's ephemeral range (32768-60999 by default): a port found
# free there can be taken by an outgoing connection before the worker binds it (TCP too: a
# worker listens for ICE-TCP on its UDP port's number)
MEDIA_PORTS = (20000, 32000)


def free_udp_range(count: int, host: str = "127.0.0.1") -> int:
    """A first port with `count` consecutive ports free for UDP and TCP (workers use
    rtc-port + i for both)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(MEDIA_PORTS[0], MEDIA_PORTS[1] - count)
        socks: list[socket.socket] = []
        try:
            for i in range(count):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    s = socket.socket(socket.AF_INET, kind)
                    socks.append(s)
                    s.bind((host, base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free media port range")


def children(pid: int) -> list[int]:
    """Direct children of a process (Linux 3.5+: /proc/<pid>/task/<tid>/children)."""
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


@dataclass
class ProcSample:
    """CPU seconds (user + system) and RSS of one process at one moment."""

    pid: int
    cpu: float
    rss: int  # bytes
    name: str = ""


def sample(pid: int) -> ProcSample | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name may contain spaces
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    rss = 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    name = "media worker" if "worker_main" in cmdline else "signalling"
    return ProcSample(pid, cpu, rss, name)


def udp_drops(ports: set[int]) -> int:
    """Receive drops of the UDP sockets bound to these local ports (/proc/net/udp)."""
    total = 0
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if int(parts[1].split(":")[1], 16) in ports:
                    total += int(parts[-1])
    except (OSError, ValueError, IndexError, StopIteration):
        pass
    return total


class Target(Protocol):
    """What the runner needs of a server under test (ours here, Janus in benchmarks.janus)."""

    kind: str

    @property
    def base_url(self) -> str: ...

    @property
    def rtc_ports(self) -> set[int]: ...

    def describe(self) -> str: ...

    async def start(self) -> None: ...

    async def create_room(self, name: str, room_type: str) -> None: ...

    def token(self, room: str, identity: str, name: str, role: str) -> str: ...

    def sample(self) -> list[ProcSample]: ...

    async def metrics(self) -> dict[str, float]: ...

    def stop(self) -> object: ...  # ours stops at once, Janus returns an awaitable


@dataclass
class ServerProcess:
    workers: int = 1
    data_dir: Path = Path("data")
    subscribers_per_worker: int | None = None  # None: the server's own default
    log_path: Path | None = None
    http_port: int = 0
    rtc_port: int = 0
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    proc: subprocess.Popen[bytes] | None = None
    known_pids: set[int] = field(default_factory=set)
    # the source tree the server runs from: this one, or another (a git worktree with a
    # change to measure against this one); its modules come first on the server's path
    root: Path = ROOT
    # benchmarks/looptrace.py: the media workers record what their loop does into files
    # starting with this path (empty: no tracing)
    trace_loop: str = ""

    kind = "ours"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def describe(self) -> str:
        return (f"server pid {self.proc.pid if self.proc else '?'} on {self.base_url}, "
                f"{self.workers} worker(s), UDP {sorted(self.rtc_ports)}")

    @property
    def rtc_ports(self) -> set[int]:
        return {self.rtc_port + i for i in range(max(1, self.workers))}

    async def start(self, timeout: float = 30, attempts: int = 3) -> None:
        """Start on free ports; a port taken between choosing and binding it (other processes
        on a shared machine) makes the server exit at once, and we try again on new ones."""
        fixed = bool(self.http_port and self.rtc_port)
        for attempt in range(attempts):
            if not fixed:
                self.http_port = free_port()
                self.rtc_port = free_udp_range(max(1, self.workers))
            try:
                await self._start_once(timeout)
                return
            except RuntimeError:
                if fixed or attempt == attempts - 1:
                    raise

    async def _start_once(self, timeout: float) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        exe = Path(sys.executable).with_name("mediaserver")
        if self.root.resolve() != ROOT.resolve():
            exe = Path("/nonexistent")  # the entry point would import this tree's modules
        cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else
               ["-m", "signaling.cli"]), "serve", "--no-dev", "--host", "127.0.0.1",
               "--port", str(self.http_port), "--rtc-port", str(self.rtc_port),
               "--workers", str(self.workers), "--data-dir", str(self.data_dir),
               # "=": a random secret may start with "-", which argparse would take for a flag
               f"--jwt-secret={self.jwt_secret}", f"--api-key={self.api_key}",
               "--log-level", "warning"]
        if self.subscribers_per_worker is not None:
            cmd += ["--subscribers-per-worker", str(self.subscribers_per_worker)]
        env = dict(os.environ)
        first = [str(Path(__file__).resolve().parent / "looptrace_site")] if self.trace_loop \
            else []
        env["PYTHONPATH"] = os.pathsep.join(
            [*first, str(self.root), *filter(None, [env.get("PYTHONPATH", "")])])
        if self.trace_loop:
            env["BENCH_LOOPTRACE"] = self.trace_loop
        if self.log_path:
            with open(self.log_path, "wb") as log:  # the child keeps its own descriptor
                self.proc = subprocess.Popen(cmd, cwd=self.root, stdout=log, env=env,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        else:
            self.proc = subprocess.Popen(cmd, cwd=self.root, stdout=subprocess.DEVNULL, env=env,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                if self.proc.poll() is not None:
                    tail = ""
                    if self.log_path and self.log_path.exists():
                        tail = self.log_path.read_text(errors="replace")[-1500:]
                    raise RuntimeError(f"server exited with {self.proc.returncode}"
                                       f" (log: {self.log_path}):\n{tail}")
                try:
                    async with http.get(f"{self.base_url}/api/health") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("server did not answer /api/health")
                await asyncio.sleep(0.1)
        self.pids()  # remember the worker processes now, to end them even if orphaned

    def pids(self) -> list[int]:
        if self.proc is None:
            return []
        pids = [self.proc.pid, *descendants(self.proc.pid)]
        self.known_pids.update(pids)
        return pids

    def sample(self) -> list[ProcSample]:
        return [s for pid in self.pids() if (s := sample(pid)) is not None]

    async def create_room(self, name: str, room_type: str) -> None:
        async with aiohttp.ClientSession() as http, http.post(
                f"{self.base_url}/api/rooms", json={"name": name, "type": room_type},
                headers={"Authorization": f"Bearer {self.api_key}"}) as r:
            if r.status not in (200, 201):
                raise RuntimeError(f"creating room {name}: {r.status} {await r.text()}")

    def token(self, room: str, identity: str, name: str, role: str) -> str:
        return mint(self.jwt_secret, room, identity, name, role, 6 * 3600)

    async def metrics(self) -> dict[str, float]:
        """The mediaserver_* values of /metrics (counters without their _total suffix)."""
        async with aiohttp.ClientSession() as http, http.get(f"{self.base_url}/metrics") as r:
            text = await r.text()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("mediaserver_"):
                name, _, value = line.partition(" ")
                name = name.removesuffix("_total")
                if "{" not in name and not name.endswith("_created"):
                    out[name.removeprefix("mediaserver_")] = float(value)
        return out

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s, for the server and every process it started."""
        if self.proc is None:
            return
        self.pids()
        for pid in self.known_pids:
            _signal(pid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 5
        for pid in self.known_pids:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                _signal(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(5)


def _signal(pid: int, sig: int) -> None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
            if b"mediaserver" not in cmdline and b"signaling" not in cmdline:
                return  # gone, and the PID reused by something that is not ours
    except OSError:
        return
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
