"""A screen share in the composite recording: the main picture, whatever the layout, with the
people in the strip; at full detail (a 1280x720 share scaled into the large tile is still
read by its pattern), kept while its content does not change (no frames for seconds), and
gone with the share. Drives the compositor thread directly with real VP8/Opus encoders."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np

from recorder.composite import CompositeOptions, Compositor, PartStart
from recorder.hls import Playlist
from recorder.layout import GRID, SPEAKER, TileView, cells, main_picture
from recorder.vod import finalize
from tests.support.patterns import read_video_frame
from tests.support.recorder_media import Source

FPS = 30
SCREEN = (1280, 720)


def test_main_picture_puts_the_first_screen_large() -> None:
    ann, bea = TileView("Ann", None), TileView("Bea", None)
    s1, s2 = TileView("Bea (screen)", None, screen=True), TileView("Cy (screen)", None,
                                                                   screen=True)
    assert main_picture([ann, bea], GRID) == ([ann, bea], GRID)
    assert main_picture([ann, bea], SPEAKER) == ([ann, bea], SPEAKER)
    assert main_picture([ann, s1, bea, s2], GRID) == ([s1, s2, ann, bea], SPEAKER)


def test_screen_share_is_the_main_picture(tmp_path: Path) -> None:
    comp = Compositor(tmp_path, CompositeOptions(layout=GRID), PartStart(Playlist(2)))
    comp.start()
    ann, bea, screen = Source(0), Source(1), Source(5, SCREEN)
    for key, name in (("ann", "Ann"), ("bea", "Bea")):
        comp.add_track(f"{key}-v", "video", "VP8", name, key)
        comp.add_track(f"{key}-a", "audio", "opus", name, key)
    t0 = time.time() + 2.0  # media ahead of the wall clock: rendering follows the media
    for i in range(7 * FPS):
        t = i / FPS
        for key, src in (("ann", ann), ("bea", bea)):
            for f in src.video_frame(i):
                comp.push(f"{key}-v", f, t0 + t)
        if i == 2 * FPS:  # Bea shares her screen
            comp.add_track("bea-s", "video", "VP8", "Bea", "bea", screen=True)
        # 5 fps, and nothing from 3.5 s to 5 s: a screen that does not change sends nothing
        if 2 * FPS <= i < 6 * FPS and i % 6 == 0 and not 3.5 * FPS <= i < 5 * FPS:
            for f in screen.video_frame(i):
                comp.push("bea-s", f, t0 + t)
        if i == 6 * FPS:  # Bea stops sharing
            comp.remove_track("bea-s")
        for k in range(i * 5 // 3, (i + 1) * 5 // 3):  # 20 ms audio frames; Ann speaks
            for key, src in (("ann", ann), ("bea", bea)):
                for f in src.audio_frame(k, loud=key == "ann"):
                    comp.push(f"{key}-a", f, t0 + k * 0.02)
    comp.stop()
    comp.join()
    assert comp.error is None
    mp4 = Path(str(finalize(tmp_path, comp.part.playlist)["mp4"]))
    frames = {}
    wanted = [1.5, 3.0, 4.8, 6.7]
    with av.open(str(mp4)) as container:
        for f in container.decode(video=0):
            if wanted and f.time is not None and f.time >= wanted[0]:
                frames[wanted.pop(0)] = f.to_ndarray(format="rgb24")

    def sender_in(rgb: np.ndarray, cell_index: int, n: int, layout: str,
                  src: tuple[int, int]) -> int | None:
        x, y, w, h = cells(n, layout)[cell_index].video_box(*src)
        found = read_video_frame(rgb[y : y + h, x : x + w])
        return None if found is None else found[0]

    # Before the share: the grid of two.
    assert sender_in(frames[1.5], 0, 2, GRID, (320, 240)) == 0
    assert sender_in(frames[1.5], 1, 2, GRID, (320, 240)) == 1
    # Sharing: the screen large although Ann speaks; Ann and Bea in the strip.
    for at in (3.0, 4.8):  # 4.8: no new screen picture since 3.5 s, still shown
        assert sender_in(frames[at], 0, 3, SPEAKER, SCREEN) == 5, at
        assert sender_in(frames[at], 1, 3, SPEAKER, (320, 240)) == 0, at
        assert sender_in(frames[at], 2, 3, SPEAKER, (320, 240)) == 1, at
    # The share ended: back to the grid.
    assert sender_in(frames[6.7], 0, 2, GRID, (320, 240)) == 0
    assert sender_in(frames[6.7], 1, 2, GRID, (320, 240)) == 1
