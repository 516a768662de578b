"""CPU cost of one subscriber's transport-cc feedback: parse, match to the send records,
send-side estimate (mediaserver/rtp/twcc.py, mediaserver/bwe/).

The trace is a 720p + audio subscriber as the media worker serves it: 30 frames a second of
about 1.5 Mbit/s in packets of ~1,150 bytes, each packet's send record the time its fan-out
began (a frame's packets 0.1-0.4 ms apart, as the publisher's arrive), Opus every 20 ms; a
link of 30 ms and up to 3 ms of jitter that never reorders, 0.5% lost; the receiver's
feedback built by our own `TwccRecorder` every 100 ms (about 22 statuses each). Many
subscribers are served in turn, each with its own history and estimator, so their state is
not all in the cache, as in the worker.

Timed with `time.process_time` around batches of feedback (the sends of a batch are recorded
before it, untimed: the history ring holds a batch's packets). Reports µs per feedback packet
and what that is in a core at N subscribers sending 10 feedbacks a second.

    python -m benchmarks.bwe_feedback [--subscribers 300] [--seconds 60] [--profile]
                                      [--entry fci|parsed|python]

--entry: `fci` (the default), as transport.py does it since ab554e3: on_fci(history, fci,
now), one C call (mediaserver/native/bwe.c); `parsed`, as it did before: parse_feedback in
Python, then on_transport_cc (the C reads the FCI the parse kept); `python`, that with the
Python reference (SendSideEstimator(native=False)), as before the C.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from mediaserver.bwe.estimator import SendSideEstimator
from mediaserver.bwe.history import SendHistory
from mediaserver.rtp.twcc import TwccRecorder, parse_packet

FEEDBACK_INTERVAL = 0.1
BATCH = 64  # feedbacks per timed batch: 64 x ~22 packets fit the history's 2048 slots
VARIANTS = 8  # distinct traces, dealt to the subscribers in turn

Send = tuple[int, int, float]  # (transport-wide seq, size, send time)
Feedback = tuple[float, bytes, bytes]  # (when the server gets it, whole RTCP packet, FCI)


def trace(seconds: float, seed: int) -> tuple[list[list[Send]], list[Feedback]]:
    """What was sent between consecutive feedbacks, and the feedbacks: sends[k] all precede
    feedbacks[k] (its packets and older ones), as on the server."""
    rng = random.Random(seed)
    events: list[tuple[float, int]] = []  # (send time, size)
    t = 0.0
    while t < seconds:  # video frames
        size = rng.gauss(6200, 900) if rng.random() > 0.01 else 40_000  # now and then a key
        at = t
        for _ in range(max(1, round(size / 1150))):
            events.append((at, 1150))
            at += rng.uniform(0.0001, 0.0004)
        t += 1 / 30
    events += [(a * 0.02 + 0.003, 110) for a in range(int(seconds / 0.02))]  # Opus
    events.sort()
    recorder = TwccRecorder()
    receiver_clock = 7_000.0 + seed  # unrelated to ours
    free = last = 0.0  # a 5 Mbit/s bottleneck's FIFO; the last arrival (jitter never reorders)
    arrivals: list[tuple[float, int]] = []
    sends: list[list[Send]] = []
    feedbacks: list[Feedback] = []
    seq, i, now = 0xF000 + seed * 97, 0, FEEDBACK_INTERVAL
    current: list[Send] = []
    while now < seconds:
        while i < len(events) and events[i][0] < now:
            send, size = events[i]
            i += 1
            current.append((seq & 0xFFFF, size, send))
            free = max(free, send) + size * 8 / 5e6
            if rng.random() > 0.005:
                last = max(last, free + 0.030 + rng.random() * 0.003)
                arrivals.append((last, seq & 0xFFFF))
            seq += 1
        arrivals.sort()
        while arrivals and arrivals[0][0] <= now:
            at, s = arrivals.pop(0)
            recorder.record(s, int((at + receiver_clock) * 1e6))
        for data in recorder.build(0x5EED):
            sends.append(current)
            current = []
            feedbacks.append((now + 0.03, data, data[12:len(data) - (data[-1] if data[0] & 0x20
                                                                    else 0)]))
        now += FEEDBACK_INTERVAL
    return sends, feedbacks


def handler(entry: str = "fci") -> Callable[[SendSideEstimator, SendHistory, Feedback], None]:
    """What `Transport._on_transport_cc` does with a feedback's FCI (as --entry says; the
    calls of the code before on_transport_cc too, so that a worktree of it can run this)."""
    from mediaserver.rtp.twcc import parse_feedback

    def handle(est: SendSideEstimator, history: SendHistory, fb: Feedback) -> None:
        est.on_transport_cc(history, parse_feedback(0x5EED, 0, fb[2]), fb[0])

    def handle_fci(est: SendSideEstimator, history: SendHistory, fb: Feedback) -> None:
        est.on_fci(history, fb[2], fb[0])

    def handle_before(est: SendSideEstimator, history: SendHistory, fb: Feedback) -> None:
        parsed = parse_feedback(0x5EED, 0, fb[2])
        est.on_feedback(history.lookup(parsed.base_seq, len(parsed.arrivals)), parsed, fb[0])
    if entry == "fci" and hasattr(SendSideEstimator, "on_fci"):
        return handle_fci
    return handle if hasattr(SendSideEstimator, "on_transport_cc") else handle_before


def estimator(entry: str) -> SendSideEstimator:
    if entry == "python":
        return SendSideEstimator(initial=300_000, native=False)
    return SendSideEstimator(initial=300_000)


def measure(subscribers: int, seconds: float, profiler: cProfile.Profile | None = None,
            entry: str = "fci") -> dict:
    traces = [trace(seconds, seed) for seed in range(VARIANTS)]
    handle = handler(entry)
    ests = [estimator(entry) for _ in range(subscribers)]
    histories = [SendHistory() for _ in range(subscribers)]
    n_fb = min(len(fbs) for _, fbs in traces)
    gc.collect()
    gc.freeze()  # the trace is the benchmark's, not the worker's: the collector skips it
    statuses = sum(len(parse_packet(d).arrivals) for _, d, _ in traces[0][1][:n_fb])
    cpu = 0.0
    handled = 0
    for start in range(0, n_fb, BATCH):
        stop = min(start + BATCH, n_fb)
        for s in range(subscribers):  # untimed: the sends of this batch
            sends, history = traces[s % VARIANTS][0], histories[s]
            for k in range(start, stop):
                for seq, size, at in sends[k]:
                    history.sent(seq, size, at)
        if profiler:
            profiler.enable()
        t0 = time.process_time()
        for k in range(start, stop):
            for s in range(subscribers):
                handle(ests[s], histories[s], traces[s % VARIANTS][1][k])
        cpu += time.process_time() - t0
        if profiler:
            profiler.disable()
        handled += (stop - start) * subscribers
    us = cpu / handled * 1e6
    return {
        "entry": entry, "subscribers": subscribers, "feedbacks": handled,
        "statuses_per_feedback": round(statuses / n_fb, 1),
        "cpu_seconds": round(cpu, 3), "us_per_feedback": round(us, 2),
        "core_percent_at_300": round(us * 300 * 10 / 1e4, 1),
        "estimates": sorted({e.estimate for e in ests})[:3],  # the estimator did its work
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bwe_feedback")
    parser.add_argument("--subscribers", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=60.0, help="of feedback per subscriber")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is reported")
    parser.add_argument("--profile", action="store_true", help="print the top cProfile costs")
    parser.add_argument("--entry", choices=["fci", "parsed", "python"], default="fci",
                        help="the path timed (see the module's docstring)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    profiler = cProfile.Profile() if args.profile else None
    runs = [measure(args.subscribers, args.seconds, profiler, args.entry)
            for _ in range(args.repeat)]
    for run in runs:
        print(json.dumps(run))
    best = min(runs, key=lambda r: r["us_per_feedback"])
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
        print(out.getvalue())
        return  # profiled figures are not the cost
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bwe_feedback.json").write_text(json.dumps(
        {"commit": commit, "cpu": os.cpu_count(), "runs": runs, "best": best}, indent=2))
    (out_dir / "bwe_feedback.md").write_text(
        "| commit | entry | subscribers | statuses / feedback | µs / feedback (best of "
        f"{len(runs)}) | all runs | % of a core at 300 subscribers x 10/s |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| {commit} | {args.entry} | {best['subscribers']} | {best['statuses_per_feedback']} | "
        f"{best['us_per_feedback']} | {', '.join(str(r['us_per_feedback']) for r in runs)} | "
        f"{best['core_percent_at_300']} |\n")
    print((out_dir / "bwe_feedback.md").read_text())


if __name__ == "__main__":
    main()
