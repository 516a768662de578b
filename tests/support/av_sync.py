"""Flashes and beeps at the same instants, for checking lip sync end to end.

A sender shows a white picture and plays a 1 kHz beep over its base tone during each flash
window; a recording whose flashes and beeps line up kept audio and video in sync. The schedule:
every 2 s from 1 s, senders staggered by 0.5 s, on video frame boundaries.
"""

from __future__ import annotations

import numpy as np

FPS = 30
AUDIO_RATE = 48000
FLASH_SECONDS = 0.1
BEEP_HZ = 1000.0


def flash_times(sender_id: int, duration: float) -> list[float]:
    out, t = [], 1.0 + 0.5 * sender_id
    while t < duration - 0.5:
        out.append(round(t * FPS) / FPS)
        t += 2.0
    return out


def flashing(flashes: list[float], t: float) -> bool:
    return any(f - 1e-6 <= t < f + FLASH_SECONDS - 1e-6 for f in flashes)


def white_frame(width: int, height: int) -> np.ndarray:
    return np.full((height, width, 3), 255, dtype=np.uint8)


def tone_with_beeps(flashes: list[float], tone_hz: float, start_sample: int,
                    count: int) -> np.ndarray:
    """Mono int16 samples: a quiet base tone, a loud beep while a flash lasts (decided per
    millisecond)."""
    t = np.arange(start_sample, start_sample + count) / AUDIO_RATE
    step = AUDIO_RATE // 1000
    beep = np.array([flashing(flashes, x) for x in t[::step]]).repeat(step)[:count]
    tone = np.where(beep, 0.5 * np.sin(2 * np.pi * BEEP_HZ * t),
                    0.05 * np.sin(2 * np.pi * tone_hz * t))
    return (tone * 32767).astype(np.int16)
