"""The recorder as a real process for tests: start it, talk JSON lines to it, kill it by PID."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

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
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.events: list[dict] = []
        self._answers: dict[int, asyncio.Future] = {}
        self._next = 0
        self._pump: asyncio.Task | None = None
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
                self.reader, self.writer = await asyncio.open_unix_connection(str(self.control))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)
        self._pump = asyncio.create_task(self._read())
        await self.request("ping")

    async def _read(self) -> None:
        assert self.reader is not None
        while line := await self.reader.readline():
            msg = json.loads(line)
            if "event" in msg:
                self.events.append(msg)
                self.event_arrived.set()
            elif (fut := self._answers.pop(msg.get("id"), None)) is not None:
                fut.set_result(msg)
        for fut in self._answers.values():
            if not fut.done():
                fut.set_exception(ConnectionError("recorder closed the control socket"))

    async def request(self, op: str, timeout: float = 30.0, **args: object) -> dict:
        """Send one request; return its result or raise RuntimeError with the error."""
        assert self.writer is not None
        self._next += 1
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._answers[self._next] = fut
        self.writer.write((json.dumps({"id": self._next, "op": op, **args}) + "\n").encode())
        await self.writer.drain()
        answer = await asyncio.wait_for(fut, timeout)
        if not answer["ok"]:
            raise RuntimeError(answer["error"])
        return answer["result"]

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
        if self.writer is not None:
            self.writer.close()
        if self._pump is not None:
            self._pump.cancel()
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
