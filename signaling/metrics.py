"""Prometheus metrics, collected from plain counters when /metrics is scraped.

Nothing on the packet path calls into prometheus_client: a custom collector reads the
Worker's and the rooms' integers at scrape time (DESIGN.md section 3, rule 4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from mediaserver.api import MediaControl

from .state import STATE

COUNTERS = {
    "packets_in": "RTP packets received from publishers",
    "bytes_in": "SRTP bytes received from publishers",
    "packets_out": "RTP packets sent to subscribers",
    "bytes_out": "SRTP bytes sent to subscribers",
    "packets_lost": "packets missing from what publishers sent",
    "nacks_sent": "NACK messages sent to publishers",
    "nacks_received": "NACK messages received from subscribers",
    "plis_sent": "keyframe requests sent to publishers",
    "plis_received": "keyframe requests received from subscribers",
    "retransmissions": "packets resent to subscribers after a NACK",
    "rtx_received": "retransmitted packets received from publishers",
    "srtp_errors": "packets that failed SRTP authentication",
    "dropped": "datagrams dropped as unroutable or malformed",
    "timer_errors": "timer steps (one transport's reports, one producer's NACKs) that raised; "
                    "the other transports' steps still ran",
    "worker_restarts": "media worker processes restarted after dying",
    "tcp_connections": "ICE-TCP connections accepted",
    "tcp_rejected": "ICE-TCP connections closed for a bad frame, no check in time or too many "
                    "waiting",
    "tcp_send_dropped": "packets to ICE-TCP clients dropped: their connection's queue was full",
}

# the analytics event log (signaling/events.py, EventLog.counters()), per node
EVENT_COUNTERS = {
    "written": "analytics events written to the event log",
    "dropped": "analytics events dropped: the log's queue was full",
    "failed": "analytics events whose write failed (logged at most every 10 s)",
}


class MediaCollector:
    """Reads the counters fetched for this scrape (from the in-process worker or the pool)."""

    def __init__(self, rooms: Callable[[], int], participants: Callable[[], int]) -> None:
        self.latest: dict[str, int] = {}
        self.events: dict[str, int] = {}  # EventLog.counters() of this scrape
        self._rooms = rooms
        self._participants = participants

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self.latest
        yield GaugeMetricFamily("mediaserver_rooms", "rooms with people in them",
                                value=self._rooms())
        yield GaugeMetricFamily("mediaserver_participants", "connected participants",
                                value=self._participants())
        for key in ("transports", "producers", "consumers", "workers"):
            yield GaugeMetricFamily(f"mediaserver_{key}", f"open {key}", value=s.get(key, 0))
        for key, doc in COUNTERS.items():
            yield CounterMetricFamily(f"mediaserver_{key}", doc, value=s.get(key, 0))
        for key, doc in EVENT_COUNTERS.items():
            yield CounterMetricFamily(f"mediaserver_analytics_events_{key}", doc,
                                      value=self.events.get(key, 0))
        yield GaugeMetricFamily("mediaserver_analytics_events_queued",
                                "analytics events waiting to be written",
                                value=self.events.get("queued", 0))


def metrics_handler(registry: CollectorRegistry, collector: MediaCollector,
                    media: MediaControl) -> Callable:
    async def handler(request: web.Request) -> web.Response:
        collector.latest = await media.stats()
        events = getattr(request.app[STATE].rooms, "events", None)  # analytics_api.install
        collector.events = events.counters() if events is not None else {}
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handler
