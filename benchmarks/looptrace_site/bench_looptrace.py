"""What a media worker's event loop spends its time on, event by event (the tracer half of
benchmarks/looptrace.py, which reads what this writes).

Installed into the server under test without touching mediaserver/: `hook()` (from this
folder's sitecustomize) waits for `mediaserver.worker` to be imported, then wraps
- `Worker.datagram_received`: every datagram, classified (RTP from a transport that
  publishes: a fan-out, with the publisher's abs-send-time stamp and the fan-out size; RTP
  from others; RTCP; STUN; DTLS),
- the worker's timers (RTCP reports, transport-cc feedback, NACK scans, consent, bandwidth
  allocation, active speaker), the allocator's prober pacing and delayed keyframe requests,
- the garbage collector (gc.callbacks),
and records each as (wall-clock start, duration, kind, extra, extra) into an array that a
1 s timer appends to `$BENCH_LOOPTRACE.<pid>` (5 doubles per event), with the process's CPU
time. Costs about a microsecond per datagram.
"""

from __future__ import annotations

import gc
import importlib.abc
import importlib.util
import os
import sys
import time
from array import array
from collections.abc import Callable

KINDS = {
    "fanout": 0, "rtp_other": 1, "rtcp": 2, "stun": 3, "dtls": 4, "other_datagram": 5,
    "report_tick": 10, "twcc_tick": 11, "nack_tick": 12, "consent_tick": 13,
    "allocate_tick": 14, "speaker_tick": 15, "prober_pace": 16, "keyframe_timer": 17,
    "deferred": 18, "gc": 20, "cpu_mark": 30,
}
ABS_ID = 2  # the bots' abs-send-time extension id (benchmarks.sdp_client.PUB_ABS_SEND_TIME_ID)

_records = array("d")
_find_ext: Callable[[bytes, int], int] | None = None  # benchmarks.rtpstats's, by install()
_path = ""


def _abs_send_time(data: bytes) -> float:
    """The one-byte-form abs-send-time element of a (S)RTP packet's clear header, or -1."""
    pos = _find_ext(data, ABS_ID) if _find_ext is not None else -1
    if pos < 0 or pos + 3 > len(data):
        return -1.0
    return float(data[pos] << 16 | data[pos + 1] << 8 | data[pos + 2])


def _wrap_timer(owner: object, name: str, kind: str) -> None:
    original = getattr(owner, name)
    code = KINDS[kind]
    append = _records.extend
    clock = time.perf_counter
    wall = time.time

    def wrapper(*args: object, **kwargs: object) -> object:
        w0, t0 = wall(), clock()
        try:
            return original(*args, **kwargs)
        finally:
            append((w0, clock() - t0, code, 0.0, 0.0))

    wrapper.__name__ = name
    setattr(owner, name, wrapper)


def install(worker_module: object) -> None:
    global _find_ext
    from benchmarks.rtpstats import find_ext  # the worker runs from the repository's root

    _find_ext = find_ext
    Worker = worker_module.Worker  # type: ignore[attr-defined]
    original = Worker.datagram_received
    append = _records.extend
    clock = time.perf_counter
    wall = time.time
    FANOUT, RTP, RTCP, STUN, DTLS, OTHER = (KINDS[k] for k in (
        "fanout", "rtp_other", "rtcp", "stun", "dtls", "other_datagram"))

    def datagram_received(self: object, data: bytes, addr: tuple) -> None:
        batch = self.link.batch  # type: ignore[attr-defined]
        sent = batch.sent
        w0, t0 = wall(), clock()
        original(self, data, addr)
        dur = clock() - t0
        first = data[0] if data else 0
        if 127 < first < 192:
            if len(data) > 1 and 191 < data[1] < 224:
                append((w0, dur, RTCP, float(len(data)), 0.0))
                return
            transport = self._by_addr.get(addr)  # type: ignore[attr-defined]
            producers = transport.producers if transport is not None else None
            if producers:
                # copies sent: what went out through the fan-out's sendmmsg (a fan-out to a
                # single subscriber goes through sendto and is not counted: rare at scale)
                append((w0, dur, FANOUT, _abs_send_time(data), float(batch.sent - sent)))
            else:
                append((w0, dur, RTP, float(len(data)), 0.0))
        elif first < 4:
            append((w0, dur, STUN, 0.0, 0.0))
        elif 19 < first < 64:
            append((w0, dur, DTLS, 0.0, 0.0))
        else:
            append((w0, dur, OTHER, 0.0, 0.0))

    Worker.datagram_received = datagram_received
    for name, kind in (("_report_tick", "report_tick"), ("_twcc_tick", "twcc_tick"),
                       ("_nack_tick", "nack_tick"), ("_consent_tick", "consent_tick"),
                       ("_run_late", "deferred")):
        if hasattr(Worker, name):
            _wrap_timer(Worker, name, kind)
    try:
        from mediaserver import speaker

        _wrap_timer(speaker.ActiveSpeakers, "tick", "speaker_tick")
    except (ImportError, AttributeError):
        pass
    try:
        from mediaserver import allocation

        _wrap_timer(allocation.AllocationRounds, "tick", "allocate_tick")
        _wrap_timer(allocation.AllocationRounds, "pace", "prober_pace")
    except (ImportError, AttributeError):
        pass
    try:
        from mediaserver import producer

        _wrap_timer(producer.RecvStream, "_delayed_keyframe_request", "keyframe_timer")
    except (ImportError, AttributeError):
        pass

    gc_start = [0.0, 0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_start[0], gc_start[1] = time.time(), time.perf_counter()
        else:
            append((gc_start[0], time.perf_counter() - gc_start[1], KINDS["gc"],
                    float(info.get("generation", -1)), float(info.get("collected", 0))))

    gc.callbacks.append(on_gc)

    original_start = Worker.start

    async def start(self: object) -> None:
        await original_start(self)
        global _path
        _path = f"{os.environ['BENCH_LOOPTRACE']}.{os.getpid()}"
        loop = self.loop  # type: ignore[attr-defined]

        def dump() -> None:
            times = os.times()
            try:  # time spent runnable but waiting for a CPU (the machine is shared)
                with open("/proc/self/schedstat") as f:
                    waited = int(f.read().split()[1]) / 1e9
            except (OSError, ValueError, IndexError):
                waited = -1.0
            _records.extend((time.time(), times.user + times.system, KINDS["cpu_mark"],
                             waited, 0.0))
            with open(_path, "ab") as f:
                _records.tofile(f)
            del _records[:]
            loop.call_later(1.0, dump)

        loop.call_later(1.0, dump)

    Worker.start = start


class _Hook(importlib.abc.MetaPathFinder):
    """Runs `install` once `mediaserver.worker` has been executed."""

    def find_spec(self, name: str, path: object, target: object = None) -> object:
        if name != "mediaserver.worker":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_install(module: object) -> None:
            exec_module(module)
            install(module)

        loader.exec_module = exec_and_install  # type: ignore[method-assign]
        return spec


def hook() -> None:
    sys.meta_path.insert(0, _Hook())
