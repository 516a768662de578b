"""Reading a composite recording back: tile patterns, white flashes and beeps, with PyAV."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from recorder.layout import cells

from .patterns import read_video_frame

FLASH_LEVEL = 225.0  # mean of a tile's centre above this: a white flash
BEEP_RMS = 0.12  # 5 ms RMS above this: a beep (the base tones stay under 0.1)


@dataclass
class TileTrace:
    reads: list[tuple[float, tuple[int, int] | None]] = field(default_factory=list)
    flashes: list[float] = field(default_factory=list)  # onsets
    _in_flash: bool = False


def analyse_video(mp4: Path, tiles: int, src: tuple[int, int] = (320, 240),
                  layout: str = "grid") -> list[TileTrace]:
    boxes = [c.video_box(*src) for c in cells(tiles, layout)]
    traces = [TileTrace() for _ in boxes]
    with av.open(str(mp4)) as c:
        for frame in c.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            t = float(frame.time or 0.0)
            for (x, y, w, h), trace in zip(boxes, traces, strict=True):
                crop = rgb[y : y + h, x : x + w]
                centre = crop[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
                white = float(centre.mean()) > FLASH_LEVEL
                if white and not trace._in_flash:
                    trace.flashes.append(t)
                trace._in_flash = white
                trace.reads.append((t, None if white else read_video_frame(crop)))
    return traces


def beep_onsets(mp4: Path, window: float = 0.005, min_gap: float = 0.3) -> list[float]:
    chunks, start = [], None
    with av.open(str(mp4)) as c:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=48000)
        for frame in c.decode(audio=0):
            for out in resampler.resample(frame):
                if start is None:
                    start = float(out.time or 0.0)
                chunks.append(out.to_ndarray().reshape(-1))
    if not chunks or start is None:
        return []
    samples = np.concatenate(chunks)
    n = int(48000 * window)
    frames = samples[: len(samples) // n * n].reshape(-1, n)
    rms = np.sqrt(np.mean(np.square(frames), axis=1))
    onsets: list[float] = []
    loud_before = False
    for i, level in enumerate(rms):
        loud = level > BEEP_RMS
        t = start + i * window
        if loud and not loud_before and (not onsets or t - onsets[-1] > min_gap):
            onsets.append(t)
        loud_before = loud
    return onsets
