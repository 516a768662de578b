"""The composite's speaker layout follows the room's active speaker (the recorder's `speaker`
operation) when it is given, and its own audio levels (SpeakerTracker) otherwise. Drives the
compositor thread directly with real encoders and decoders, media faster than real time, as
test_recorder_composite.py does."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pytest

from recorder.composite import CompositeOptions, Compositor, PartStart
from recorder.hls import Playlist
from recorder.layout import SPEAKER, cells
from recorder.service import RecorderService
from recorder.vod import finalize
from tests.support.patterns import read_video_frame
from tests.support.recorder_media import Source

FPS = 30
OPUS = {"name": "opus", "payload_type": 111, "clock_rate": 48000, "channels": 2}
VP8 = {"name": "VP8", "payload_type": 96, "clock_rate": 90000}


def test_the_given_speaker_takes_the_large_tile(tmp_path: Path) -> None:
    comp = Compositor(tmp_path, CompositeOptions(layout=SPEAKER), PartStart(Playlist(2)))
    comp.start()
    ann, bea = Source(0), Source(1)
    for key, name in (("ann", "Ann"), ("bea", "Bea")):
        comp.add_track(f"{key}-v", "video", "VP8", name, key)
        comp.add_track(f"{key}-a", "audio", "opus", name, key)
    t0 = time.time() + 2.0
    for i in range(8 * FPS):
        t = i / FPS
        if i == 2 * FPS:
            comp.set_speaker("bea")  # the room says Bea speaks, though Ann is the louder
        if i == 5 * FPS:
            comp.set_speaker(None)  # nobody given: the levels decide again
        for f in ann.video_frame(i):
            comp.push("ann-v", f, t0 + t)
        for f in bea.video_frame(i):
            comp.push("bea-v", f, t0 + t)
        for k in range(i * 5 // 3, (i + 1) * 5 // 3):  # 20 ms audio frames
            for f in ann.audio_frame(k, loud=True):
                comp.push("ann-a", f, t0 + k * 0.02)
            for f in bea.audio_frame(k, loud=False):
                comp.push("bea-a", f, t0 + k * 0.02)
    comp.stop()
    comp.join()
    assert comp.error is None
    mp4 = Path(str(finalize(tmp_path, comp.part.playlist)["mp4"]))

    def large_tile_at(t: float) -> int | None:
        with av.open(str(mp4)) as container:
            for f in container.decode(video=0):
                if f.time is not None and f.time >= t:
                    rgb = f.to_ndarray(format="rgb24")
                    x, y, w, h = cells(2, SPEAKER)[0].video_box(320, 240)
                    got = read_video_frame(np.ascontiguousarray(rgb[y : y + h, x : x + w]))
                    return got[0] if got else None
        raise AssertionError(f"no frame at {t}")

    # (what is rendered before the compositor thread reads an operation depends on its pace:
    # only frames of media pushed after it are checked)
    assert large_tile_at(3.5) == 1  # Bea, as the room says, though Ann is the louder
    assert large_tile_at(7.0) == 0  # the fallback again


async def test_speaker_operation_names_the_participant_of_a_track(tmp_path: Path) -> None:
    service = RecorderService("127.0.0.1", tmp_path / "recordings")
    service.start_recovery()
    await service.op_start("r1", room="room", mode="composite")
    try:
        await service.op_add_track("r1", 11, "audio", OPUS, "Ann", "p-ann")
        await service.op_add_track("r1", 12, "video", VP8, "Bea", "p-bea")
        await service.op_add_track("r1", 13, "audio", OPUS, "Bea", "p-bea")
        rec = service.active["r1"]
        assert rec.compositor is not None
        told: list[str | None] = []
        rec.compositor.set_speaker = told.append  # type: ignore[method-assign]
        await service.op_speaker("r1", 13)
        await service.op_speaker("r1", None)
        assert told == ["p-bea", None]
        with pytest.raises(ValueError):
            await service.op_speaker("r1", 99)  # no such track: a `recording` error
        with pytest.raises(ValueError):
            await service.op_speaker("nope", 13)
    finally:
        await service.op_stop("r1")
