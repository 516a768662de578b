"""What producers and consumers see of the worker and the transports they live in.

They are built with these, never with the Worker: `WorkerLink` is all they share with their
worker (the fan-out batch, the NACK schedule, the loop for delayed keyframe requests, the
socket's send, and where their counters go when they close); `ProducerTransport` is what a
Producer needs from the transport its packets arrive on (a WebRtcTransport or a PipeTransport);
`ConsumerTransport` is what every kind of consumer needs from the transport it sends on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from .sendbatch import SendBatch

if TYPE_CHECKING:
    from .consumer import BaseConsumer
    from .producer import Producer, RecvStream


def _unsent(data: bytes, addr: tuple) -> None:
    """The send of a worker without a socket yet."""


class WorkerLink:
    """One per worker, handed to each of its producers and consumers at construction."""

    __slots__ = ("batch", "nack_pending", "loop", "sendto", "producer_closed",
                 "consumer_closed")

    def __init__(self, producer_closed: Callable[[Producer], None],
                 consumer_closed: Callable[[BaseConsumer], None]) -> None:
        self.batch = SendBatch()  # the sends of one fan-out (sendbatch.py)
        self.nack_pending: set[RecvStream] = set()  # streams with gaps, for the NACK timer
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set at start
        # the socket's own sendto, bound once: the packet path calls it directly
        self.sendto: Callable[[bytes, tuple], None] = _unsent
        # a closed producer or consumer hands its counters over and leaves the registries
        self.producer_closed = producer_closed
        self.consumer_closed = consumer_closed


class ProducerTransport(Protocol):
    """Where a Producer's packets arrive, and where its feedback to the publisher goes."""

    id: str

    def send_keyframe_request(self, producer: RecvStream) -> None: ...

    def send_nacks(self, producer: RecvStream, seqs: list[int]) -> None: ...

    def remove_producer(self, producer: Producer) -> None: ...


class ConsumerTransport(Protocol):
    """What every kind of consumer needs from the transport it sends on."""

    id: str

    def remove_consumer(self, consumer: BaseConsumer) -> None: ...
