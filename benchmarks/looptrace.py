"""Where a media worker's packet latency comes from: read the loop traces that
`python -m benchmarks run ... --trace-loop DIR` makes (benchmarks/looptrace_site/
bench_looptrace.py records every datagram, timer and GC pass of the worker's event loop).

    python -m benchmarks.looptrace RESULTS.json [--step 1x300]

For the chosen step's measurement window it reports
- per kind of loop work (fan-outs of the publisher's packets, RTCP, STUN, each timer, GC):
  events per second, share of the loop's time, duration p50 / p99 / max;
- the publisher's packets: how long each waited between its send (the abs-send-time stamp the
  bots write, so the wait includes the loopback hop) and the start of its fan-out, and how long
  the fan-out took. A copy's latency is modelled as wait + a share of the fan-out: the copies
  go out in one sendmmsg at the end of it, which is about 60% of its time (docs/benchmarks.md,
  "Where the time goes"), so copy i of n leaves at start + duration x (0.4 + 0.6 i / n), n
  being the copies its sendmmsg sent (older traces: the consumers of the producer);
- the tail: for the copies at or above that model's p99, what the loop was doing while their
  packet waited (time per kind of work inside [sent, fan-out start]), so the p99 is
  attributed to the fan-out of earlier packets (queueing behind the frame's own burst),
  RTCP, timers, GC, or nothing recorded (idle, or work the tracer does not see).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

KINDS = {
    0: "fan-out (publisher RTP)", 1: "RTP from others", 2: "RTCP in", 3: "STUN", 4: "DTLS",
    5: "other datagram", 10: "timer: RTCP reports", 11: "timer: transport-cc feedback",
    12: "timer: NACK scan", 13: "timer: consent", 14: "timer: bandwidth allocation",
    15: "timer: active speaker", 16: "timer: prober pacing", 17: "timer: keyframe request",
    18: "deferred RTCP and STUN (a change under test)", 20: "garbage collection",
}
CPU_MARK = 30
SEND_SHARE = 0.6  # of a fan-out's time: the sendmmsg at its end


def load(prefix: str) -> np.ndarray:
    """All records of the traced processes (one file per worker PID) as an (n, 5) array."""
    parts = []
    for path in sorted(Path(prefix).parent.glob(Path(prefix).name + ".*")):
        data = np.fromfile(path, dtype=np.float64)
        parts.append(data[: len(data) // 5 * 5].reshape(-1, 5))
    if not parts:
        raise SystemExit(f"no trace files {prefix}.*")
    return np.concatenate(parts)


def analyse(records: np.ndarray, start: float, end: float) -> dict[str, Any]:
    marks = records[records[:, 2] == CPU_MARK]
    ev = records[(records[:, 2] != CPU_MARK) & (records[:, 0] >= start) & (records[:, 0] < end)]
    ev = ev[np.argsort(ev[:, 0])]
    wall = end - start
    inside = marks[(marks[:, 0] >= start) & (marks[:, 0] <= end)]
    cpu = float(inside[-1, 1] - inside[0, 1]) if len(inside) > 1 else None
    cpu_wall = float(inside[-1, 0] - inside[0, 0]) if len(inside) > 1 else None
    runq = float(inside[-1, 3] - inside[0, 3]) if len(inside) > 1 and inside[0, 3] >= 0 \
        else None
    kinds = {}
    for code in sorted(set(ev[:, 2].astype(int))):
        d = ev[ev[:, 2] == code][:, 1] * 1000
        kinds[KINDS.get(code, str(code))] = {
            "per_s": round(len(d) / wall, 1), "ms_per_s": round(float(d.sum()) / wall, 2),
            "p50_ms": round(float(np.percentile(d, 50)), 3),
            "p99_ms": round(float(np.percentile(d, 99)), 3), "max_ms": round(float(d.max()), 2)}
    recorded = float(ev[:, 1].sum())
    out: dict[str, Any] = {
        "window_s": round(wall, 2), "kinds": kinds,
        "recorded_busy_percent": round(100 * recorded / wall, 1),
        "process_cpu_percent": round(100 * cpu / cpu_wall, 1) if cpu and cpu_wall else None,
        # runnable but not running: the other processes of the machine had the CPUs
        "waiting_for_cpu_percent": round(100 * runq / cpu_wall, 1)
        if runq is not None and cpu_wall else None}
    fan = ev[(ev[:, 2] == 0) & (ev[:, 3] >= 0)]
    if not len(fan):
        return out
    send = fan[:, 3] / (1 << 18)
    wait = np.mod(np.mod(fan[:, 0], 64.0) - send, 64.0)
    ok = wait < 32.0  # beyond: a stamp from the future (clock trouble)
    fan, wait = fan[ok], wait[ok]
    if not len(fan) or not (fan[:, 4] > 0).any():
        return out
    dur = fan[:, 1]
    n = fan[:, 4].astype(int)  # copies sent (0: a packet of a layer nobody is on)
    # per copy: wait + its place in the fan-out
    reps = np.repeat(np.arange(len(fan)), n)
    place = np.concatenate([np.arange(k) / k for k in n if k > 0])
    lat = wait[reps] + dur[reps] * (1 - SEND_SHARE + SEND_SHARE * place)
    p50, p99 = (float(np.percentile(lat, q)) for q in (50, 99))
    out["packets"] = {
        "fanouts": int(len(fan)), "copies": int(len(lat)),
        "wait_ms": {q: round(1000 * float(np.percentile(wait, int(q[1:]))), 2)
                    for q in ("p50", "p90", "p99")} | {"max": round(1000 * float(wait.max()), 1)},
        "fanout_ms": {q: round(1000 * float(np.percentile(dur, int(q[1:]))), 2)
                      for q in ("p50", "p90", "p99")} | {"max": round(1000 * float(dur.max()), 1)},
        "copy_latency_model_ms": {"p50": round(1000 * p50, 2), "p99": round(1000 * p99, 2)},
    }
    # the tail: copies at or above the p99; what the loop did while their packet waited
    tail_packets, weights = np.unique(reps[lat >= p99], return_counts=True)
    starts, ends, codes = ev[:, 0], ev[:, 0] + ev[:, 1], ev[:, 2].astype(int)
    split: dict[str, float] = {}
    total_wait = 0.0
    same_frame_fanouts = 0.0
    for i, w in zip(tail_packets, weights, strict=True):
        t1 = fan[i, 0]
        t0 = t1 - wait[i]
        total_wait += w * wait[i]
        lo = np.searchsorted(starts, t0 - 0.2)
        hi = np.searchsorted(starts, t1)
        s, e, c = starts[lo:hi], ends[lo:hi], codes[lo:hi]
        overlap = np.clip(np.minimum(e, t1) - np.maximum(s, t0), 0, None)
        for code in np.unique(c[overlap > 0]):
            name = KINDS.get(int(code), str(code))
            split[name] = split.get(name, 0.0) + w * float(overlap[c == code].sum())
        # fan-outs of packets sent in the same 5 ms as this one: its own frame's burst
        sel = (c == 0) & (overlap > 0)
        same = np.abs(ev[lo:hi][sel, 3] / (1 << 18) - send[ok][i]) < 0.005
        same_frame_fanouts += w * float(overlap[sel][same].sum())
    accounted = sum(split.values())
    copies = int(weights.sum())
    out["tail"] = {
        "copies": copies, "threshold_ms": round(1000 * p99, 2),
        "mean_wait_ms": round(1000 * total_wait / copies, 2),
        "mean_own_fanout_ms": round(1000 * float((dur[tail_packets] * weights).sum()) / copies,
                                    2),
        "wait_split_ms": {k: round(1000 * v / copies, 2)
                          for k, v in sorted(split.items(), key=lambda kv: -kv[1])},
        "of_which_same_frame_fanouts_ms": round(1000 * same_frame_fanouts / copies, 2),
        "unrecorded_ms": round(1000 * (total_wait - accounted) / copies, 2),
    }
    return out


def markdown(a: dict[str, Any], title: str) -> str:
    lines = [f"### {title}", "",
             f"Window {a['window_s']} s; traced work {a['recorded_busy_percent']}% of the "
             f"wall time, the worker process used {a['process_cpu_percent']}% of a core and "
             f"waited {a['waiting_for_cpu_percent']}% of the time for one (runnable, not "
             "running: the machine's other processes had both cores).", "",
             "| loop work | per s | ms per s | p50 ms | p99 ms | max ms |",
             "|---|---|---|---|---|---|"]
    for name, k in sorted(a["kinds"].items(), key=lambda kv: -kv[1]["ms_per_s"]):
        lines.append(f"| {name} | {k['per_s']} | {k['ms_per_s']} | {k['p50_ms']} | "
                     f"{k['p99_ms']} | {k['max_ms']} |")
    p = a.get("packets")
    if p:
        lines += ["", f"Publisher packets: {p['fanouts']} fan-outs, {p['copies']} copies. Wait "
                  f"(send to fan-out start) p50/p90/p99/max {p['wait_ms']['p50']}/"
                  f"{p['wait_ms']['p90']}/{p['wait_ms']['p99']}/{p['wait_ms']['max']} ms; "
                  f"fan-out p50/p90/p99/max {p['fanout_ms']['p50']}/{p['fanout_ms']['p90']}/"
                  f"{p['fanout_ms']['p99']}/{p['fanout_ms']['max']} ms; modelled copy latency "
                  f"p50/p99 {p['copy_latency_model_ms']['p50']}/"
                  f"{p['copy_latency_model_ms']['p99']} ms."]
        t = a["tail"]
        lines += ["", f"The tail ({t['copies']} copies at or above {t['threshold_ms']} ms): "
                  f"their packet waited {t['mean_wait_ms']} ms on average, then its own "
                  f"fan-out took {t['mean_own_fanout_ms']} ms. While it waited the loop was "
                  "doing (ms per tail copy): "
                  + ", ".join(f"{k} {v}" for k, v in t["wait_split_ms"].items())
                  + f"; nothing recorded {t['unrecorded_ms']}. Of the fan-outs, "
                  f"{t['of_which_same_frame_fanouts_ms']} ms were packets of the same frame "
                  "(sent within 5 ms of it)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.looptrace")
    parser.add_argument("results", type=Path, help="a run's JSON (made with --trace-loop)")
    parser.add_argument("--step", default="", help="step label (default: the last)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    runs = results.get("runs") or [results]
    for r in runs:
        prefix = r.get("loop_trace")
        if not prefix:
            continue
        steps = [s for s in r["steps"] if not args.step or s["label"] == args.step]
        if not steps:
            continue
        step = steps[-1]
        a = analyse(load(prefix), *step["window_wall"])
        a["bots_latency_ms"] = step["latency_ms"]
        title = (f"{r['scenario']} {step['label']} ({r.get('source', {}).get('root', '')}, "
                 f"{r['timestamp']})")
        if args.json:
            print(json.dumps({"title": title, **a}, indent=1))
        else:
            sys.stdout.write(markdown(a, title) + f"\nBots measured p50/p99 "
                             f"{step['latency_ms']['p50']}/{step['latency_ms']['p99']} ms.\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
