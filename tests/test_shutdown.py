"""Stopping the real server (`mediaserver serve` as a process of its own, two media workers, a
participant publishing, a recording running): SIGTERM or SIGINT to its process group (Ctrl-C,
`docker stop` with an init), SIGTERM to the server alone, or to every process of the service at
once (systemd's KillMode=control-group), even twice. Every process of the tree is gone within
5 s, nothing is restarted, nothing logs a traceback, the WebSocket gets 4503 "server_draining"
(come back, elsewhere), the recording is finalized into a valid MP4 that its entry names, and a
new server on the same HTTP and UDP ports comes up at once. SIGKILL of the server: its children
leave by themselves. A recording that cannot be finalized within the shutdown's time is
finished by the next start.
docs/operations.md, "Stopping and restarting"."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

# alive: the process exists and is no zombie (a zombie holds no port and no file)
from benchmarks.server_proc import _alive as alive
from benchmarks.server_proc import descendants, free_udp_range
from signaling.tokens import mint
from tests.support.client import Client
from tests.support.recorder_hls import ffprobe, ffprobe_path
from tests.support.recording_checks import segments, until
from tests.support.server import API_KEY, JWT_SECRET, free_port
from tests.support.tracks import PatternVideoTrack, ToneAudioTrack

ROOT = Path(__file__).resolve().parent.parent
AUTH = {"Authorization": f"Bearer {API_KEY}"}
LIMIT = 5.0  # seconds from the signal until every process of the tree is gone (issue 9)
ROOM = "ward"
DRAINED = (4503, "server_draining")  # what every client of a stopping server gets: come back


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


async def gone_within(pids: list[int], limit: float, since: float) -> float:
    """Seconds from `since` until none of `pids` is alive; fails after `limit`."""
    while any(alive(pid) for pid in pids):
        left = [f"{pid} ({cmdline(pid)})" for pid in pids if alive(pid)]
        assert time.monotonic() - since < limit, f"still running after {limit} s: {left}"
        await asyncio.sleep(0.02)
    return time.monotonic() - since


class ServerProcess:
    """`python -m signaling.cli serve` in a process group of its own, output to a file."""

    def __init__(self, data_dir: Path, http_port: int, rtc_port: int, *extra: str) -> None:
        self.data_dir = data_dir
        self.http_port = http_port
        self.rtc_port = rtc_port
        self.extra = extra
        self.base_url = f"http://127.0.0.1:{http_port}"
        self.log = data_dir.parent / f"server-{http_port}-{time.monotonic_ns()}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with open(self.log, "wb") as out:  # the child keeps its own descriptor
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "signaling.cli", "serve", "--dev", "--host", "127.0.0.1",
                "--port", str(self.http_port), "--rtc-port", str(self.rtc_port),
                "--workers", "2", "--data-dir", str(self.data_dir), f"--api-key={API_KEY}",
                f"--jwt-secret={JWT_SECRET}", *self.extra, cwd=ROOT, stdout=out,
                stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True)
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as http:
            while True:
                assert self.proc.returncode is None, f"server exited:\n{self.output()}"
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.base_url}/api/health") as r:
                        if r.status == 200:
                            return
                assert time.monotonic() < deadline, f"no /api/health:\n{self.output()}"
                await asyncio.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def tree(self) -> dict[int, str]:
        """PID -> command line of the server and every process under it."""
        return {pid: cmdline(pid) for pid in [self.pid, *descendants(self.pid)]}

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def api(self, method: str, path: str, **kwargs: object) -> tuple[int, dict]:
        async with aiohttp.ClientSession() as http, http.request(
                method, self.base_url + path, headers=AUTH, **kwargs) as r:
            return r.status, await r.json()

    async def stop(self) -> None:
        """SIGTERM and wait (also where a test failed: nothing of it stays behind)."""
        if self.proc is None:
            return
        pids = list(self.tree())
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        try:
            await gone_within(pids, LIMIT, time.monotonic())
        finally:
            for pid in pids:
                if alive(pid) and ("mediaserver" in cmdline(pid) or "recorder" in cmdline(pid)):
                    os.kill(pid, signal.SIGKILL)  # a process this test started
            await self.proc.wait()


class Load:
    """A participant publishing video and audio, and a composite recording of the room."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.client: Client | None = None
        self.rid = ""

    async def start(self) -> None:
        status, body = await self.server.api("POST", "/api/rooms", json={"name": ROOM})
        assert status in (200, 201), body
        token = mint(JWT_SECRET, ROOM, "dr-one", "Dr One", "host", 600)
        self.client = Client(self.server.base_url, token)
        await self.client.connect()
        await self.client.join()
        await self.client.publish(PatternVideoTrack(1), ToneAudioTrack(440.0))
        status, body = await self.server.api("POST", f"/api/rooms/{ROOM}/recordings",
                                             json={"mode": "composite"})
        assert status == 201, body
        self.rid = body["recordingId"]
        await segments(self.directory / "index.m3u8", 1)  # media is being recorded

    @property
    def directory(self) -> Path:
        return self.server.data_dir / "recordings" / self.rid

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


def check_vod(mp4: Path, at_most: float) -> float:
    """A valid MP4 with video frames and a duration that fits what was recorded."""
    assert mp4.exists(), f"no VOD: {sorted(p.name for p in mp4.parent.iterdir())}"
    info = ffprobe(mp4, "-count_packets", "-show_format", "-show_streams")
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert video["codec_name"] == "h264" and int(video["nb_read_packets"]) >= 15, video
    duration = float(info["format"]["duration"])
    assert 0.5 <= duration <= at_most, duration
    return duration


def check_output(text: str) -> None:
    assert "restarting" not in text, text
    assert "Traceback" not in text, text
    assert " ERROR " not in text, text


async def started(tmp_path: Path, *extra: str) -> ServerProcess:
    server = ServerProcess(tmp_path / "data", free_port(), free_udp_range(2), *extra)
    await server.start()
    return server


@dataclass
class Scene:
    server: ServerProcess
    load: Load
    tree: dict[int, str] = field(default_factory=dict)  # the server's, before the signal
    began: float = 0.0  # the recording started before this
    new: ServerProcess | None = None  # started on the same ports once the old one is gone

    signalled: float = 0.0  # when the (first) signal was sent

    def signal(self) -> None:
        self.signalled = time.monotonic()

    async def gone(self, how: str, limit: float = LIMIT) -> None:
        """Every process of the tree gone within `limit` of the signal."""
        took = await gone_within(list(self.tree), limit, self.signalled)
        print(f"{how}: every process gone {took:.2f} s after the signal")

    async def restart_at_once(self) -> ServerProcess:
        """A new server on the same HTTP and UDP ports, started the moment the old is gone."""
        old = self.server
        self.new = ServerProcess(old.data_dir, old.http_port, old.rtc_port)
        await self.new.start()
        return self.new


@contextlib.asynccontextmanager
async def under_load(tmp_path: Path, *extra: str) -> AsyncIterator[Scene]:
    """The server with two workers, a participant publishing and a recording running."""
    ffprobe_path()
    server = await started(tmp_path, *extra)
    scene = Scene(server, Load(server), began=time.monotonic())
    try:
        await scene.load.start()
        scene.tree = server.tree()
        kinds = sorted("worker" if "worker_main" in c else "recorder" if " recorder " in c
                       else "server" for c in scene.tree.values())
        assert kinds == ["recorder", "server", "worker", "worker"], scene.tree
        yield scene
    finally:
        await scene.load.close()
        for s in (server, scene.new):
            if s is not None:
                await s.stop()
    if scene.new is not None:
        check_output(scene.new.output())


def signal_group(server: ServerProcess, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is gone already
        os.killpg(server.pid, sig)


@pytest.mark.parametrize("how", ["group-sigterm", "group-sigint-twice", "server-sigterm",
                                 "every-process-sigterm"])
async def test_signal_stops_everything_finalizes_and_restarts(tmp_path: Path, how: str) -> None:
    async with under_load(tmp_path) as scene:
        server, load = scene.server, scene.load
        scene.signal()
        if how == "group-sigterm":
            signal_group(server, signal.SIGTERM)
        elif how == "group-sigint-twice":  # Ctrl-C, and again while it shuts down
            signal_group(server, signal.SIGINT)
            await until(lambda: "SIGINT: shutting down" in server.output(), LIMIT, "shutdown")
            signal_group(server, signal.SIGINT)
        elif how == "server-sigterm":
            os.kill(server.pid, signal.SIGTERM)
        else:  # what systemd does by default
            for pid in scene.tree:
                os.kill(pid, signal.SIGTERM)
        await scene.gone(how)
        assert await server.proc.wait() == 0  # type: ignore[union-attr]
        check_output(server.output())
        assert load.client is not None
        await asyncio.wait_for(load.client.closed.wait(), 5)
        assert (load.client.close_code, load.client.close_reason) == DRAINED

        check_vod(load.directory / "recording.mp4", time.monotonic() - scene.began)
        assert "#EXT-X-ENDLIST" in (load.directory / "index.m3u8").read_text()

        new = await scene.restart_at_once()
        status, body = await new.api("GET", f"/api/recordings/{load.rid}")
        assert status == 200 and body["recording"]["state"] == "ready", body
        assert body["recording"]["files"]["mp4"] == "recording.mp4", body


async def test_sigkill_of_server_children_leave_by_themselves(tmp_path: Path) -> None:
    async with under_load(tmp_path) as scene:
        scene.signal()
        os.kill(scene.server.pid, signal.SIGKILL)
        await scene.gone("SIGKILL of the server")
        # the recorder finalized what it recorded on its way out
        check_vod(scene.load.directory / "recording.mp4", time.monotonic() - scene.began)
        await scene.restart_at_once()


async def test_recording_not_finalized_in_time_is_finished_by_next_start(
        tmp_path: Path) -> None:
    """A shutdown of 2 s leaves the recorder no time (its share is all but 2 s): it leaves at
    once, its MP4 not made; the next start has the recorder finish it, and the entry becomes
    ready (interrupted, as after a crash)."""
    async with under_load(tmp_path, "--shutdown-timeout", "2") as scene:
        server, load = scene.server, scene.load
        scene.signal()
        signal_group(server, signal.SIGTERM)
        await scene.gone("2 s shutdown", 2.5)
        assert await server.proc.wait() == 0  # type: ignore[union-attr]
        output = server.output()
        assert "restarting" not in output and "Traceback" not in output, output
        assert f"recordings {load.rid} not finalized in time" in output, output
        assert not (load.directory / "recording.mp4").exists()

        new = await scene.restart_at_once()

        async def entry() -> dict:
            return (await new.api("GET", f"/api/recordings/{load.rid}"))[1]["recording"]

        deadline = time.monotonic() + 30
        while (ready := await entry())["state"] != "ready":
            assert time.monotonic() < deadline, ready
            await asyncio.sleep(0.1)
        assert ready["interrupted"] is True and ready["files"]["mp4"] == "recording.mp4"
        check_vod(load.directory / "recording.mp4", time.monotonic() - scene.began)
        assert "#EXT-X-ENDLIST" in (load.directory / "index.m3u8").read_text()
        marker = server.data_dir / "recordings" / ".unfinished"
        assert marker.read_text().split() == [load.rid]
    # the next shutdown finds the recorder's work done: the one after that starts none
    assert not marker.exists()


async def test_frozen_children_do_not_hold_the_shutdown(tmp_path: Path) -> None:
    """The workers and the recorder frozen (SIGSTOP: a child stuck in the kernel, or under a
    debugger) answer nothing and ignore SIGTERM; a SIGTERM to the server still ends every
    process of the tree within 5 s, and the next start finishes the recording."""
    async with under_load(tmp_path) as scene:
        server, load = scene.server, scene.load
        for pid in scene.tree:
            if pid != server.pid:
                os.kill(pid, signal.SIGSTOP)  # a process this test started
        scene.signal()
        os.kill(server.pid, signal.SIGTERM)
        await scene.gone("children frozen")
        new = await scene.restart_at_once()
        deadline = time.monotonic() + 30
        while (entry := (await new.api("GET", f"/api/recordings/{load.rid}"))[1]
               ["recording"])["state"] != "ready":
            assert time.monotonic() < deadline, entry
            await asyncio.sleep(0.1)
        check_vod(load.directory / "recording.mp4", time.monotonic() - scene.began)
