"""A simulcast Producer piped to an edge worker with every encoding (pipe.EncodingPipeConsumer):
the edge's subscribers switch layers there as on the origin, their keyframe requests reach the
origin's encoding they need, and a packet of an encoding lost on the pipe is NACKed by the edge
and resent from that encoding's cache.

Two real Workers in one process joined by their pipe transports over loopback UDP; the origin's
publisher and the edge's subscriber have plaintext "SRTP" (tests/test_forwarding.py's Capture),
so what each worker sends them is read back, awaited as it comes."""

from __future__ import annotations

import asyncio

from mediaserver.params import ConsumerParams
from mediaserver.rtp.rtcp import Pli, parse_compound
from mediaserver.simulcast import SimulcastConsumer
from mediaserver.worker import Worker
from tests.test_forwarding import CONT, DELTA, KEY, VP8, Capture, Captured, header
from tests.test_simulcast import SSRCS, Layers, bodies, forget_throttle, setup


class Arrivals:
    """What a worker sends to one of its captured transports, awaited datagram by datagram."""

    def __init__(self, capture: Capture, transport: Captured) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        send = capture.worker.sendto

        def sendto(data: bytes, addr: tuple) -> None:
            send(data, addr)
            if addr == transport.addr:
                self.queue.put_nowait(data)

        capture.worker.sendto = sendto

    async def next(self, rtcp: bool) -> bytes:
        while True:
            data = await asyncio.wait_for(self.queue.get(), 10)
            if (191 < data[1] < 224) == rtcp:
                return data

    async def rtp(self, count: int) -> list[bytes]:
        return [await self.next(rtcp=False) for _ in range(count)]

    async def pli(self, ssrc: int) -> None:
        """Until a keyframe request for `ssrc` comes."""
        while not any(isinstance(i, Pli) and i.media_ssrc == ssrc
                      for i in parse_compound(await self.next(rtcp=True))):
            pass


async def test_the_edge_mirror_has_every_encoding_and_its_subscribers_switch_there() -> None:
    origin, pub, _subs, producer, _consumers = await setup()
    published = Arrivals(origin_capture(origin), pub)
    edge = Worker()
    edge.loop = asyncio.get_running_loop()
    edge_router = edge.create_router()
    here = await origin.create_pipe_transport(producer.router_id)
    there = await edge.create_pipe_transport(edge_router)
    try:
        origin.connect_pipe_transport(here.id, "127.0.0.1", there.port)
        edge.connect_pipe_transport(there.id, "127.0.0.1", here.port)
        params = origin.pipe_consume(here.id, producer.id, every_encoding=True)
        assert [e.ssrc for e in params.encodings] == [
            c.ssrc for c in origin.pipes[here.id].consumers_by_ssrc.values()]
        mirror = edge.producers[edge.pipe_produce(there.id, params)]
        assert len(mirror.streams) == 3
        capture = Capture(edge)
        sub = capture.transport(edge_router)
        arrivals = Arrivals(capture, sub)
        forget_throttle(producer)
        info = edge.consume(sub.id, mirror.id, ConsumerParams("0", VP8, ssrc=7000,
                                                              rtx_ssrc=7001))
        consumer = edge.consumers[info.id]
        assert isinstance(consumer, SimulcastConsumer)
        # the edge's new consumer asks for keyframes; they reach the origin's encodings
        await published.pli(SSRCS[2])
        layers = Layers(producer)
        edge.set_preferred_layers(consumer.id, 0, 3)
        layers.frame(0, KEY, CONT)
        layers.frame(1, KEY, CONT)  # not its layer: nothing of it goes to the subscriber
        layers.frame(0, DELTA)
        got = await arrivals.rtp(3)
        assert bodies(got) == [KEY, CONT, DELTA] and consumer.spatial_layer == 0
        assert {header(p)[4] for p in got} == {7000}

        # up to the top: its keyframe is asked from the origin's top encoding, then taken
        forget_throttle(producer)
        forget_throttle(mirror)
        edge.set_preferred_layers(consumer.id, 2, 3)
        await published.pli(SSRCS[2])
        layers.frame(2, DELTA)  # not a keyframe: still on layer 0
        layers.frame(0, DELTA)
        layers.frame(2, KEY)
        layers.frame(0, DELTA)  # after the switch: not forwarded
        layers.frame(2, DELTA)
        got = await arrivals.rtp(3)
        assert bodies(got) == [DELTA, KEY, DELTA] and consumer.spatial_layer == 2
        seqs = [header(p)[2] for p in got]
        assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(3)]  # one stream, no gap

        # a packet of the top encoding lost on the pipe: the edge NACKs it, the origin resends
        # it from that encoding's cache, and the subscriber gets it in its place
        pipe = origin.pipes[here.id]
        send = pipe.send_rtp
        pipe.send_rtp = lambda packet: None  # the pipe loses the next packet
        layers.frame(2, b"\x10\x01\x00lost")
        pipe.send_rtp = send
        layers.frame(2, b"\x10\x01\x00after")
        (after,) = await arrivals.rtp(1)
        top = mirror.streams[2]
        assert len(top.missing) == 1
        for entry in top.missing.values():
            entry[1] = -1e9  # due now (the NACK timer waits a little for reordering)
        edge._nack_tick()
        (resent,) = await arrivals.rtp(1)
        assert bodies([after, resent]) == [b"\x10\x01\x00after", b"\x10\x01\x00lost"]
        assert header(resent)[2] == (header(after)[2] - 1) & 0xFFFF
    finally:
        for worker in (origin, edge):
            for p in list(worker.pipes.values()):
                p.close()


def origin_capture(worker: Worker) -> Capture:
    """The Capture tests.test_simulcast.setup made (its sendto's closure)."""
    return worker.sendto.__closure__[0].cell_contents  # type: ignore[union-attr]
