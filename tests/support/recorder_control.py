"""The recorder as a real process for tests: start it, call it over its control socket (the
JSON-lines RPC of mediaserver/rpc.py), kill it by PID."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from mediaserver.rpc import RpcClient

ROOT = Path(__file__).resolve().parents[2]


# A parent between the test and the recorder: it starts the recorder, prints its PID, and
# exits when told to (a line on its stdin), leaving the recorder orphaned.
_PARENT = """
import subprocess, sys
child = subprocess.Popen(sys.argv[1:])
print(child.pid, flush=True)
sys.stdin.readline()
"""


class RecorderProcess:
    def __init__(self, recordings: Path, control: Path, extra: list[str] | None = None,
                 via_parent: bool = False) -> None:
        self.recordings = recordings
        self.control = control
        self.extra = extra or []
        self.via_parent = via_parent  # see orphan()
        self.pid = 0  # the recorder's own
        self.proc: asyncio.subprocess.Process | None = None
        self.rpc = RpcClient(self._on_event)
        self.events: list[dict] = []
        self.event_arrived = asyncio.Event()

    async def start(self, timeout: float = 20.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "recorder", "serve", "--rtp-host", "127.0.0.1",
                   "--control", str(self.control), "--recordings", str(self.recordings),
                   *self.extra]
        if self.via_parent:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _PARENT, *command, cwd=str(ROOT), env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            assert self.proc.stdout is not None
            self.pid = int(await asyncio.wait_for(self.proc.stdout.readline(), timeout))
        else:
            self.proc = await asyncio.create_subprocess_exec(*command, cwd=str(ROOT), env=env)
            self.pid = self.proc.pid
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.proc.returncode is not None:
                raise RuntimeError(f"recorder exited with {self.proc.returncode}")
            try:
                await self.rpc.connect(str(self.control))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)
        await self.request("ping")

    def _on_event(self, event: dict) -> None:
        self.events.append(event)
        self.event_arrived.set()

    async def request(self, method: str, timeout: float = 30.0, **params: object) -> dict:
        """Call one method; return its result or raise RpcError (type, message)."""
        return await self.rpc.call(method, params, timeout)

    async def wait_event(self, name: str, timeout: float = 30.0) -> dict:
        async with asyncio.timeout(timeout):
            while True:
                for e in self.events:
                    if e["event"] == name:
                        self.events.remove(e)
                        return e
                self.event_arrived.clear()
                await self.event_arrived.wait()

    def kill9(self) -> None:
        """SIGKILL this very process (by its PID), as a crash would."""
        assert self.proc is not None
        os.kill(self.pid, signal.SIGKILL)

    async def orphan(self) -> None:
        """(via_parent) The recorder's parent exits, as a server that dies hard would."""
        assert self.via_parent and self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"exit\n")
        await self.proc.wait()

    def running(self) -> bool:
        """Whether the recorder's PID is alive (works when it is not our child)."""
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, IndexError):
            return False
        return state != "Z"  # a zombie has exited; its new parent has not reaped it yet

    async def close(self) -> None:
        await self.rpc.close()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.via_parent and self.running():  # the test failed before the recorder left
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)
