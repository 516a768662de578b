"""Snapshots before and after a measurement window, and the step's figures from their difference.

Server figures come from /proc (CPU time and RSS of the signalling process and its media
workers) and /metrics (packets and bytes in and out); client figures from the bots' own counters
(loss, latency, join times, samples). Bot CPU is reported next to the server's so that a step
where the bots, not the server, ran out of CPU is flagged as such.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from .rtpstats import BUCKET_US, LatencyHistogram
from .server_proc import CLK_TCK, ProcSample, Target, udp_drops

NCPU = os.cpu_count() or 1
BOT_BUSY = 85.0  # % of one core: above this a bot process is the bottleneck


@dataclass
class Snapshot:
    wall: float
    server: list[ProcSample]
    metrics: dict[str, float]
    udp_drops: int
    bots: list[dict[str, Any]]
    machine_busy: float = 0.0  # CPU-seconds all CPUs spent busy since boot (/proc/stat)
    runner_cpu: float = 0.0  # this orchestrating process
    extra: dict[str, Any] = field(default_factory=dict)


def machine_busy() -> float:
    """Busy CPU-seconds of the whole machine: everything but idle and iowait."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    busy = sum(values[:8]) - values[3] - values[4]  # user..steal minus idle, iowait
    return busy / CLK_TCK


async def take(server: Target, bots: list[dict[str, Any]]) -> Snapshot:
    metrics = await server.metrics()
    times = os.times()
    return Snapshot(time.monotonic(), server.sample(), metrics, udp_drops(server.rtc_ports), bots,
                    machine_busy(), times.user + times.system)


def other_load(a: Snapshot, b: Snapshot) -> float:
    """% of one core used between a and b by processes that are neither the server, the bots
    nor the runner (other work on a shared machine)."""
    wall = b.wall - a.wall
    before = {s.pid: s.cpu for s in a.server}
    ours = sum(s.cpu - before.get(s.pid, s.cpu) for s in b.server)
    ours += sum(y["cpu"] - x["cpu"] for x, y in zip(a.bots, b.bots, strict=True))
    ours += b.runner_cpu - a.runner_cpu
    return max(0.0, 100 * (b.machine_busy - a.machine_busy - ours) / wall)


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _coarse(hist: dict[int, int]) -> dict[str, int]:
    out: dict[int, int] = {}
    for bucket, count in hist.items():
        ms = bucket * BUCKET_US // 1000
        out[ms] = out.get(ms, 0) + count
    return {str(k): v for k, v in sorted(out.items())}


def step_result(a: Snapshot, b: Snapshot, join_before: list[int]) -> dict[str, Any]:
    """Figures for the window between snapshots a and b.

    join_before: per bot process, how many subscribers it had before this step, so the step
    reports the join times of its own new subscribers.
    """
    wall = b.wall - a.wall
    cpu_a = {s.pid: s for s in a.server}
    per_proc = []
    for s in b.server:
        before = cpu_a.get(s.pid)
        cpu = s.cpu - before.cpu if before else s.cpu
        per_proc.append({"pid": s.pid, "name": s.name, "cpu_s": round(cpu, 3),
                         "cpu_percent": round(100 * cpu / wall, 1),
                         "rss_mib": round(s.rss / 2**20, 1)})
    server_cpu = sum(p["cpu_s"] for p in per_proc)
    media = [p for p in per_proc if p["name"] == "media worker"]
    media_cpu = sum(p["cpu_s"] for p in media) if media else server_cpu

    def rate(key: str) -> float:
        return (b.metrics.get(key, 0) - a.metrics.get(key, 0)) / wall

    def bots(key: str, sub: str) -> int:
        return sum(x[key][sub] for x in b.bots) - sum(x[key][sub] for x in a.bots)

    expected, lost = bots("sub", "expected"), bots("sub", "lost")
    received = bots("sub", "packets")
    # What the server forwarded, counted by the server when it says (our /metrics), else at
    # the bots: RTP packets received, retransmissions included (Janus has no such counter).
    at_bots = received + bots("sub", "rtx")
    counted_by = "server" if "packets_out" in b.metrics else "bots"
    forwarded = (b.metrics.get("packets_out", 0) - a.metrics.get("packets_out", 0)
                 if counted_by == "server" else at_bots)
    hist = LatencyHistogram.diff(LatencyHistogram.merge([x["latency"] for x in b.bots]),
                                 LatencyHistogram.merge([x["latency"] for x in a.bots]))
    new_joins = [t for x, n in zip(b.bots, join_before, strict=True)
                 for t in x["join_times"][n:] if t is not None]
    bot_cpu = [round(100 * (y["cpu"] - x["cpu"]) / wall, 1) for x, y in zip(a.bots, b.bots,
                                                                           strict=True)]
    socket_drops = bots("peer", "socket_drops")
    late = bots("pub", "late_ticks")
    loss = 100 * lost / expected if expected > 0 else None
    total_cpu = 100 * server_cpu / wall + sum(bot_cpu)
    runner = 100 * (b.runner_cpu - a.runner_cpu) / wall
    machine = 100 * (b.machine_busy - a.machine_busy) / wall
    other = max(0.0, machine - total_cpu - runner)
    notes = []
    if other > 15:
        notes.append(f"other processes on the machine used {other:.0f}% of a core during the "
                     "window: figures disturbed")
    if any(c > BOT_BUSY for c in bot_cpu):
        notes.append(f"bot process at {max(bot_cpu):.0f}% of a core (bot-limited)")
    stalls = sum(y["loop"]["stalls"] - x["loop"]["stalls"] for x, y in zip(a.bots, b.bots,
                                                                            strict=True))
    if stalls:
        lag = max(y["loop"]["lag_max_ms"] for y in b.bots)
        notes.append(f"bot event loop stalled {stalls} times > 50 ms (worst {lag:.0f} ms since "
                     "start): bot-limited or machine contention")
    if socket_drops:
        notes.append(f"{socket_drops} packets dropped by the bots' own sockets (bot-limited)")
    if late:
        notes.append(f"publishers fell behind schedule {late} times: bot process or machine "
                     "contention")
    if machine > 0.9 * 100 * NCPU:
        notes.append(f"machine saturated: {machine:.0f}% of {NCPU} cores busy")
    if counted_by == "server":
        traffic = {"packets_in_per_s": round(rate("packets_in")),
                   "packets_out_per_s": round(rate("packets_out")),
                   "bits_in_per_s": round(8 * rate("bytes_in")),
                   "bits_out_per_s": round(8 * rate("bytes_out"))}
    else:  # no server counters: what the bots sent and received
        traffic = {"packets_in_per_s": round(bots("pub", "packets") / wall),
                   "packets_out_per_s": round(at_bots / wall),
                   "bits_in_per_s": round(8 * bots("pub", "bytes") / wall),
                   "bits_out_per_s": round(8 * bots("sub", "bytes") / wall)}
    pct = LatencyHistogram.percentile
    hist_weak = LatencyHistogram.diff(
        LatencyHistogram.merge([x.get("latency_weak", {}) for x in b.bots]),
        LatencyHistogram.merge([x.get("latency_weak", {}) for x in a.bots]))
    groups = group_results(a, b, wall, hist_weak)
    return {
        "window_s": round(wall, 2),
        "server": {"cpu_percent": round(100 * server_cpu / wall, 1),
                   "media_cpu_percent": round(100 * media_cpu / wall, 1),
                   "rss_mib": round(sum(s.rss for s in b.server) / 2**20, 1),
                   "processes": per_proc, "udp_drops": b.udp_drops - a.udp_drops},
        "forwarded_per_cpu_s": round(forwarded / server_cpu) if server_cpu > 0 else None,
        "forwarded_per_media_cpu_s": round(forwarded / media_cpu) if media_cpu > 0 else None,
        "forwarded_counted_by": counted_by,
        # the same measuring stick for every target: packets the bots received
        "received_per_cpu_s": round(at_bots / server_cpu) if server_cpu > 0 else None,
        "traffic": {**traffic, "received_by_bots_per_s": round(received / wall),
                    "sent_by_bots_per_s": round(bots("pub", "packets") / wall)},
        "loss_percent": _r(loss, 3), "lost": lost, "expected": expected,
        "recovery": {"nacks": bots("sub", "nacks"), "rtx_received": bots("sub", "rtx"),
                     "recovered": bots("sub", "recovered"),
                     "padding_received": bots("sub", "padding"),
                     "dropped_on_purpose": bots("sub", "dropped_on_purpose"),
                     "plis_to_publishers": bots("pub", "plis_received"),
                     "plis_ignored_by_publishers": bots("pub", "plis_ignored"),
                     "nacks_to_publishers": bots("pub", "nacks_received"),
                     "server_retransmissions": round(rate("retransmissions") * wall),
                     "server_upstream_lost": round(rate("packets_lost") * wall)},
        "latency_ms": {"p50": _r(pct(hist, 50)), "p90": _r(pct(hist, 90)),
                       "p99": _r(pct(hist, 99)), "max": _r(pct(hist, 100)),
                       "samples": sum(hist.values()),
                       "streams": sum(x["sub"].get("streams", 0) for x in b.bots),
                       "streams_measured": sum(x["sub"].get("streams_with_latency", 0)
                                               for x in b.bots)},
        # coarse copy of the histogram for plots: packets per whole millisecond
        "latency_hist_ms": _coarse(hist),
        "join_s": {"bots": {"n": len(new_joins), "p50": _r(_pct(new_joins, 50), 3),
                            "p95": _r(_pct(new_joins, 95), 3),
                            "max": _r(max(new_joins) if new_joins else None, 3)},
                   "waiting": sum(x["waiting"] for x in b.bots)},
        "samples": {k: bots("samples", k) for k in ("verified", "failed", "skipped")},
        "sample_errors": sorted({e for x in b.bots for e in x["samples"]["errors"]})[:5],
        "bots": {"processes": len(b.bots), "cpu_percent": bot_cpu,
                 "subscribers": sum(x["subscribers"] for x in b.bots),
                 "publishers": sum(x["publishers"] for x in b.bots),
                 "closed": sum(x["closed"] for x in b.bots),
                 "failed": sum(x["failure_count"] for x in b.bots),
                 "failures": [f for x in b.bots for f in x["failures"]][:5],
                 "socket_drops": socket_drops, "late_ticks": late, "loop_stalls": stalls,
                 "srtp_errors": bots("peer", "srtp_errors"),
                 "not_keyframe_first": bots("sub", "not_keyframe_first")},
        "machine": {"busy_percent": round(machine, 1), "other_percent": round(other, 1),
                    "runner_percent": round(runner, 1), "cpus": NCPU},
        "bot_limited": any(n.endswith("(bot-limited)") for n in notes),
        "notes": notes,
        "groups": groups,
        "transport": transport_result(a, b, wall),
        "twcc": {"feedback_to_publishers": bots("pub", "twcc_feedback"),
                 "feedback_from_subscribers": sum(g["feedback_sent"] for g in groups.values())},
    }


def transport_result(a: Snapshot, b: Snapshot, wall: float) -> dict[str, Any]:
    """How the subscribers were connected: over ICE-TCP (the bots' TCP peers, the server's
    tcp_* counters) or UDP, and what came in over each in the window."""
    def peer(snap: Snapshot, key: str) -> int:
        return sum(x["peer"].get(key, 0) for x in snap.bots)

    def server(key: str) -> int | None:
        if key not in b.metrics:
            return None  # not our server, or one without ICE-TCP
        return round(b.metrics[key] - a.metrics.get(key, 0))

    tcp = peer(b, "tcp_connected")
    return {"subscribers_over": "tcp" if tcp else "udp",
            "tcp_connected": tcp,
            "tcp_frames_in_per_s": round((peer(b, "tcp_frames_in") - peer(a, "tcp_frames_in"))
                                         / wall),
            "udp_datagrams_in_per_s": round((peer(b, "udp_datagrams_in")
                                             - peer(a, "udp_datagrams_in")) / wall),
            "server_tcp_connections": (round(b.metrics["tcp_connections"])
                                       if "tcp_connections" in b.metrics else None),
            "server_tcp_send_dropped": server("tcp_send_dropped")}


GROUP_KEYS = ("packets", "bytes", "video_packets", "video_bytes", "expected", "lost", "nacks",
              "rtx", "rtx_recovered", "duplicates", "plis_on_loss", "feedback_sent",
              "link_offered", "link_offered_bytes", "link_delivered", "link_delivered_bytes",
              "link_dropped", "link_delay_sum_ms", "padding")


def group_results(a: Snapshot, b: Snapshot, wall: float,
                  hist_weak: dict[int, int]) -> dict[str, dict[str, Any]]:
    """Per group of subscribers (bots.SubscriberBot.group: "weak", "L0".."L2", "all"): what
    they received in the window, per subscriber. For the weak ones also their emulated link:
    what the server sent them (offered), what got through, what the link dropped, the
    queueing delay, and their latency (after the link)."""
    def total(snap: Snapshot, name: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for x in snap.bots:
            g = x.get("groups", {}).get(name)
            if g:
                for k in (*GROUP_KEYS, "subscribers"):
                    out[k] = out.get(k, 0) + g[k]
                out["link_max_delay_ms"] = max(out.get("link_max_delay_ms", 0.0),
                                               g["link_max_delay_ms"])
                out["link_kbps"] = max(out.get("link_kbps", 0), g["link_kbps"])
                out["layers_asked"] = out.get("layers_asked", 0) + g.get("layers_asked", 0)
        return out

    names = sorted({n for x in b.bots for n in x.get("groups", {})})
    result = {}
    for name in names:
        before, after = total(a, name), total(b, name)
        d = {k: after.get(k, 0) - before.get(k, 0) for k in GROUP_KEYS}
        n = int(after.get("subscribers", 0))
        if not n:
            continue
        per = 1 / (n * wall)
        r: dict[str, Any] = {
            "subscribers": n,
            "kbps_per_subscriber": round(8 * d["bytes"] * per / 1000, 1),
            "video_kbps_per_subscriber": round(8 * d["video_bytes"] * per / 1000, 1),
            "packets_per_s_per_subscriber": round(d["packets"] * per, 1),
            "loss_percent": _r(100 * d["lost"] / d["expected"], 3) if d["expected"] > 0
            else None,
            "lost": int(d["lost"]), "expected": int(d["expected"]),
            "nacks_sent": int(d["nacks"]), "rtx_received": int(d["rtx"]),
            "rtx_recovered": int(d["rtx_recovered"]), "duplicates": int(d["duplicates"]),
            "plis_on_loss": int(d["plis_on_loss"]),
            "feedback_sent": int(d["feedback_sent"]),
            "padding_per_s_per_subscriber": round(d["padding"] * per, 1),
        }
        if after.get("link_kbps"):
            pct = LatencyHistogram.percentile
            r["link"] = {
                "kbps": int(after["link_kbps"]),
                "offered_kbps_per_subscriber": round(8 * d["link_offered_bytes"] * per / 1000,
                                                     1),
                "delivered_kbps_per_subscriber": round(
                    8 * d["link_delivered_bytes"] * per / 1000, 1),
                "dropped_packets": int(d["link_dropped"]),
                "dropped_percent": _r(100 * d["link_dropped"] / d["link_offered"], 2)
                if d["link_offered"] else None,
                "mean_queue_delay_ms": _r(d["link_delay_sum_ms"] / d["link_offered"], 1)
                if d["link_offered"] else None,
                "max_queue_delay_ms_since_start": _r(after.get("link_max_delay_ms"), 1)}
            r["latency_ms"] = {"p50": _r(pct(hist_weak, 50)), "p99": _r(pct(hist_weak, 99)),
                               "samples": sum(hist_weak.values())}
        r["layers_asked"] = int(after.get("layers_asked", 0))
        result[name] = r
    return result
