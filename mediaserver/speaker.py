"""Active speaker: from the audio-level header extension (RFC 6464), one per Router.

On the packet path an audio Producer only adds each packet's loudness to two plain integers
(`loudness_sum`, `level_packets`; see `loudness`). Every `INTERVAL` a worker timer reads and
clears them (`ActiveSpeakers.tick`), giving each audio producer of a Router the mean loudness of
the interval, and a `SpeakerSelector` per Router applies the rule below. Changes go to the
listeners (the control API's `on_active_speaker`).

The rule (a much simplified cousin of Jitsi's DominantSpeakerIdentification and mediasoup's
ActiveSpeakerObserver), per interval of INTERVAL seconds:

- loudness is 127 - level (level: -dBov, 0 loudest, 127 silence), so 0 is silence; a producer
  *speaks* in an interval when its mean loudness is at least `threshold` (127 - 50: louder
  than -50 dBov); paused producers and intervals without the extension count as silence;
- with no current speaker, the loudest producer speaking becomes the speaker at once;
- a challenger replaces the current speaker only after `switch` intervals in a row in which
  it speaks *and* is at least `margin` dB louder than the current speaker (a current speaker
  who went quiet has loudness 0, so anyone speaking qualifies); of several such challengers
  the loudest wins; an interval that breaks the row starts it again (a cough, a short
  interjection, two people talking over each other at a similar level change nothing);
- silence changes nothing: the last speaker stays until someone else takes over;
- the speaker's producer going away (closed, or its router's producers no longer hold it)
  ends it: the loudest producer speaking in that interval, if any, takes over at once,
  otherwise the speaker is None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .pipe import PipeTransport

if TYPE_CHECKING:
    from .producer import Producer
    from .router import Router

INTERVAL = 0.3  # seconds between two decisions (the worker's timer)
THRESHOLD = 127 - 50  # loudness (127 - level) from which an interval counts as speech
MARGIN = 6  # dB a challenger must be louder than the current speaker
SWITCH = 3  # intervals in a row a challenger must win to take over (0.9 s)

Listener = Callable[[str, str | None], None]


def loudness(level_byte: int) -> int:
    """Loudness 0 (silence, -127 dBov) .. 127 (0 dBov) of an RFC 6464 byte (V flag ignored)."""
    return 127 - (level_byte & 0x7F)


class SpeakerSelector:
    """The rule of the module docstring for one Router; pure (no clock, no I/O)."""

    def __init__(self, threshold: int = THRESHOLD, margin: int = MARGIN,
                 switch: int = SWITCH) -> None:
        self.threshold = threshold
        self.margin = margin
        self.switch = switch
        self.current: str | None = None
        self.streaks: dict[str, int] = {}  # challenger -> intervals in a row it qualified

    def update(self, levels: dict[str, float]) -> bool:
        """One interval: producer id -> its mean loudness (every audio producer of the
        Router, 0 when silent). True when `current` changed."""
        before = self.current
        if self.current is not None and self.current not in levels:
            self.current = None
        speaking = {pid: level for pid, level in levels.items() if level >= self.threshold}
        if self.current is None:
            self.streaks.clear()
            self.current = max(speaking, key=speaking.__getitem__, default=None)
            return self.current != before
        floor = levels[self.current] + self.margin
        qualified = {pid: level for pid, level in speaking.items()
                     if pid != self.current and level >= floor}
        self.streaks = {pid: self.streaks.get(pid, 0) + 1 for pid in qualified}
        ready = [pid for pid, n in self.streaks.items() if n >= self.switch]
        if ready:
            self.current = max(ready, key=qualified.__getitem__)
            self.streaks.clear()
        return self.current != before


class ActiveSpeakers:
    """The worker's side: a selector per Router, run by its timer, and the listeners told of
    each change. `fault(step, owner)` records a listener that raised (Worker.fault)."""

    def __init__(self, fault: Callable[[str, str], None]) -> None:
        self.fault = fault
        self.listeners: list[Listener] = []
        self.selectors: dict[str, SpeakerSelector] = {}
        self.speaking: dict[str, Producer] = {}  # router id -> its speaker's audio producer

    def tick(self, routers: Iterable[Router]) -> None:
        seen = set()
        for router in routers:
            levels: dict[str, float] = {}
            for producer in router.producers.values():
                if producer.kind != "audio":
                    continue
                count, total = producer.level_packets, producer.loudness_sum
                producer.level_packets = producer.loudness_sum = 0
                levels[producer.id] = total / count if count and not producer.paused else 0.0
            selector = self.selectors.get(router.id)
            if selector is None:
                if not levels:
                    continue  # no audio yet: no selector, nothing to tell
                selector = self.selectors[router.id] = SpeakerSelector()
            seen.add(router.id)
            if selector.update(levels):
                if selector.current is None:
                    self.speaking.pop(router.id, None)
                else:
                    self.speaking[router.id] = router.producers[selector.current]
                self._tell(router.id, selector.current)
        for router_id in self.selectors.keys() - seen:
            del self.selectors[router_id]  # the router closed
            self.speaking.pop(router_id, None)

    def current(self, router_id: str) -> str | None:
        selector = self.selectors.get(router_id)
        return selector.current if selector is not None else None

    def speaks(self, producer: Producer) -> bool:
        """Whether `producer` (audio or video: the allocator's question) is the active
        speaker's in its Router: the speaking producer, or one published with it: on the same
        WebRTC transport (a participant publishes every track on one), or, for the mirrors in
        an edge Router (which share one pipe), with the same CNAME."""
        speaker = self.speaking.get(producer.router_id)
        if speaker is None:
            return False
        if producer is speaker or (producer.transport is speaker.transport
                                   and not isinstance(speaker.transport, PipeTransport)):
            return True
        return bool(speaker.params.cname) and producer.params.cname == speaker.params.cname

    def _tell(self, router_id: str, producer_id: str | None) -> None:
        for listener in self.listeners:
            try:
                listener(router_id, producer_id)
            except Exception:
                self.fault("active-speaker listener", router_id)
