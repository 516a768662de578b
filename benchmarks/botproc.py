"""A bot host process: `python -m benchmarks.botproc`, driven by the runner over stdin/stdout.

One JSON command per line in, one JSON reply per line out (logs go to stderr):
  {"cmd": "init", "base_url": ..., "media": [MediaSpec fields...], "sample_frames": 2,
   "decrypt_all": false, "drop_percent": 0, "target": "ours" | "janus", "run_id": ...,
   "simulcast": {sender id: [MediaSpec fields, lowest first]}, "twcc": false,
   "feedback_interval": 0.1, "link_queue_bytes": 20000, "ice_tcp": false}
  {"cmd": "add", "bots": [BotSpec fields...], "concurrency": 10}   -> {"started", "failed"}
  {"cmd": "wait", "timeout": 20}     -> once every subscriber got its first keyframe (or timeout)
  {"cmd": "snapshot"}                -> cumulative counters, the runner takes differences
  {"cmd": "stop"}                    -> everything closed, then the process exits
Bots live in this process's one event loop (uvloop), so one process holds hundreds of them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from typing import Any

from .bots import BotContext, BotSession, BotSpec
from .media import MediaSpec, load_media
from .process import prepare_process

log = logging.getLogger("benchmarks.botproc")


class BotHost:
    def __init__(self) -> None:
        self.ctx: BotContext | None = None
        self.sessions: list[Any] = []  # BotSession, or JanusBotSession against Janus
        self.session_class: Any = BotSession
        self.failures: list[str] = []

    async def init(self, cmd: dict[str, Any]) -> dict[str, Any]:
        media = {}
        for fields in cmd["media"]:
            spec = MediaSpec(**fields)
            media[spec.sender_id] = load_media(spec)
        simulcast = {int(sender): [load_media(MediaSpec(**f)) for f in layers]
                     for sender, layers in (cmd.get("simulcast") or {}).items()}
        self.ctx = BotContext(cmd["base_url"], media, cmd.get("sample_frames", 2),
                              cmd.get("decrypt_all", False), cmd.get("drop_percent", 0.0),
                              cmd.get("run_id", ""), simulcast, cmd.get("twcc", False),
                              cmd.get("feedback_interval", 0.1),
                              cmd.get("link_queue_bytes", 20_000), cmd.get("ice_tcp", False))
        if cmd.get("target", "ours") == "janus":
            if self.ctx.ice_tcp:
                raise ValueError("ICE-TCP subscribers run against our server only")
            from .janus.bots import JanusBotSession, open_link

            await open_link(self.ctx)
            self.session_class = JanusBotSession
        return {"pid": os.getpid()}

    async def add(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.ctx is not None
        gate = asyncio.Semaphore(max(1, cmd.get("concurrency", 10)))
        failed = 0

        async def start(spec: BotSpec) -> None:
            nonlocal failed
            session = self.session_class(self.ctx, spec)
            self.sessions.append(session)
            async with gate:
                try:
                    await asyncio.wait_for(session.start(), cmd.get("timeout", 30))
                except Exception as exc:  # reported to the runner, counted as a failed bot
                    failed += 1
                    self.failures.append(f"{spec.name}: {type(exc).__name__}: {exc}")

        specs = [BotSpec(**b) for b in cmd["bots"]]
        await asyncio.gather(*(start(s) for s in specs))
        return {"started": len(specs) - failed, "failed": failed}

    async def wait(self, cmd: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + cmd.get("timeout", 20)
        while time.monotonic() < deadline:
            if not self._waiting():
                break
            await asyncio.sleep(0.1)
        return {"waiting": self._waiting()}

    def _subscribers(self) -> list[Any]:
        return [s for s in self.sessions if s.subscriber and not s.spec.aux_subscriber]

    @staticmethod
    def _groups(subs: list[Any]) -> dict[str, dict[str, Any]]:
        """Per group of subscribers (weak links, each preferred layer, everyone else):
        cumulative counters, the runner takes differences. Bytes are SRTP datagrams as they
        reached the subscriber's code (after its emulated link, if any)."""
        out: dict[str, dict[str, Any]] = {}
        for sub in subs:
            g = out.setdefault(sub.group, {
                "subscribers": 0, "packets": 0, "bytes": 0, "video_packets": 0,
                "video_bytes": 0, "expected": 0, "lost": 0, "nacks": 0, "nack_seqs": 0,
                "rtx": 0, "rtx_recovered": 0, "duplicates": 0, "plis_on_loss": 0,
                "feedback_sent": 0, "link_offered": 0, "link_offered_bytes": 0,
                "link_delivered": 0, "link_delivered_bytes": 0, "link_dropped": 0,
                "link_delay_sum_ms": 0.0, "link_max_delay_ms": 0.0, "link_kbps": 0,
                "layers_asked": 0, "padding": 0})
            g["subscribers"] += 1
            g["plis_on_loss"] += sub.plis_on_loss
            g["feedback_sent"] += sub.feedback_sent
            g["layers_asked"] += sub.layers_asked
            g["link_kbps"] = max(g["link_kbps"], sub.link_kbps)
            for st in sub.streams.values():
                g["packets"] += st.packets
                g["bytes"] += st.bytes
                if st.kind == "video":
                    g["video_packets"] += st.packets
                    g["video_bytes"] += st.bytes
                g["expected"] += st.expected
                g["lost"] += st.lost
                g["nacks"] += st.nacks
                g["rtx"] += st.rtx_packets
                g["rtx_recovered"] += st.rtx_recovered
                g["duplicates"] += st.duplicates
                g["padding"] += st.padding
            link = sub.peer.link if sub.peer is not None else None
            if link is not None:
                g["link_offered"] += link.offered
                g["link_offered_bytes"] += link.offered_bytes
                g["link_delivered"] += link.delivered
                g["link_delivered_bytes"] += link.delivered_bytes
                g["link_dropped"] += link.dropped
                g["link_delay_sum_ms"] += link.delay_sum_ns / 1e6
                g["link_max_delay_ms"] = max(g["link_max_delay_ms"], link.max_delay_ns / 1e6)
        return out

    def _waiting(self) -> int:
        return sum(1 for s in self._subscribers() if not s.closed and s.subscriber
                   and s.subscriber.join_time is None and not s.subscriber.failure)

    def snapshot(self) -> dict[str, Any]:
        assert self.ctx is not None
        all_subs = [s.subscriber for s in self._subscribers() if s.subscriber is not None]
        pubs = [s.publisher for s in self.sessions if s.publisher is not None]
        # The audience's figures leave the emulated weak links out: their own group has them.
        subs = [sub for sub in all_subs if not sub.link_kbps]
        streams = [st for sub in subs for st in sub.streams.values()]
        peers = [p for p in [*(sub.peer for sub in subs), *(pub.peer for pub in pubs)] if p]
        samplers = [sm for sub in subs for sm in sub.samplers.values()]
        times = os.times()

        def total(items: list[Any], attr: str) -> int:
            return sum(getattr(i, attr) for i in items)

        errors = sorted({sm.last_error for sm in samplers if sm.last_error})[:5]
        failures = self.failures + [f"{s.spec.name}: {s.subscriber.failure}" for s in
                                    self.sessions if s.subscriber and s.subscriber.failure]
        failures += [f"{s.spec.name}: socket closed ({s.close_code} {s.close_reason})"
                     for s in self.sessions if s.closed]
        return {
            "time": time.time(), "cpu": times.user + times.system,
            "bots": len(self.sessions),
            "closed": sum(1 for s in self.sessions if s.closed),
            "subscribers": len(subs), "publishers": len(pubs),
            "sub": {"packets": total(streams, "packets"), "bytes": total(streams, "bytes"),
                    "video_packets": sum(st.packets for st in streams if st.kind == "video"),
                    "expected": sum(st.expected for st in streams),
                    "lost": total(streams, "lost"),
                    "missing": sum(len(st.missing) for st in streams),
                    "recovered": total(streams, "recovered"),
                    "duplicates": total(streams, "duplicates"),
                    "rtx": total(streams, "rtx_packets"), "nacks": total(streams, "nacks"),
                    "padding": total(streams, "padding"),
                    "unknown_ssrc": total(subs, "unknown_ssrc"),
                    "not_keyframe_first": total(subs, "not_keyframe_first"),
                    "dropped_on_purpose": total(subs, "dropped"),
                    "streams": len(streams),
                    "streams_with_latency": sum(1 for st in streams if st.latency_samples)},
            "peer": {"socket_drops": total(peers, "socket_drops"),
                     "srtp_errors": total(peers, "srtp_errors"),
                     "send_errors": total(peers, "send_errors"),
                     "failed": sum(1 for p in peers if p.state == "failed"),
                     # subscribers connected over ICE-TCP, and what came in over it
                     "tcp_connected": sum(1 for p in peers if p.protocol == "tcp"
                                          and p.state == "connected"),
                     "tcp_frames_in": sum(p.datagrams_in for p in peers if p.protocol == "tcp"),
                     "udp_datagrams_in": sum(p.datagrams_in for p in peers
                                             if p.protocol == "udp")},
            "latency": self.ctx.latency.sparse(),
            "latency_weak": self.ctx.latency_weak.sparse(),
            "groups": self._groups(all_subs),
            # the order the runner counts subscribers in (join_before), weak ones included
            "join_times": [sub.join_time for sub in all_subs],  # None: not joined (yet)
            "waiting": self._waiting(),
            "samples": {"verified": total(samplers, "verified"),
                        "failed": total(samplers, "failed"),
                        "skipped": total(samplers, "skipped"), "errors": errors},
            "pub": {"packets": total(pubs, "packets_sent"), "bytes": total(pubs, "bytes_sent"),
                    "nacks_received": total(pubs, "nacks_received"),
                    "retransmitted": total(pubs, "retransmitted"),
                    "plis_received": total(pubs, "plis_received"),
                    "plis_ignored": total(pubs, "plis_ignored"),
                    "late_ticks": total(pubs, "late_ticks"),
                    "twcc_feedback": total(pubs, "twcc_feedback"),
                    "skipped_frames": total(pubs, "skipped_frames")},
            "failures": failures[:10], "failure_count": len(failures),
            "loop": {"lag_max_ms": round(self.ctx.lag_max * 1000, 1),
                     "stalls": self.ctx.stalls},
        }

    async def stop(self) -> dict[str, Any]:
        await asyncio.gather(*(s.close() for s in self.sessions), return_exceptions=True)
        if self.ctx is not None:
            await self.ctx.close()
        return {"stopped": len(self.sessions)}


async def serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    host = BotHost()
    while True:
        line = await reader.readline()
        if not line:  # the runner went away: leave
            await host.stop()
            return
        cmd = json.loads(line)
        name = cmd.get("cmd")
        try:
            if name == "init":
                reply = await host.init(cmd)
            elif name == "add":
                reply = await host.add(cmd)
            elif name == "wait":
                reply = await host.wait(cmd)
            elif name == "snapshot":
                reply = host.snapshot()
            elif name == "stop":
                reply = await host.stop()
            else:
                reply = {"error": f"unknown command {name!r}"}
        except Exception as exc:  # reported to the runner, which stops the run
            log.exception("command %s failed", name)
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
        if name == "stop":
            return


def main() -> None:
    logging.basicConfig(level=os.environ.get("BENCH_LOG", "WARNING"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s bots[%(process)d] %(name)s: "
                               "%(message)s")
    prepare_process()
    asyncio.run(serve())


if __name__ == "__main__":
    main()

