"""A 5x7 bitmap font (printable ASCII) and text drawing on numpy RGB images, no dependencies.

Each glyph is 5 column bytes, bit 0 at the top (the classic HD44780-style layout). Characters
outside ASCII are folded to their base letter (NFKD) or drawn as '?'.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import numpy as np

_GLYPHS = (  # noqa: SIM905 (a table reads better as one string)
    "0000000000 00005f0000 0007000700 147f147f14 242a7f2a12 2313086462 3649552250 0005030000"
    " 001c224100 0041221c00 082a1c2a08 08083e0808 0050300000 0808080808 0060600000 2010080402"
    " 3e5149453e 00427f4000 4261514946 2141454b31 1814127f10 2745454539 3c4a494930 0171090503"
    " 3649494936 064949291e 0036360000 0056360000 0008142241 1414141414 4122140800 0201510906"
    " 3249794136 7e1111117e 7f49494936 3e41414122 7f4141221c 7f49494941 7f09090101 3e41415132"
    " 7f0808087f 00417f4100 2040413f01 7f08142241 7f40404040 7f0204027f 7f0408107f 3e4141413e"
    " 7f09090906 3e4151215e 7f09192946 4649494931 01017f0101 3f4040403f 1f2040201f 7f2018207f"
    " 6314081463 0304780403 6151494543 00007f4141 0204081020 41417f0000 0402010204 4040404040"
    " 0001020400 2054545478 7f48444438 3844444420 384444487f 3854545418 087e090102 081454543c"
    " 7f08040478 00447d4000 2040443d00 007f102844 00417f4000 7c04180478 7c08040478 3844444438"
    " 7c14141408 081414187c 7c08040408 4854545420 043f444020 3c4040207c 1c2040201c 3c4030403c"
    " 4428102844 0c5050503c 4464544c44 0008364100 00007f0000 0041360800 08082a1c08"
).split()

GLYPH_W, GLYPH_H = 5, 7


def _build() -> np.ndarray:
    table = np.zeros((len(_GLYPHS), GLYPH_H, GLYPH_W), dtype=bool)
    for i, code in enumerate(_GLYPHS):
        for col, byte in enumerate(bytes.fromhex(code)):
            for row in range(GLYPH_H):
                table[i, row, col] = bool(byte >> row & 1)
    return table


_TABLE = _build()


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c if " " <= c <= "~" else "?" for c in folded) if folded else "?"


@lru_cache(maxsize=512)
def text_mask(text: str, scale: int = 2) -> np.ndarray:
    """Boolean H x W mask of `text` (one pixel of spacing between glyphs), scaled up (cached:
    treat as read-only)."""
    chars = _ascii(text)
    mask = np.zeros((GLYPH_H, len(chars) * (GLYPH_W + 1)), dtype=bool)
    for i, c in enumerate(chars):
        mask[:, i * (GLYPH_W + 1) : i * (GLYPH_W + 1) + GLYPH_W] = _TABLE[ord(c) - 32]
    return np.repeat(np.repeat(mask, scale, axis=0), scale, axis=1)


def draw_text(
    image: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int] = (255, 255, 255),
    scale: int = 2, max_width: int | None = None,
) -> None:
    """Draw `text` with its top-left at (x, y), clipped to the image and to `max_width`."""
    mask = text_mask(text, scale)
    h, w = image.shape[:2]
    limit = w - x if max_width is None else min(max_width, w - x)
    mask = mask[: max(0, h - y), : max(0, limit)]
    if mask.size:
        image[y : y + mask.shape[0], x : x + mask.shape[1]][mask] = color


def text_width(text: str, scale: int = 2) -> int:
    return len(_ascii(text)) * (GLYPH_W + 1) * scale
