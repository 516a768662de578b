"""Composite layout while people come and go: join late, leave, mute video, change resolution,
audio-only; active speaker layout follows the loudest. Drives the compositor thread directly
(real VP8/Opus encoders and decoders, real x264/AAC) with media faster than real time."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import av
import numpy as np

from recorder.composite import CompositeOptions, Compositor, PartStart
from recorder.hls import Playlist
from recorder.layout import PLACEHOLDER, SPEAKER, cells
from recorder.vod import finalize
from tests.support.patterns import read_video_frame
from tests.support.recorder_hls import check_playlist, ffprobe_path, parse_m3u8
from tests.support.recorder_media import Source

FPS = 30


def test_people_come_and_go(tmp_path: Path) -> None:
    ffprobe_path()
    comp = Compositor(tmp_path, CompositeOptions(layout=SPEAKER), PartStart(Playlist(2)))
    comp.start()
    a, b, c = Source(0), Source(1), Source(2)
    comp.add_track("a-v", "video", "VP8", "Ann", "ann")
    comp.add_track("a-a", "audio", "opus", "Ann", "ann")
    comp.add_track("c-a", "audio", "opus", "Cy (audio only)", "cy")
    t0 = time.time() + 2.0  # media ahead of the wall clock: rendering follows the media
    for i in range(8 * FPS):
        t = i / FPS
        if i == 4 * FPS:
            a.resize((640, 360))  # resolution change: a new key frame at the new size
        for f in a.video_frame(i):
            comp.push("a-v", f, t0 + t)
        if i == 2 * FPS:  # Bea joins
            comp.add_track("b-v", "video", "VP8", "Bea", "bea")
            comp.add_track("b-a", "audio", "opus", "Bea", "bea")
        if 2 * FPS <= i < 7 * FPS and not 5 * FPS <= i < int(6.5 * FPS):  # muted 5..6.5 s
            for f in b.video_frame(i):
                comp.push("b-v", f, t0 + t)
        if i == 7 * FPS:  # Bea leaves
            comp.remove_track("b-v")
            comp.remove_track("b-a")
        for k in range(i * 5 // 3, (i + 1) * 5 // 3):  # 20 ms audio frames
            ta = k * 0.02
            for f in a.audio_frame(k, loud=ta < 4.0):
                comp.push("a-a", f, t0 + ta)
            for f in c.audio_frame(k, loud=False):
                comp.push("c-a", f, t0 + ta)
            if 2.0 <= ta < 7.0:
                for f in b.audio_frame(k, loud=ta >= 4.0):
                    comp.push("b-a", f, t0 + ta)
    comp.stop()
    comp.join()
    assert comp.error is None
    result = finalize(tmp_path, comp.part.playlist)
    mp4 = Path(str(result["mp4"]))
    assert abs(float(result["duration"]) - 8.0) < 0.5  # type: ignore[arg-type]
    check_playlist(parse_m3u8((tmp_path / "index.m3u8").read_text()), tmp_path)
    run = subprocess.run(["ffmpeg", "-v", "error", "-i", str(mp4), "-f", "null", "-"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not run.stderr.strip(), run.stderr

    def frame_at(t: float) -> np.ndarray:
        with av.open(str(mp4)) as container:
            for f in container.decode(video=0):
                if f.time is not None and f.time >= t:
                    return f.to_ndarray(format="rgb24")
        raise AssertionError(f"no frame at {t}")

    def read(rgb: np.ndarray, n: int, index: int, src: tuple[int, int]) -> tuple | None:
        x, y, w, h = cells(n, SPEAKER)[index].video_box(*src)
        return read_video_frame(rgb[y : y + h, x : x + w])

    # 3 s: Ann speaks (big tile), Cy is a placeholder, Bea (joined at 2 s) in the strip.
    rgb = frame_at(3.0)
    assert read(rgb, 3, 0, (320, 240))[0] == 0  # type: ignore[index]
    assert read(rgb, 3, 2, (320, 240))[0] == 1  # type: ignore[index]
    cy = cells(3, SPEAKER)[1]
    centre = rgb[cy.y + cy.h // 3, cy.x + cy.w // 2 - 40]
    assert np.abs(centre.astype(int) - PLACEHOLDER).max() < 12
    # 6.3 s: Bea speaks since 4 s but her camera is off since 5 s: big placeholder.
    rgb = frame_at(6.3)
    big = cells(3, SPEAKER)[0]
    patch = rgb[big.y + 20 : big.y + 60, big.x + 20 : big.x + 60].reshape(-1, 3)
    assert np.abs(patch.mean(axis=0) - PLACEHOLDER).max() < 12
    # 6.8 s: camera back on. 7.5 s: Bea left; Ann, now 640x360, in the big tile again.
    assert read(frame_at(6.8), 3, 0, (320, 240))[0] == 1  # type: ignore[index]
    assert read(frame_at(7.5), 2, 0, (640, 360))[0] == 0  # type: ignore[index]
