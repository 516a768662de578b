"""Synthetic media patterns that survive lossy codecs (pure numpy).

Video layout, in fractions of the frame so a rescaled picture still reads: an 8 x 3 grid of
cells, each 1/10 of the width and 1/8 of the height (32 x 30 px at 320 x 240), inset by one
cell from the left and top, with an empty cell-high gap between rows:

    row 0:  WHITE  BLACK  s3 s2 s1 s0  c1 c0      (calibration, sender id, 2-bit checksum)
    row 1:  counter bits 15..8
    row 2:  counter bits 7..0

A bit is white for 1, black for 0. The checksum (number of set data bits mod 4) rejects the
rare misread block instead of reporting a wrong sender or counter.
"""

from __future__ import annotations

import numpy as np

GRID_COLS = 8
GRID_ROWS = 3
CELL_W = 1 / 10  # fraction of the frame width
CELL_H = 1 / 8  # fraction of the frame height
# Top-left corner of row r is at (CELL_W, CELL_H * (1 + 2 * r)): rows 1, 3 and 5 of 8.
ROW_Y = [CELL_H * (1 + 2 * r) for r in range(GRID_ROWS)]
COL_X = [CELL_W * (1 + c) for c in range(GRID_COLS)]

SENDER_BITS = 4
COUNTER_BITS = 16
MAX_SENDER = (1 << SENDER_BITS) - 1
MAX_COUNTER = (1 << COUNTER_BITS) - 1

# Mid-tone backgrounds, one per sender: far from both black and white so they never look
# like a bit, distinct enough to tell senders apart by eye in a saved frame.
PALETTE = np.array(
    [
        (180, 60, 60), (60, 150, 60), (60, 80, 180), (170, 150, 50),
        (150, 60, 150), (50, 140, 140), (200, 110, 40), (110, 110, 110),
        (120, 40, 80), (80, 120, 40), (40, 90, 130), (140, 100, 160),
        (90, 160, 110), (160, 80, 110), (100, 70, 40), (70, 100, 160),
    ],
    dtype=np.uint8,
)

# Minimum white-minus-black luma difference for the calibration to count as valid.
MIN_CONTRAST = 96.0
# A data block must lie within this fraction of the contrast from black or white.
MAX_AMBIGUITY = 0.3


def _cells() -> list[tuple[int, int]]:
    """(row, col) of every cell in reading order."""
    return [(r, c) for r in range(GRID_ROWS) for c in range(GRID_COLS)]


def _checksum(sender_id: int, counter: int) -> int:
    return (bin(sender_id).count("1") + bin(counter).count("1")) % 4


def _encode_bits(sender_id: int, counter: int) -> list[int]:
    """Cell values (1 white, 0 black) in `_cells()` order."""
    bits = [1, 0]
    bits += [(sender_id >> i) & 1 for i in reversed(range(SENDER_BITS))]
    bits += [(_checksum(sender_id, counter) >> i) & 1 for i in reversed(range(2))]
    bits += [(counter >> i) & 1 for i in reversed(range(COUNTER_BITS))]
    return bits


def _cell_box(row: int, col: int, width: int, height: int, inset: float) -> tuple[int, ...]:
    """Pixel box (y0, y1, x0, x1) of a cell, shrunk by `inset` of the cell size on each side."""
    x0 = COL_X[col] + CELL_W * inset
    x1 = COL_X[col] + CELL_W * (1 - inset)
    y0 = ROW_Y[row] + CELL_H * inset
    y1 = ROW_Y[row] + CELL_H * (1 - inset)
    return (
        round(y0 * height),
        max(round(y1 * height), round(y0 * height) + 1),
        round(x0 * width),
        max(round(x1 * width), round(x0 * width) + 1),
    )


def make_video_frame(
    sender_id: int, counter: int, width: int = 320, height: int = 240
) -> np.ndarray:
    """An H x W x 3 uint8 RGB frame carrying `sender_id` (0..15) and `counter` (0..65535)."""
    if not 0 <= sender_id <= MAX_SENDER:
        raise ValueError(f"sender_id {sender_id} out of range 0..{MAX_SENDER}")
    if not 0 <= counter <= MAX_COUNTER:
        raise ValueError(f"counter {counter} out of range 0..{MAX_COUNTER}")
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:] = PALETTE[sender_id]
    for (row, col), bit in zip(_cells(), _encode_bits(sender_id, counter), strict=True):
        y0, y1, x0, x1 = _cell_box(row, col, width, height, inset=0.0)
        frame[y0:y1, x0:x1] = 255 if bit else 0
    return frame


def read_video_frame(rgb: np.ndarray) -> tuple[int, int] | None:
    """(sender_id, counter) read from a possibly compressed or rescaled pattern frame.

    Returns None when the calibration blocks lack contrast, a block is ambiguous, or the
    checksum fails: the frame is not (or no longer) a readable pattern.
    """
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"expected an H x W x 3 array, got shape {rgb.shape}")
    height, width = rgb.shape[:2]
    # Only the centre half of each block: codecs ring and bleed colour near edges.
    levels = []
    for row, col in _cells():
        y0, y1, x0, x1 = _cell_box(row, col, width, height, inset=0.25)
        levels.append(float(rgb[y0:y1, x0:x1, :3].mean()))
    white, black = levels[0], levels[1]
    contrast = white - black
    if contrast < MIN_CONTRAST:
        return None
    bits = []
    for level in levels[2:]:
        position = (level - black) / contrast  # 0 = black, 1 = white
        if MAX_AMBIGUITY < position < 1 - MAX_AMBIGUITY:
            return None
        bits.append(1 if position >= 0.5 else 0)
    sender_id = int("".join(map(str, bits[:SENDER_BITS])), 2)
    checksum = int("".join(map(str, bits[SENDER_BITS : SENDER_BITS + 2])), 2)
    counter = int("".join(map(str, bits[SENDER_BITS + 2 :])), 2)
    if checksum != _checksum(sender_id, counter):
        return None
    return sender_id, counter


def make_tone(
    freq_hz: float, sample_rate: int = 48000, samples: int = 960, start_sample: int = 0
) -> np.ndarray:
    """Mono int16 sine at half scale; phase continues across calls via `start_sample`."""
    n = np.arange(start_sample, start_sample + samples, dtype=np.float64)
    # Reduce the phase modulo one period in integer-friendly form to keep precision for
    # long-running streams (start_sample grows without bound).
    phase = 2 * np.pi * np.mod(freq_hz * n, sample_rate) / sample_rate
    return np.round(np.sin(phase) * 16384).astype(np.int16)


def dominant_frequency(samples: np.ndarray, sample_rate: int = 48000, channels: int = 1) -> float:
    """Strongest frequency in Hz (Hann window, FFT, sub-bin interpolation).

    `samples` may be interleaved: with `channels` > 1 the channels are averaged first.
    """
    data = np.asarray(samples, dtype=np.float64).reshape(-1)
    if channels > 1:
        data = data[: len(data) - len(data) % channels].reshape(-1, channels).mean(axis=1)
    if len(data) < 16:
        raise ValueError(f"too few samples ({len(data)}) to measure a frequency")
    data = data - data.mean()
    spectrum = np.abs(np.fft.rfft(data * np.hanning(len(data))))
    spectrum[0] = 0.0  # ignore what is left of DC
    peak = int(np.argmax(spectrum))
    offset = 0.0
    if 0 < peak < len(spectrum) - 1:
        # Gaussian (log-parabolic) interpolation: accurate for a Hann-windowed sine.
        a, b, c = np.log(spectrum[peak - 1 : peak + 2] + 1e-12)
        denom = a - 2 * b + c
        if denom < 0:
            offset = 0.5 * (a - c) / denom
    return (peak + offset) * sample_rate / len(data)
