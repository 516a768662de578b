"""Fitting one subscriber's consumers into its bandwidth estimate (pure: no I/O, no clock).

Given what the subscriber's link carries (the send-side estimate, bwe/) and what each of its
consumers could send (audio, or the layers of a video: resolution and bitrate), choose a layer
per video, or none. The order is the issue's, and LiveKit's stream allocator's:

1. audio first: always, even past the estimate (a call without sound is no call);
2. nothing for a video the subscriber does not show (a hidden tile, a background tab);
3. then by priority: screen share, the active speaker, larger tiles before smaller ones; each
   gets its lowest layer if that fits, otherwise it is paused (a lower priority one may still
   fit: a thumbnail is cheaper than a screen);
4. then, in the same order, each is raised layer by layer up to the smallest layer that covers
   its tile (never a layer larger than the tile shows), while the rest of the estimate allows.

Upgrades need `headroom` (a fraction of the layer's bitrate) to spare, and a layer already sent
is kept while `keep` of its bitrate fits, so an estimate that wobbles around a layer's cost
does not switch it up and down every round (each switch and each resume costs a keyframe, and
Chromium's simulcast makes one on every encoding at once).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Layer:
    width: int
    height: int
    bitrate: int  # bit/s, as measured on the producer's stream (or its target)


@dataclass(frozen=True)
class Demand:
    consumer_id: str
    kind: str  # "audio" or "video"
    layers: tuple[Layer, ...] = ()  # video: lowest first; one for a stream without simulcast
    bitrate: int = 0  # audio: what it costs
    source: str = "camera"  # "camera", "screen", "microphone"
    speaker: bool = False  # the room's active speaker
    visible: bool = True
    tile: tuple[int, int] | None = None  # shown size in device pixels; None: unknown (no cap)
    # its lowest layer can be thinned (VP8 temporal layers): rather than overloading the link
    # with all of it (keep_lowest), it is held here and given lower frame rates (allocation.py)
    thinnable: bool = False


@dataclass
class Allocation:
    layers: dict[str, int | None] = field(default_factory=dict)  # video consumer -> layer
    used: int = 0  # bit/s of what was given, audio included
    paused: list[str] = field(default_factory=list)  # visible videos that did not fit

    def layer(self, consumer_id: str) -> int | None:
        return self.layers.get(consumer_id)


def useful_layers(demand: Demand) -> int:
    """How many of the layers are worth sending: up to the first that covers the tile."""
    if demand.tile is None or demand.source == "screen":
        return len(demand.layers)  # a screen's detail is its point: full resolution
    width, height = demand.tile
    for index, layer in enumerate(demand.layers):
        if layer.width >= width and layer.height >= height:
            return index + 1
    return len(demand.layers)


def _rank(demand: Demand) -> tuple:
    area = demand.tile[0] * demand.tile[1] if demand.tile else 0
    return (demand.source != "screen", not demand.speaker, -area, demand.consumer_id)


def allocate(budget: int, demands: list[Demand], headroom: float = 0.1,
             current: dict[str, int | None] | None = None, keep: float = 0.8,
             keep_lowest: float | None = None) -> Allocation:
    """Layers for `demands` within `budget` bit/s. `current`: the last allocation, so that a
    layer already sent is kept while `keep` of its cost fits (`keep_lowest` for the lowest
    layer, if given, and for the first video's lowest layer even when new; only upgrades need
    headroom; neither for a `thinnable` one)."""
    current = current or {}
    result = Allocation()
    for demand in demands:
        if demand.kind == "audio":
            result.used += demand.bitrate
    left = budget - result.used
    videos = sorted((d for d in demands if d.kind == "video" and d.layers), key=_rank)
    for demand in demands:
        if demand.kind == "video" and (not demand.visible or not demand.layers):
            result.layers[demand.consumer_id] = None
    shown = [d for d in videos if d.visible]

    def cost(demand: Demand, index: int) -> int:
        """What `index` needs to fit: less than its bitrate if it is being sent (`keep`),
        more if it is new (`headroom`)."""
        had = current.get(demand.consumer_id)
        if had is None or index > had:
            factor = 1 + headroom
        elif index == 0 and keep_lowest is not None and not demand.thinnable:
            factor = keep_lowest
        else:
            factor = keep
        return int(demand.layers[index].bitrate * factor)

    for rank, demand in enumerate(shown):  # everyone's lowest layer first, by priority
        # the most important picture is started (or kept) at keep_lowest of its cost too: a
        # weak link's estimate hovering just under the lowest layer plus headroom would
        # otherwise leave the person with no picture at all
        need = int(demand.layers[0].bitrate * keep_lowest) if rank == 0 and \
            keep_lowest is not None and not demand.thinnable else cost(demand, 0)
        if need <= left:
            result.layers[demand.consumer_id] = 0
            left -= demand.layers[0].bitrate
        else:
            result.layers[demand.consumer_id] = None
            result.paused.append(demand.consumer_id)
    for demand in shown:  # then up, one by one, the most important first
        index = result.layers[demand.consumer_id]
        if index is None:
            continue
        top = useful_layers(demand) - 1
        while index < top:
            step = cost(demand, index + 1) - demand.layers[index].bitrate
            if step > left:
                break
            left -= demand.layers[index + 1].bitrate - demand.layers[index].bitrate
            index += 1
        result.layers[demand.consumer_id] = index
    result.used = budget - left
    return result
