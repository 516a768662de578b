"""A detailed camera picture for Chromium's fake capture device.

Chromium's own fake camera is a flat pattern that its encoder sends in a few hundred kbit/s
whatever the layer, and a link of 400 kbit/s then looks roomy. A real camera (a face, a
background, sensor noise) fills every layer to the encoder's target. `detailed_clip` writes such
a picture once: ffmpeg's moving test pattern with fresh noise on every frame, 1280x720 at 30
fps, as concatenated JPEG frames (.mjpeg), which `--use-file-for-fake-video-capture` plays in a
loop (tests/support/browser.py: `chromium(video_file=...)`). Measured here with it, Chromium
(VP8, three encodings at 1280x720) sends each layer at its target: about 150, 500 and 2,500
kbit/s (320x180, 640x360, 1280x720).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

WIDTH, HEIGHT, FPS = 1280, 720, 30
SECONDS = 3  # looped by Chromium: ~20 MB, written in about a second
NOISE = 20  # ffmpeg noise strength (0-100), new on every frame like a camera's sensor


def detailed_clip(directory: Path, seconds: int = SECONDS, noise: int = NOISE) -> Path:
    """The clip in `directory` (written there the first time; reused after). Raises if ffmpeg
    is missing or does not finish within a minute."""
    path = directory / f"detailed-{WIDTH}x{HEIGHT}-{FPS}fps-{seconds}s-n{noise}.mjpeg"
    if path.exists():
        return path
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is missing: `make test` installs it")
    directory.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part")
    source = f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS},noise=alls={noise}:allf=t+u"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", source,
                    "-t", str(seconds), "-q:v", "4", "-f", "mjpeg", str(partial)],
                   check=True, timeout=60, capture_output=True)
    partial.replace(path)  # whole or not at all: a killed run leaves no half clip behind
    return path
