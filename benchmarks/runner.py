"""Runs a scenario: the server as a subprocess, the bots in bot processes, a window per step.

Per step: start the step's bots (bounded join concurrency), wait until every subscriber has its
first keyframe, time one aiortc subscriber's join during the warm-up, then take snapshots before
and after a window of `seconds`. Bots run in their own processes (`benchmarks.botproc`) so that
their CPU is measured apart from the server's and from this orchestrating process. Everything
stops by itself, and every process started here is ended by PID in `finally`.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import measure
from .media import MediaSpec, load_media, simulcast_specs
from .scenarios import Member, Scenario, over_limits
from .sendlog import log_path
from .server_proc import ROOT, ServerProcess, Target

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class RunOptions:
    seconds: float = 30.0
    warmup: float = 4.0
    workers: int = 1
    subscribers_per_worker: int | None = None  # None: the server's default
    bot_procs: int = 1
    out_dir: Path = RESULTS
    media_seconds: float = 4.0
    width: int = 640
    height: int = 360
    bitrate: int = 1_000_000
    sample_every: int = 10
    sample_frames: int = 2
    decrypt_all: bool = False
    drop_percent: float = 0.0  # simulated loss at the subscribers (exercises NACK/RTX)
    aiortc: bool = True
    join_concurrency: int = 10
    join_timeout: float = 30.0
    plots: bool = True
    keep_logs: bool = False
    wait_idle: float = 0.0  # wait up to this long for other processes to quiet down
    idle_threshold: float = 20.0  # % of one core used by other processes that counts as quiet
    publisher_proc: bool = False  # publishers in a bot process of their own (needs 2+)
    retries: int = 2  # windows measured again when others' load may have broken the limits
    target: str = "ours"  # or "janus": the same bots against Janus 1.1.2 (benchmarks/janus)
    janus_event_loops: int | None = 1  # Janus's event_loops; None: its default (per handle)
    simulcast: bool = False  # publishers send three VP8 encodings (media.SIMULCAST_LAYERS)
    twcc: bool = False  # publishers negotiate transport-cc (subscribers do whenever offered)
    feedback_interval: float = 0.1  # subscribers' transport-cc feedback interval, s
    link_queue_bytes: int = 20_000  # emulated weak links: the bottleneck's queue (tbf limit)
    ice_tcp: bool = False  # subscribers connect over ICE-TCP (benchmarks/peer_tcp.py)
    server_root: str = ""  # run our server from this source tree (a worktree), not ours
    trace_loop: str = ""  # folder for the media workers' loop traces (benchmarks/looptrace.py)
    extra: dict[str, Any] = field(default_factory=dict)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BotProcess:
    """One `python -m benchmarks.botproc` child, spoken to in JSON lines."""

    def __init__(self, index: int, log_path: Path) -> None:
        self.index = index
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.subscribers = 0  # how many subscriber bots it was given so far

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self) -> None:
        with open(self.log_path, "wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.botproc", cwd=ROOT,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
                limit=64 << 20)

    async def command(self, cmd: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"bot process {self.index} died (log: {self.log_path})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"bot process {self.index}: {reply['error']}")
        return reply

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            await self.command({"cmd": "stop"}, timeout=15)
            await asyncio.wait_for(self.proc.wait(), 5)
        except (Exception, asyncio.CancelledError):
            pass
        finally:
            if self.proc.returncode is None:
                self.proc.send_signal(signal.SIGKILL)
                await self.proc.wait()


def source_state(root: Path) -> dict[str, Any]:
    """The commit a server tree is at, and whether it has changes on top (the measurement
    then ran code no commit holds: the report says so)."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    changed = git("status", "--porcelain", "--", "mediaserver", "signaling")
    return {"root": str(root), "commit": git("rev-parse", "HEAD"),
            "server_changes_uncommitted": bool(changed)}


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                         "")
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    versions = {}
    for pkg in ("aiortc", "pylibsrtp", "uvloop", "av", "aiohttp"):
        try:
            from importlib.metadata import version

            versions[pkg] = version(pkg)
        except Exception:
            versions[pkg] = "?"
    return {"cpus": os.cpu_count(), "cpu_model": model, "mem_gib": round(mem_kib / 2**20, 1),
            "python": platform.python_version(), "kernel": platform.release(),
            "packages": versions}


async def _probe(server: Target, scenario: Scenario, step_index: int) -> dict[str, Any]:
    from .aiortc_probe import join_time  # imports aiortc: only when asked for

    room = scenario.rooms[0]
    role = "attendee" if room.type == "webinar" else "host"
    token = server.token(room.name, f"probe-{step_index}", f"aiortc-probe-{step_index}", role)
    return await join_time(server.base_url, token)


def _make_target(opts: RunOptions, workdir: Path) -> Target:
    if opts.target == "janus":
        from .janus.target import JanusTarget  # runs only inside the Janus namespace

        return JanusTarget(workdir / "janus", opts.janus_event_loops)
    return ServerProcess(workers=opts.workers, data_dir=workdir / "data",
                         log_path=workdir / "server.log",
                         subscribers_per_worker=opts.subscribers_per_worker,
                         root=Path(opts.server_root) if opts.server_root else ROOT,
                         trace_loop=_trace_prefix(opts, workdir))


def _trace_prefix(opts: RunOptions, workdir: Path) -> str:
    if not opts.trace_loop:
        return ""
    folder = Path(opts.trace_loop)
    folder.mkdir(parents=True, exist_ok=True)
    tag = Path(opts.server_root).name if opts.server_root else "ours"
    return str(folder / f"{workdir.name}-{tag}")


async def run(scenario: Scenario, opts: RunOptions) -> dict[str, Any]:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{scenario.name}-"))
    name = scenario.name if opts.target == "ours" else f"{scenario.name}-{opts.target}"
    run_id = f"{os.getpid()}-{stamp}-{opts.target}"  # names the run's send logs (sendlog.py)
    results: dict[str, Any] = {
        "scenario": name, "target": opts.target, "description": scenario.description,
        "timestamp": stamp,
        "machine": machine(),
        "source": source_state(Path(opts.server_root) if opts.server_root else ROOT),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        "steps": [], "stopped": "", "error": "",
    }
    specs = [MediaSpec(sender_id=s, seconds=opts.media_seconds, width=opts.width,
                       height=opts.height, bitrate=opts.bitrate)
             for s in sorted(scenario.sender_ids)]
    layer_specs = ({s: simulcast_specs(s, opts.media_seconds) for s in sorted(scenario.sender_ids)}
                   if opts.simulcast else {})
    server = _make_target(opts, workdir)
    if getattr(server, "trace_loop", ""):
        results["loop_trace"] = server.trace_loop  # type: ignore[union-attr]
    procs = [BotProcess(i, workdir / f"bots-{i}.log") for i in range(max(1, opts.bot_procs))]
    ok = False
    try:
        log(f"{scenario.name}: media for {len(specs)} sender(s) (encoded once, then cached)")
        media = [load_media(s) for s in specs]
        layers = {s: [load_media(x) for x in spec_list] for s, spec_list in layer_specs.items()}
        if media:
            results["media"] = {"video_kbps": round(media[0].video_bitrate / 1000),
                                "video_packets_per_s": round(media[0].video_packets_per_second),
                                "width": opts.width, "height": opts.height,
                                "audio_packets_per_s": 50}
        if layers:
            first = next(iter(layers.values()))
            results["media"]["simulcast"] = [
                {"width": m.spec.width, "height": m.spec.height,
                 "kbps": round(m.video_bitrate / 1000),
                 "packets_per_s": round(m.video_packets_per_second)} for m in first]
        await server.start()
        log(server.describe())
        for room in scenario.rooms:
            await server.create_room(room.name, room.type)
        for p in procs:
            await p.start()
        await asyncio.gather(*(p.command({
            "cmd": "init", "base_url": server.base_url, "media": [asdict(s) for s in specs],
            "sample_frames": opts.sample_frames, "decrypt_all": opts.decrypt_all,
            "drop_percent": opts.drop_percent, "target": opts.target,
            "run_id": run_id,
            "simulcast": {str(k): [asdict(x) for x in v] for k, v in layer_specs.items()},
            "twcc": opts.twcc, "feedback_interval": opts.feedback_interval,
            "link_queue_bytes": opts.link_queue_bytes, "ice_tcp": opts.ice_tcp}, 120)
            for p in procs))
        assigned = 0
        for index, step in enumerate(scenario.iter_steps()):
            result = await _run_step(server, procs, scenario, step.new_members, index, assigned,
                                     opts)
            assigned += len(step.new_members)
            result.update(label=step.label, x=step.x)
            results["steps"].append(result)
            log(_summary(step.label, result))
            reason = over_limits(result["loss_percent"], result["latency_ms"]["p99"])
            if scenario.stepped and reason:
                results["stopped"] = reason
                log(f"stopping: {reason}")
                break
        ok = True
    except Exception as exc:
        results["error"] = f"{type(exc).__name__}: {exc}"
        log(f"run failed: {results['error']} (logs kept in {workdir})")
    finally:
        await asyncio.gather(*(p.stop() for p in procs), return_exceptions=True)
        stopped = server.stop()
        if inspect.isawaitable(stopped):
            await stopped
        for path in log_path(run_id, "").parent.glob(log_path(run_id, "").name + "*"):
            path.unlink(missing_ok=True)  # left by a bot process that was killed
        if ok and not opts.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            results["logs"] = str(workdir)
    return results


async def _run_step(server: Target, procs: list[BotProcess], scenario: Scenario,
                    members: list[Member], index: int, assigned: int,
                    opts: RunOptions) -> dict[str, Any]:
    join_before = [p.subscribers for p in procs]
    batches: list[list[dict[str, Any]]] = [[] for _ in procs]
    # With --publisher-proc, publishers get bot process 0 to themselves, so that the work of
    # hundreds of subscribers never delays their sending (bursts the server would queue).
    own = opts.publisher_proc and len(procs) > 1
    for i, m in enumerate(members):
        if own:
            proc = 0 if m.publish else 1 + (assigned + i) % (len(procs) - 1)
        else:
            proc = (assigned + i) % len(procs)
        batches[proc].append({
            "name": m.name, "token": server.token(m.room, m.identity, m.name, m.role),
            "publish": m.publish, "subscribe": m.subscribe, "sample": m.sample,
            "sender_id": m.sender_id, "aux_subscriber": m.aux_subscriber,
            "link_kbps": m.link_kbps, "layer": m.layer})
        if m.subscribe and not m.aux_subscriber:
            procs[proc].subscribers += 1
    # Publishers first, so subscribers find the tracks when they join.
    started = time.monotonic()
    for publishers in (True, False):
        await asyncio.gather(*(p.command({
            "cmd": "add", "bots": [b for b in batch if b["publish"] == publishers],
            "concurrency": max(1, opts.join_concurrency // len(procs)),
            "timeout": opts.join_timeout}, timeout=opts.join_timeout * (1 + len(batch)))
            for p, batch in zip(procs, batches, strict=True)))
    waits = await asyncio.gather(*(p.command({"cmd": "wait", "timeout": opts.join_timeout},
                                             timeout=opts.join_timeout + 30) for p in procs))
    joined_in = time.monotonic() - started
    warm_end = time.monotonic() + opts.warmup
    probe = (await _probe(server, scenario, index)
             if opts.aiortc and opts.target == "ours" else None)
    await asyncio.sleep(max(0.0, warm_end - time.monotonic()))
    result = await _window(server, procs, opts, join_before)
    disturbed = []
    # On a shared machine a window in which other processes took the CPUs can break the
    # limits by itself: measure again (bounded) before taking it as this step's outcome.
    while (len(disturbed) < opts.retries and over_limits(result["loss_percent"],
                                                         result["latency_ms"]["p99"])
           and result["machine"]["other_percent"] > opts.idle_threshold):
        disturbed.append({"other_percent": result["machine"]["other_percent"],
                          "loss_percent": result["loss_percent"],
                          "p99_ms": result["latency_ms"]["p99"],
                          "server_cpu_percent": result["server"]["cpu_percent"]})
        log(f"over the limits while other processes used {disturbed[-1]['other_percent']}% of "
            "a core: measuring this step again")
        result = await _window(server, procs, opts, join_before)
    result["disturbed_windows"] = disturbed
    result["join_s"]["aiortc"] = probe
    result["join_s"]["all_joined_after_s"] = round(joined_in, 2)
    result["join_s"]["never_joined"] = sum(w["waiting"] for w in waits)
    result["members"] = {"publishers": sum(m.publish for m in members),
                         "subscribers": sum(m.subscribe for m in members)}
    return result


async def _window(server: Target, procs: list[BotProcess], opts: RunOptions,
                  join_before: list[int]) -> dict[str, Any]:
    """One measurement window (after waiting for quiet, when asked to)."""
    if opts.wait_idle > 0:
        await _wait_quiet(server, procs, opts)
    a = await measure.take(server, await _snapshots(procs))
    started = time.time()
    await asyncio.sleep(opts.seconds)
    b = await measure.take(server, await _snapshots(procs))
    result = measure.step_result(a, b, join_before)
    result["window_wall"] = [round(started, 3), round(time.time(), 3)]  # for loop traces
    return result


async def _wait_quiet(server: Target, procs: list[BotProcess], opts: RunOptions) -> None:
    """On a shared machine: wait (bounded) until other processes leave the CPUs mostly to us."""
    deadline = time.monotonic() + opts.wait_idle
    while True:
        a = await measure.take(server, await _snapshots(procs))
        await asyncio.sleep(2)
        b = await measure.take(server, await _snapshots(procs))
        other = measure.other_load(a, b)
        if other <= opts.idle_threshold:
            return
        if time.monotonic() > deadline:
            log(f"other processes still use {other:.0f}% of a core; measuring anyway")
            return
        log(f"waiting for quiet: other processes use {other:.0f}% of a core")


async def _snapshots(procs: list[BotProcess]) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(p.command({"cmd": "snapshot"}) for p in procs)))


def _summary(label: str, r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    joins = r["join_s"]["bots"]
    aiortc = (r["join_s"].get("aiortc") or {}).get("seconds")
    return (f"{label}: fwd/CPU-s {r['forwarded_per_cpu_s']} "
            f"(media {r['forwarded_per_media_cpu_s']}), server CPU {r['server']['cpu_percent']}%"
            f", out {r['traffic']['packets_out_per_s']} pkt/s, loss {r['loss_percent']}%, "
            f"latency p50/p99 {lat['p50']}/{lat['p99']} ms, join p50 {joins['p50']} s "
            f"(aiortc {aiortc}), samples {r['samples']['verified']} ok/"
            f"{r['samples']['failed']} bad, bots CPU {r['bots']['cpu_percent']}%"
            + (f" [{'; '.join(r['notes'])}]" if r["notes"] else ""))

