"""The estimator's per-feedback work in C (mediaserver/native/bwe.c): parse, match to the send
records, arrival groups, trendline and overuse detector, rate windows, AIMD and loss-based
control, one call per feedback.

No fallback: without the compiled extension (`pip install -e .`) this import fails. The Python
of rtp/twcc.py, delay.py, rate.py and estimator.py stays the reference it is tested against
(tests/test_bwe_native.py); `SendSideEstimator(native=False)` runs that instead."""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import Any

from ..native._bwe import ffi, lib
from .delay import INITIAL_THRESHOLD, NORMAL, OVERUSE, UNDERUSE
from .history import SendHistory

USAGES = (NORMAL, OVERUSE, UNDERUSE)  # bwe.c's MS_NORMAL, MS_OVERUSE, MS_UNDERUSE
# bwe.c's MS_TWCC_E_*: the messages rtp/twcc.parse_feedback raises for the same FCIs
ERRORS = {-1: "transport-cc FCI too short", -2: "transport-cc status chunks truncated",
          -3: "transport-cc reserved status symbol", -4: "transport-cc receive deltas truncated"}


class NativeEstimator:
    """The C state of one SendSideEstimator (`s`, an ms_bwe, with its figures), owned by this
    object and freed with it; `state`, `threshold` and `trend` read as TrendlineDetector's."""

    __slots__ = ("s", "_history", "_ring")

    def __init__(self, initial: int, min_rate: int, max_rate: int,
                 increase_per_second: float) -> None:
        self.s = ffi.gc(ffi.new("ms_bwe *"), lib.ms_bwe_free)
        lib.ms_bwe_init(self.s, INITIAL_THRESHOLD, initial, min_rate, max_rate,
                        increase_per_second)
        self._history: SendHistory | None = None
        self._ring: tuple[Any, Any, Any, int] = (ffi.NULL, ffi.NULL, ffi.NULL, 0)

    @property
    def state(self) -> str:
        return USAGES[self.s.state]

    @property
    def threshold(self) -> float:
        return self.s.threshold

    @property
    def trend(self) -> float:
        return self.s.trend

    def raise_to(self, rate: float) -> int:
        """SendSideEstimator.raise_to past its test: both controls from `rate`; the estimate."""
        lib.ms_bwe_raise_to(self.s, rate)
        return self.s.estimate

    def feedback(self, history: SendHistory, fci: bytes, now: float) -> bool:
        """The FCI against `history`'s ring: True if it told of packets we know (the figures
        in `s` are new). ValueError if malformed (nothing changed)."""
        if history is not self._history:  # pointers into its arrays, kept while it is ours
            self._ring = (ffi.from_buffer("double[]", history._times),
                          ffi.from_buffer("uint16_t[]", history._sizes),
                          ffi.from_buffer("int64_t[]", history._head), history._mask)
            self._history = history
        return self._call(fci, *self._ring, now)

    def feedback_from(self, sent: Iterable[tuple[int, float, int]], base: int, count: int,
                      fci: bytes, now: float) -> bool:
        """As `feedback`, the send records given as (seq, send time, size) instead of a
        history (SendSideEstimator.on_feedback): laid out as a ring that holds them all."""
        size = 1 << max(count - 1, 0).bit_length()
        times, sizes = array("d", [-1.0]) * size, array("H", [0]) * size
        mask = size - 1
        for seq, send, n in sent:
            if (seq - base) & 0xFFFF < count:
                # stored as SendHistory stores them (it keeps sizes up to 65,535)
                times[seq & mask], sizes[seq & mask] = send, n if n < 0xFFFF else 0xFFFF
        head = array("q", [(base + count - 1) & 0xFFFF])
        return self._call(fci, ffi.from_buffer("double[]", times),
                          ffi.from_buffer("uint16_t[]", sizes), ffi.from_buffer("int64_t[]", head),
                          mask, now)

    def _call(self, fci: bytes, times: Any, sizes: Any, head: Any, mask: int,
              now: float) -> bool:
        rc = lib.ms_bwe_feedback(self.s, fci, len(fci), times, sizes, head, mask, now)
        if rc >= 0:
            return rc > 0
        if rc in ERRORS:
            raise ValueError(ERRORS[rc])
        raise MemoryError("transport-cc feedback")
