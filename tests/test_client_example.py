"""docs/examples/aiortc_client.py, the example of docs/protocol.md ("Writing a client"), run as
a script against a real server next to a test participant: each decodes the other's media.

The test participant publishes a pattern whose frames carry its sender id and a counter, and a
660 Hz tone; the example writes what it decoded (report.json, the last picture of each video
track) and the test reads the pattern back from that picture. The test participant decodes the
example's camera (colour bars over a moving block) and its 440 Hz tone.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from tests.support.client import Client
from tests.support.patterns import read_video_frame
from tests.support.server import RunningServer, running_server
from tests.support.tracks import PatternVideoTrack, ToneAudioTrack, ToneChecker

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "aiortc_client.py"
SENDER, TONE = 6, 660.0


def _load_example():  # the example's picture and tone, to know what to expect from it
    spec = importlib.util.spec_from_file_location("aiortc_client", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = _load_example()


class Example:
    """The example script in a subprocess; the test waits on the lines it prints."""

    def __init__(self, proc: asyncio.subprocess.Process, output: Path) -> None:
        self.proc, self.output, self.lines = proc, output, []

    @classmethod
    async def start(cls, server: RunningServer, output: Path, *args: str) -> Example:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLE), server.base_url, "--output", str(output), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        return cls(proc, output)

    async def line(self, text: str, timeout: float = 30) -> str:
        """The first line printed so far, or from now on, that contains `text`."""
        async with asyncio.timeout(timeout):
            while not any(text in line for line in self.lines):
                line = (await self.proc.stdout.readline()).decode()
                assert line, f"the example exited before {text!r}: {self.lines}"
                self.lines.append(line)
        return next(line for line in self.lines if text in line)

    async def stop(self) -> dict:
        """Ctrl-C: the example leaves and writes its report."""
        self.proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            self.lines += (await self.proc.stdout.read()).decode().splitlines()
            assert await self.proc.wait() == 0, self.lines
        return json.loads((self.output / "report.json").read_text())["tracks"]

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


@asynccontextmanager
async def participant(server: RunningServer, room: str) -> AsyncIterator[Client]:
    client = Client(server.base_url, server.token(room, "tester", "Tess"))
    await client.connect()
    try:
        await client.join()
        yield client
    finally:
        await client.close()


@dataclass
class Published:
    video: str  # track ids
    audio: str
    pattern: PatternVideoTrack


async def publish(client: Client) -> Published:
    """The pattern and the tone, again."""
    pattern = PatternVideoTrack(SENDER)
    result = await client.publish(pattern, ToneAudioTrack(TONE))
    ids = {t["kind"]: t["id"] for t in result["tracks"]}
    return Published(ids["video"], ids["audio"], pattern)


async def check_camera(client: Client, participant_id: str, frames: int = 30) -> None:
    """The example's camera as `client` decodes it: the bars in their colours, a moving block."""
    track = await client.remote_track(await client.live_track_of(participant_id, "video"), 20)
    positions, good = set(), 0
    for _ in range(10 * frames):
        rgb = (await asyncio.wait_for(track.recv(), 10)).to_ndarray(format="rgb24").astype(int)
        h, w = rgb.shape[:2]
        bars = [rgb[h // 6:h // 2, (8 * i + 2) * w // 64:(8 * i + 6) * w // 64].mean(axis=(0, 1))
                for i in range(len(example.BARS))]
        if all(np.abs(bar - expected).max() < 40 for bar, expected in zip(bars, example.BARS,
                                                                           strict=True)):
            good += 1
            positions.add(int(np.argmax(rgb[h * 5 // 6].mean(axis=1) > 128)))
        if good == frames:
            break
    assert good == frames, f"only {good} frames showed the bars"
    assert len(positions) > frames // 2, f"the block did not move: {positions}"


async def check_tone(client: Client, participant_id: str) -> None:
    track = await client.remote_track(await client.live_track_of(participant_id, "audio"), 20)
    tone = ToneChecker()
    task = asyncio.create_task(tone.run(track))
    try:
        await tone.wait_for_frequency(example.TONE_HZ, timeout=20)
    finally:
        task.cancel()


def check_report(report: dict, output: Path, ours: Published, participant_id: str) -> None:
    """What the example says it decoded of our tracks: our pattern, our tone."""
    video, audio = report[ours.video], report[ours.audio]
    assert video["participantId"] == audio["participantId"] == participant_id, report
    assert video["frames"] >= 30 and (video["width"], video["height"]) == (320, 240), video
    assert abs(audio["toneHz"] - TONE) <= 10, audio
    with av.open(str(output / f"{ours.video}.png")) as png:
        picture = next(png.decode(video=0)).to_ndarray(format="rgb24")
    # our pattern, intact, from the last two seconds (90 frames went out before the stop)
    sender, counter = read_video_frame(picture) or (None, None)
    assert sender == SENDER and counter >= 60, (sender, counter)


async def meet(client: Client, ex: Example, example_id: str, ours: Published) -> None:
    """Both directions: the example decodes our tracks, we decode its camera and tone."""
    await ex.line(f"decoding video {ours.video}")
    await ex.line(f"decoding audio {ours.audio}")
    await check_camera(client, example_id)
    await check_tone(client, example_id)


async def report_after(ex: Example, ours: Published) -> dict:
    """The example's report, once three seconds of our pattern (by its own clock) went out."""
    await asyncio.wait_for(ours.pattern.sent(90), 20)
    return await ex.stop()


async def test_example_with_a_token(server: RunningServer, tmp_path: Path) -> None:
    await server.create_room("clinic")
    async with participant(server, "clinic") as client:
        ours = await publish(client)
        ex = await Example.start(server, tmp_path, "--token",
                                 server.token("clinic", "example", "Example"))
        try:
            example_id = (await client.wait_event("participantJoined", timeout=30)
                          )["participant"]["id"]
            await meet(client, ex, example_id, ours)
            report = await report_after(ex, ours)
        finally:
            ex.kill()
        check_report(report, tmp_path, ours, client.self_id)


async def test_example_in_dev_mode_gets_its_own_token(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data", dev=True) as server:
        ex = await Example.start(server, tmp_path / "out", "--room", "hall", "--name", "Ann")
        try:
            # alone in a room its token made: the first offer comes once we publish
            example_id = (await ex.line("joined hall as ")).split()[-1]
            async with participant(server, "hall") as client:
                assert [p["name"] for p in client.joined["participants"]] == ["Ann"]
                ours = await publish(client)
                await meet(client, ex, example_id, ours)
                report = await report_after(ex, ours)
        finally:
            ex.kill()
        check_report(report, tmp_path / "out", ours, client.self_id)


async def test_example_follows_breakout_moves(server: RunningServer, tmp_path: Path) -> None:
    await server.create_room("board")
    async with participant(server, "board") as client:
        ours = await publish(client)
        ex = await Example.start(server, tmp_path, "--token",
                                 server.token("board", "example", "Example", role="attendee"))
        try:
            example_id = (await client.wait_event("participantJoined", timeout=30)
                          )["participant"]["id"]
            await meet(client, ex, example_id, ours)
            group = (await client.request("breakoutCreate", {"count": 1})
                     )["breakouts"]["groups"][0]["id"]
            for who in (client.self_id, example_id):
                await client.request("breakoutAssign", {"participantId": who, "groupId": group})
            for change in ("breakoutOpen", "breakoutClose"):  # into the group, then back
                await client.request(change)
                await asyncio.wait_for(client.moved.wait(), 10)
                ours = await publish(client)
                await meet(client, ex, example_id, ours)
            report = await report_after(ex, ours)
        finally:
            ex.kill()
        check_report(report, tmp_path, ours, client.self_id)
        assert sum(info["kind"] == "video" for info in report.values()) == 3, report
