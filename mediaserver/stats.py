"""Counter totals of a Worker, read from plain integers on its objects when asked.

Objects that close hand their counters to `Worker.retired`, so totals only ever grow, as
Prometheus counters must.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from .params import ConsumerDump, EncodingDump, MediaDump, ProducerDump, TransportDump
from .tcp import TcpAddr

if TYPE_CHECKING:
    from .consumer import BaseConsumer
    from .producer import Producer
    from .transport import WebRtcTransport
    from .worker import Worker


def transport_counters(t: WebRtcTransport) -> dict[str, int]:
    return {"packets_in": t.packets_in, "bytes_in": t.bytes_in, "packets_out": t.packets_out,
            "bytes_out": t.bytes_out, "rtcp_in": t.rtcp_in, "rtcp_out": t.rtcp_out,
            "srtp_errors": t.srtp_errors, "nacks_sent": t.nacks_sent, "plis_sent": t.plis_sent}


def producer_counters(p: Producer) -> dict[str, int]:
    return {"packets_lost": p.packets_lost_total, "rtx_received": p.retransmitted_in_total}


def consumer_counters(c: BaseConsumer) -> dict[str, int]:
    return {"nacks_received": c.nacks_received, "plis_received": c.plis_received,
            "retransmissions": c.retransmitted}


def worker_stats(worker: Worker) -> dict[str, int]:
    totals: Counter[str] = Counter(worker.retired)
    for t in worker.transports.values():
        totals.update(transport_counters(t))
    for p in worker.producers.values():
        totals.update(producer_counters(p))
    for c in worker.consumers.values():
        totals.update(consumer_counters(c))
    out = dict(totals)
    out.update(transports=len(worker.transports), producers=len(worker.producers),
               consumers=len(worker.consumers), datagrams_in=worker.datagrams_in,
               dropped=worker.dropped, errors=worker.errors, timer_errors=worker.timer_errors)
    if worker.tcp is not None:  # ICE-TCP connections (tcp.py)
        out.update(worker.tcp.counters())
    return out


def worker_dump(worker: Worker) -> MediaDump:
    return MediaDump(
        [TransportDump(t.id, t.router_id, t.state, t.packets_in, t.packets_out,
                       t.bwe.estimate if t.bwe.feedbacks else 0,
                       t.allocator.allocated if t.allocator else 0,
                       bool(t.allocator and t.allocator.prober.probing),
                       "" if t.addr is None else "tcp" if t.addr.__class__ is TcpAddr else "udp")
         for t in worker.transports.values()],
        [ProducerDump(p.id, p.router_id, p.kind, p.codec.name, p.paused, p.packets_received,
                      len(p.consumers),
                      [EncodingDump(s.rid, s.ssrc, s.active, s.bitrate) for s in p.streams])
         for p in worker.producers.values()],
        [ConsumerDump(c.id, c.producer.id, c.transport.id, c.kind, c.paused, c.packets,
                      c.spatial_layer, c.target_spatial_layer, sorted(c.holds),
                      *((c.temporal.current, c.temporal.target) if c.temporal else ()))
         for c in worker.consumers.values()])
