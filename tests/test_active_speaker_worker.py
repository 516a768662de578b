"""Active speaker in the worker: audio-level header extensions (RFC 6464) on real producers,
the worker's timer step, and the control API's listeners, in-process and across RPC. The
selection rule itself: test_active_speaker.py."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from benchmarks.server_proc import free_udp_range
from mediaserver.config import MediaConfig
from mediaserver.local_control import LocalMediaControl
from mediaserver.params import Codec, ProducerParams
from mediaserver.remote_control import RemoteMediaControl, control_server
from mediaserver.rtp.packet import EXT_AUDIO_LEVEL, build_extensions, build_packet
from mediaserver.speaker import SWITCH
from mediaserver.worker import Worker

OPUS = Codec("opus", 111, 48000, channels=2)
VP8 = Codec("VP8", 96, 90000)


def audio_packet(seq: int, ssrc: int, level: int) -> bytes:
    ext = build_extensions([(1, bytes([level]))])
    return build_packet(111, seq, seq * 960, ssrc, b"opus", extensions=ext)


async def test_worker_reports_changes_from_level_extensions() -> None:
    worker = Worker()
    worker.loop = asyncio.get_running_loop()
    router = worker.create_router()
    ann, bea = (worker.create_transport(router).id for _ in range(2))  # publishers
    exts = {EXT_AUDIO_LEVEL: 1}
    a = worker.produce(ann, ProducerParams("audio", "0", OPUS, ssrc=1, extensions=exts))
    b = worker.produce(bea, ProducerParams("audio", "0", OPUS, ssrc=2, extensions=exts))
    events: list[tuple[str, str | None]] = []
    LocalMediaControl(worker).on_active_speaker(lambda r, p: events.append((r, p)))
    seq = 0

    def interval(level_a: int, level_b: int) -> None:
        nonlocal seq
        for _ in range(15):  # 300 ms of 20 ms packets
            seq += 1
            for pid, ssrc, level in ((a, 1, level_a), (b, 2, level_b)):
                if pid in worker.producers:
                    worker.producers[pid].receive(audio_packet(seq, ssrc, level),
                                                  time.monotonic())
        worker.speakers.tick(worker.routers.values())

    interval(127, 127)
    assert events == []  # silence: nobody yet
    interval(10, 127)
    assert events == [(router, a)]
    # the allocator's question: which producers are the speaker's (their camera too)
    camera = worker.produce(ann, ProducerParams("video", "1", VP8, ssrc=3))
    their_camera = worker.produce(bea, ProducerParams("video", "1", VP8, ssrc=4))
    assert [worker.speakers.speaks(worker.producers[p]) for p in (a, b, camera, their_camera)] \
        == [True, False, True, False]
    for _ in range(SWITCH):
        interval(127, 10)
    assert events == [(router, a), (router, b)]
    assert worker.producers[a].level_packets == 0  # each tick starts a new interval
    # a paused (muted) producer is silent, whatever its packets say
    worker.pause_producer(a, True)
    for _ in range(SWITCH):
        interval(0, 127)
    assert events[-1] == (router, b)
    worker.close_producer(b)
    interval(127, 127)
    assert events[-1] == (router, None)
    worker.close_router(router)
    worker.speakers.tick(worker.routers.values())
    assert worker.speakers.selectors == {}


async def test_the_event_crosses_the_rpc_border(tmp_path: Path) -> None:
    worker = Worker(MediaConfig(id_prefix="w3.", port=free_udp_range(1)))  # not 40000
    local = LocalMediaControl(worker)
    await local.start()
    unix = await control_server(local).serve(str(tmp_path / "w.sock"))
    got: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()
    remote = RemoteMediaControl(lambda transport_id, reason: None)
    remote.on_active_speaker(lambda r, p: got.put_nowait((r, p)))
    await remote.rpc.connect(str(tmp_path / "w.sock"))
    try:
        router = await remote.create_router()
        transport = (await remote.create_transport(router)).id
        pid = await remote.produce(transport, ProducerParams(
            "audio", "0", OPUS, ssrc=5, extensions={EXT_AUDIO_LEVEL: 1}))
        worker.producers[pid].receive(audio_packet(1, 5, 20), time.monotonic())
        worker.speakers.tick(worker.routers.values())
        assert await asyncio.wait_for(got.get(), 5) == (router, pid)
    finally:
        await remote.rpc.close()
        unix.close()
        await local.stop()
