"""Scenarios: who joins which room at each step. The runner turns the plans into bots.

- meeting N x N: one meeting room, N participants who all publish and subscribe.
- webinar 1 x M: one webinar room, one presenter (host) who publishes, M attendees who only
  subscribe; stepped (`--step S --max X`) it adds S attendees per step until loss passes 1%
  or latency p99 passes 50 ms, or X is reached.
- rooms K x n: K meeting rooms of n participants at once.
Each step is measured over the same window; later steps keep the bots of earlier ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

MAX_SENDERS = 16  # the video pattern carries a 4-bit sender id

LOSS_LIMIT = 1.0  # percent
P99_LIMIT = 50.0  # ms


@dataclass
class Member:
    """One participant to start: a bot session with its roles."""

    room: str
    name: str
    identity: str
    role: str  # token role: host, presenter, attendee
    publish: bool
    subscribe: bool
    sample: bool
    sender_id: int = 0
    aux_subscriber: bool = False  # see benchmarks.bots.BotSpec
    link_kbps: int = 0  # behind an emulated bottleneck of this rate (benchmarks.link)
    layer: int = -1  # the simulcast layer it shows (-1: the server's choice)


@dataclass
class Step:
    label: str
    x: int  # the value plotted on the x axis (attendees, participants)
    new_members: list[Member] = field(default_factory=list)


@dataclass
class RoomSpec:
    name: str
    type: str  # "meeting" or "webinar"


@dataclass
class Scenario:
    name: str
    rooms: list[RoomSpec]
    steps: list[Step]
    stepped: bool = False  # stop early when a step breaks the limits
    description: str = ""

    @property
    def sender_ids(self) -> set[int]:
        return {m.sender_id for s in self.steps for m in s.new_members if m.publish}

    def iter_steps(self) -> Iterator[Step]:
        yield from self.steps


def _sample(index: int, every: int) -> bool:
    return every > 0 and index % every == 0


def meeting(size: int, sample_every: int = 10, room: str = "meeting-1") -> Scenario:
    members = [Member(room, f"m{size}-s{i % MAX_SENDERS}-{i}", f"{room}-p{i}", "host", True,
                      True, _sample(i, sample_every), i % MAX_SENDERS) for i in range(size)]
    return Scenario(f"meeting-{size}x{size}", [RoomSpec(room, "meeting")],
                    [Step(f"{size}x{size}", size, members)],
                    description=f"one meeting of {size}, everyone publishes audio+video and "
                                "subscribes to everyone else")


def rooms(count: int, size: int, sample_every: int = 10) -> Scenario:
    specs = [RoomSpec(f"room-{k + 1}", "meeting") for k in range(count)]
    members = []
    for k, spec in enumerate(specs):
        members += [Member(spec.name, f"r{k + 1}-s{i % MAX_SENDERS}-{i}", f"{spec.name}-p{i}",
                           "host", True, True, _sample(i, sample_every), i % MAX_SENDERS)
                    for i in range(size)]
    return Scenario(f"rooms-{count}x{size}", specs,
                    [Step(f"{count}x{size}", count * size, members)],
                    description=f"{count} meetings of {size} at once")


def is_weak(index: int, share: float) -> bool:
    """Attendee `index` is one of the `share` (0..1) on weak links: evenly spread, so every
    step has its share (10%: attendees 9, 19, 29...)."""
    return share > 0 and int((index + 1) * share) > int(index * share)


def webinar(attendees: list[int], sample_every: int = 10, presenters: int = 1,
            room: str = "webinar-1", weak_share: float = 0.0, weak_kbps: int = 400,
            layer_mix: tuple[int, ...] = ()) -> Scenario:
    """One step per attendee count in `attendees` (increasing); each adds the difference.

    weak_share: the share of attendees (0..1) behind an emulated link of weak_kbps;
    layer_mix: the simulcast layers attendees show, in turn (attendee i: layer_mix[i % n]);
    empty: none asked (the server's choice)."""
    # Presenters subscribe too (as in a real webinar, they see each other), outside the
    # audience's statistics. With one presenter nobody else publishes: its subscribe side gets
    # no offer and simply waits, however long the run.
    first = [Member(room, f"pres-s{i}-{i}", f"{room}-pres{i}", "host", True, True, False, i,
                    aux_subscriber=True) for i in range(presenters)]
    steps = []
    have = 0
    for target in attendees:
        new = []
        for i in range(have, target):
            weak = is_weak(i, weak_share)
            new.append(Member(room, f"att-{i}", f"{room}-att{i}", "attendee", False, True,
                              _sample(i, sample_every) and not weak,
                              link_kbps=weak_kbps if weak else 0,
                              layer=layer_mix[i % len(layer_mix)] if layer_mix else -1))
        steps.append(Step(f"1x{target}" if presenters == 1 else f"{presenters}x{target}",
                          target, (first if not steps else []) + new))
        have = target
    label = (f"webinar-{presenters}x{attendees[0]}" if len(attendees) == 1
             else f"webinar-steps-{attendees[0]}-{attendees[-1]}")
    description = (f"{presenters} presenter(s) publishing to attendees who only subscribe"
                   + (", stepped up" if len(attendees) > 1 else ""))
    if weak_share > 0:
        label += f"-weak{round(weak_share * 100)}pc"
        description += (f"; {weak_share:.0%} of the attendees behind an emulated "
                        f"{weak_kbps} kbit/s downlink (benchmarks/link.py)")
    if layer_mix:
        label += "-layers" + "".join(map(str, layer_mix))
        description += ("; attendees show the simulcast layers "
                        + ", ".join(map(str, layer_mix)) + " in turn")
    return Scenario(label, [RoomSpec(room, "webinar")], steps, stepped=len(attendees) > 1,
                    description=description)


def step_targets(step: int, maximum: int) -> list[int]:
    if step <= 0:
        raise ValueError("--step must be positive")
    out = list(range(step, maximum + 1, step))
    if not out or out[-1] < maximum:
        out.append(maximum)
    return out


def over_limits(loss_percent: float | None, p99_ms: float | None) -> str:
    """Why a stepped run stops here, or '' to go on."""
    if loss_percent is not None and loss_percent > LOSS_LIMIT:
        return f"loss {loss_percent:.2f}% > {LOSS_LIMIT}%"
    if p99_ms is not None and p99_ms > P99_LIMIT:
        return f"latency p99 {p99_ms:.1f} ms > {P99_LIMIT} ms"
    return ""
