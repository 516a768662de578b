"""Composite layouts in numpy: grid, or active speaker large with the others in a strip; a
screen share, whatever the layout, is the large picture with the people in the strip.

Geometry is pure (the tests use it to find each tile in the output). Painting works on a
yuv420p canvas in numpy (fills, names from the bitmap font, plane copies), so nothing is
converted to RGB and back; each picture is fitted to its box by swscale, whatever its size,
so a participant changing resolution only changes the scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import av
import numpy as np

from .font import GLYPH_H, text_mask, text_width

GRID = "grid"
SPEAKER = "speaker"
LAYOUTS = (GRID, SPEAKER)
GAP = 4  # pixels between cells
BACKGROUND = (16, 16, 20)
PLACEHOLDER = (48, 48, 56)
HIGHLIGHT = (80, 200, 120)


@dataclass(frozen=True, slots=True)
class Cell:
    x: int
    y: int
    w: int
    h: int

    @property
    def bar(self) -> int:
        """Height of the name bar under the picture."""
        return 28 if self.h >= 200 else 20

    @property
    def text_scale(self) -> int:
        return 2 if self.h >= 100 else 1

    def video_box(self, src_w: int, src_h: int) -> tuple[int, int, int, int]:
        """(x, y, w, h) of a src_w x src_h picture fitted in the cell, centred together with
        the name bar that goes right under it."""
        area_h = max(2, self.h - self.bar)
        scale = min(self.w / max(1, src_w), area_h / max(1, src_h))
        w = max(2, min(self.w, round(src_w * scale))) & ~1
        h = max(2, min(area_h, round(src_h * scale))) & ~1
        return self.x + ((self.w - w) // 2 & ~1), self.y + ((area_h - h) // 2 & ~1), w, h


def cells(n: int, layout: str = GRID, width: int = 1280, height: int = 720) -> list[Cell]:
    """Cells for n tiles; with SPEAKER the first cell is the large one."""
    if n <= 0:
        return []
    if layout == SPEAKER and n > 1:
        main_h = height * 3 // 4
        strip_h = height - main_h
        k = n - 1
        thumb_w = width // max(k, 4)
        left = (width - thumb_w * k) // 2
        out = [_inset(0, 0, width, main_h)]
        out += [_inset(left + i * thumb_w, main_h, thumb_w, strip_h) for i in range(k)]
        return out
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    cw, ch = width // cols, height // rows
    out = []
    for i in range(n):
        r, c = divmod(i, cols)
        in_row = min(cols, n - r * cols)  # centre an incomplete last row
        left = (width - in_row * cw) // 2
        out.append(_inset(left + c * cw, r * ch + (height - rows * ch) // 2, cw, ch))
    return out


def _inset(x: int, y: int, w: int, h: int) -> Cell:
    # Even coordinates and sizes: chroma planes are subsampled by two (yuv420p).
    g = GAP // 2
    return Cell((x + g) & ~1, (y + g) & ~1, max(2, w - GAP) & ~1, max(2, h - GAP) & ~1)


def rgb_to_yuv(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """BT.601 limited range, what yuv420p from the encoders means."""
    r, g, b = rgb
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return round(y), round(u), round(v)


def yuv_planes(data: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V views of a (H*3/2) x W yuv420p array laid out as PyAV's to_ndarray gives it."""
    width = data.shape[1]
    # The chroma planes follow Y back to back: (H/2)x(W/2) each, which fills whole rows of
    # the W-wide array only when H is a multiple of 4 (a 636x358 tile is not), so slice flat.
    flat = data.reshape(-1)
    y_end = height * width
    c_size = (height // 2) * (width // 2)
    return (data[:height], flat[y_end : y_end + c_size].reshape(height // 2, width // 2),
            flat[y_end + c_size : y_end + 2 * c_size].reshape(height // 2, width // 2))


@dataclass(slots=True)
class TileView:
    name: str
    image: av.VideoFrame | None  # None draws the placeholder
    speaking: bool = False
    screen: bool = False  # a screen share: the main picture


def main_picture(tiles: list[TileView], layout: str) -> tuple[list[TileView], str]:
    """The tiles in drawing order and the layout to draw them with: while anyone shares a
    screen, the first screen share is the large tile of the speaker layout and everything
    else (people, other screens) goes in the strip; otherwise the tiles as they are."""
    if not any(t.screen for t in tiles):
        return tiles, layout
    return sorted(tiles, key=lambda t: not t.screen), SPEAKER  # stable: the oldest screen


class Painter:
    """Draws tiles into a reused yuv420p canvas (the encoder's input, no colour conversion).

    Background, placeholders and names are redrawn only when the arrangement changes; pictures
    are scaled to their box by swscale (`VideoFrame.reformat`) and copied plane by plane.
    """

    def __init__(self, width: int = 1280, height: int = 720) -> None:
        self.width, self.height = width, height
        self.data = np.zeros((height * 3 // 2, width), dtype=np.uint8)
        self.y, self.u, self.v = yuv_planes(self.data, height)
        self._signature: tuple = ()
        self._drawn: list[object] = []

    def fill(self, rgb: tuple[int, int, int], x: int, y: int, w: int, h: int) -> None:
        yy, uu, vv = rgb_to_yuv(rgb)
        self.y[y : y + h, x : x + w] = yy
        self.u[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = uu
        self.v[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = vv

    def text(self, text: str, x: int, y: int, scale: int, max_width: int) -> None:
        mask = text_mask(text, scale)[: self.height - y, : max(0, min(max_width, self.width - x))]
        if not mask.size:
            return
        self.y[y : y + mask.shape[0], x : x + mask.shape[1]][mask] = 235
        x, y = x & ~1, y & ~1
        small = mask[::2, ::2]
        self.u[y // 2 : y // 2 + small.shape[0], x // 2 : x // 2 + small.shape[1]][small] = 128
        self.v[y // 2 : y // 2 + small.shape[0], x // 2 : x // 2 + small.shape[1]][small] = 128

    def paint(self, tiles: list[TileView], layout: str = GRID) -> np.ndarray:
        """Draw every tile (picture or placeholder, name under it); returns the canvas."""
        boxes = cells(len(tiles), layout, self.width, self.height)
        signature = (layout, tuple((t.name, t.image is None, t.speaking,
                                    None if t.image is None else (t.image.width, t.image.height))
                                   for t in tiles))
        if signature != self._signature:
            self._signature = signature
            self._drawn = [None] * len(tiles)
            self.fill(BACKGROUND, 0, 0, self.width, self.height)
            for tile, cell in zip(tiles, boxes, strict=True):
                self._frame(tile, cell)
        for i, (tile, cell) in enumerate(zip(tiles, boxes, strict=True)):
            if tile.image is not None and self._drawn[i] is not tile.image:
                self._drawn[i] = tile.image
                x, y, w, h = cell.video_box(tile.image.width, tile.image.height)
                # AREA: half the cost of swscale's default (bicubic), no worse for shrinking
                scaled = tile.image.reformat(width=w, height=h, format="yuv420p",
                                             interpolation="AREA").to_ndarray()
                sy, su, sv = yuv_planes(scaled, h)
                self.y[y : y + h, x : x + w] = sy
                self.u[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = su
                self.v[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = sv
        return self.data

    def _frame(self, tile: TileView, cell: Cell) -> None:
        area_h = cell.h - cell.bar
        if tile.image is None:
            bar_y = cell.y + area_h
            self.fill(PLACEHOLDER, cell.x, cell.y, cell.w, area_h)
            initials = "".join(p[0] for p in tile.name.split()[:2]) or "?"
            scale = max(1, min(8, area_h // (3 * GLYPH_H)))
            tw = text_width(initials, scale)
            self.text(initials, cell.x + max(0, (cell.w - tw) // 2),
                      cell.y + max(0, (area_h - GLYPH_H * scale) // 2), scale, cell.w)
        else:
            _, y, _, h = cell.video_box(tile.image.width, tile.image.height)
            bar_y = y + h
        scale = cell.text_scale
        if tile.speaking:
            self.fill(HIGHLIGHT, cell.x, bar_y, cell.w, 4)
        tw = min(text_width(tile.name, scale), cell.w)
        self.text(tile.name, cell.x + (cell.w - tw) // 2,
                  bar_y + (cell.bar - GLYPH_H * scale) // 2, scale, cell.w)


class SpeakerTracker:
    """Active speaker from audio levels: the loudest recent, held for `hold` seconds."""

    def __init__(self, hold: float = 1.0, tau: float = 0.4, floor: float = 0.005) -> None:
        self.hold = hold
        self.tau = tau
        self.floor = floor
        self.levels: dict[str, tuple[float, float]] = {}  # key -> (smoothed rms, media time)
        self.current: str | None = None
        self._candidate: tuple[str, float] | None = None

    def add(self, key: str, rms: float, t: float) -> None:
        level, last = self.levels.get(key, (0.0, t))
        a = math.exp(-max(0.0, t - last) / self.tau)
        self.levels[key] = (level * a + rms * (1 - a), t)

    def forget(self, key: str) -> None:
        self.levels.pop(key, None)
        if self.current == key:
            self.current = None

    def speaker(self, t: float, keys: list[str]) -> str | None:
        live = {k: v[0] for k, v in self.levels.items() if k in keys and t - v[1] < 1.0}
        loudest = max(live, key=live.__getitem__, default=None)
        if loudest is None or live[loudest] < self.floor:
            return self.current if self.current in keys else None
        if self.current not in keys:
            self.current = loudest
        elif loudest != self.current:
            if self._candidate is None or self._candidate[0] != loudest:
                self._candidate = (loudest, t)
            elif t - self._candidate[1] >= self.hold:
                self.current = loudest
                self._candidate = None
        else:
            self._candidate = None
        return self.current
