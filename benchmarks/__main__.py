"""`python -m benchmarks run <scenario> [options]`: run a load scenario and write its report.

    python -m benchmarks run webinar --attendees 200 --seconds 30
    python -m benchmarks run webinar --step 50 --max 400 --seconds 15
    python -m benchmarks run meeting --size 4
    python -m benchmarks run rooms --rooms 5 --size 4
    python -m benchmarks run webinar --target janus --step 50 --max 300
    python -m benchmarks run webinar --compare --step 50 --max 300 --wait-idle 120
    python -m benchmarks run webinar --simulcast --twcc --attendees 300 --weak-share 10
    python -m benchmarks run webinar --simulcast --twcc --compare --repeat 3 --step 100 --max 300
    python -m benchmarks run webinar --transport tcp --attendees 50
    python -m benchmarks run webinar --compare-transports --repeat 4 --step 50 --max 100

Against Janus (`--target janus`, or `--compare` for ours then Janus with the same steps and one
report with both and their ratios) the command re-runs itself inside a throwaway network
namespace (benchmarks/janus/launcher.py), where our server runs too. `--transport tcp` connects
the audience over ICE-TCP (benchmarks/peer_tcp.py); `--compare-transports` runs the same steps
over ICE-TCP and over UDP, alternated (ABBA), with the TCP / UDP ratios in one report.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from . import compare, compare_report, report, scenarios
from .process import prepare_process
from .runner import RESULTS, RunOptions, log, run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run one scenario against a fresh server",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument("scenario", choices=["meeting", "webinar", "rooms"])
    r.add_argument("--size", type=int, default=4, help="meeting/rooms: participants per room")
    r.add_argument("--rooms", type=int, default=2, help="rooms: how many rooms")
    r.add_argument("--attendees", type=int, default=50, help="webinar: attendees")
    r.add_argument("--presenters", type=int, default=1, help="webinar: presenters")
    r.add_argument("--step", type=int, default=0,
                   help="webinar: add this many attendees per step (0: one step)")
    r.add_argument("--max", type=int, default=400, help="webinar: largest step")
    r.add_argument("--all-steps", action="store_true",
                   help="webinar: measure every step even past the limits (comparisons at "
                        "each step, on a machine others load)")
    r.add_argument("--seconds", type=float, default=30.0, help="measurement window per step")
    r.add_argument("--warmup", type=float, default=4.0, help="seconds skipped after joining")
    r.add_argument("--workers", type=int, default=1, help="media worker processes of the server")
    r.add_argument("--subscribers-per-worker", type=int, default=None,
                   help="passed to the server (default: the server's own)")
    r.add_argument("--bot-procs", type=int, default=1, help="bot processes")
    r.add_argument("--sample-every", type=int, default=10,
                   help="one subscriber in N decodes a video sample per second (0: none)")
    r.add_argument("--sample-frames", type=int, default=2,
                   help="frames decoded per sample: a keyframe and the frames after it")
    r.add_argument("--decrypt-all", action="store_true",
                   help="subscribers decrypt every packet, not only what they inspect")
    r.add_argument("--drop-percent", type=float, default=0.0,
                   help="subscribers discard this share of incoming video packets, to "
                        "exercise NACK and retransmission (loss then counts what stays lost)")
    r.add_argument("--no-aiortc", dest="aiortc", action="store_false",
                   help="skip the aiortc join-time probe")
    r.add_argument("--join-concurrency", type=int, default=10)
    r.add_argument("--media-seconds", type=float, default=4.0)
    r.add_argument("--video-size", default="640x360")
    r.add_argument("--bitrate", type=int, default=1_000_000)
    r.add_argument("--out", type=Path, default=RESULTS, help="folder of the reports")
    r.add_argument("--no-plots", dest="plots", action="store_false")
    r.add_argument("--wait-idle", type=float, default=0.0,
                   help="shared machine: before each window wait up to this many seconds "
                        "until other processes use less than --idle-threshold")
    r.add_argument("--idle-threshold", type=float, default=20.0,
                   help="%% of one core used by other processes that still counts as quiet")
    r.add_argument("--publisher-proc", action="store_true",
                   help="with --bot-procs 2 or more: the publishers get a bot process of "
                        "their own (the others hold the subscribers)")
    r.add_argument("--retries", type=int, default=2,
                   help="measure a step again (up to this many times) when it broke the "
                        "limits while other processes used more than --idle-threshold")
    r.add_argument("--target", choices=["ours", "janus"], default="ours",
                   help="the server under test: ours, or Janus 1.1.2 (webinar only)")
    r.add_argument("--compare", action="store_true",
                   help="run the scenario against ours, then Janus; one report with the ratios")
    r.add_argument("--janus-event-loops", type=int, default=1,
                   help="Janus's event_loops setting (0: Janus's default, a loop per handle)")
    r.add_argument("--keep-logs", action="store_true",
                   help="keep the server's and bots' logs (always kept after a failure)")
    r.add_argument("--simulcast", action="store_true",
                   help="publishers send three VP8 encodings (rids q, h, f: 320x180 ~150 "
                        "kbit/s, 640x360 ~500 kbit/s, 1280x720 ~1.5 Mbit/s) as Chromium does")
    r.add_argument("--twcc", action="store_true",
                   help="publishers negotiate transport-cc (the server's feedback to them); "
                        "subscribers send transport-cc feedback wherever the offer has it")
    r.add_argument("--feedback-interval", type=float, default=0.1,
                   help="subscribers' transport-cc feedback interval, s (Chromium: 0.1; 0: "
                        "negotiated but never sent, to measure what the feedback costs)")
    r.add_argument("--weak-share", type=float, default=0.0,
                   help="webinar: %% of attendees behind an emulated weak downlink")
    r.add_argument("--weak-kbps", type=int, default=400,
                   help="rate of the emulated weak downlinks, kbit/s (tbf-like, see "
                        "benchmarks/link.py)")
    r.add_argument("--link-queue", type=int, default=20_000,
                   help="queue of the emulated weak downlinks, bytes (tbf limit)")
    r.add_argument("--layers", default="",
                   help="webinar with --simulcast: the layers attendees show in turn, e.g. "
                        "'012' (default: none asked, each server's own choice)")
    r.add_argument("--repeat", type=int, default=1,
                   help="with --compare: this many alternations, ours and Janus in ABBA "
                        "order (ours, Janus, Janus, ours, ...); one report with the medians")
    r.add_argument("--trace-loop", type=Path, default=None,
                   help="our media workers record every datagram, timer and GC pass of their "
                        "event loop into files in this folder (benchmarks/looptrace.py reads "
                        "them); adds about a microsecond per datagram")
    r.add_argument("--transport", choices=["udp", "tcp"], default="udp",
                   help="how subscribers connect to our server: UDP, or ICE-TCP to its passive "
                        "TCP candidate (RFC 6544/4571) as behind a firewall that blocks UDP; "
                        "publishers stay on UDP")
    r.add_argument("--compare-transports", action="store_true",
                   help="run the scenario with the audience over ICE-TCP, then over UDP "
                        "(--repeat alternations, ABBA); one report with the TCP / UDP ratios")
    r.add_argument("--server-root", type=Path, default=None,
                   help="run our server from this source tree (e.g. a git worktree with a "
                        "change to mediaserver/), also as 'ours' in --compare")
    r.add_argument("--baseline-root", type=Path, default=None,
                   help="compare our server run from this source tree (a git worktree: "
                        "'before') with this one ('after') instead of with Janus")
    return parser


def scenario_from(args: argparse.Namespace) -> scenarios.Scenario:
    if args.scenario == "meeting":
        return scenarios.meeting(args.size, args.sample_every)
    if args.scenario == "rooms":
        return scenarios.rooms(args.rooms, args.size, args.sample_every)
    targets = (scenarios.step_targets(args.step, args.max) if args.step else [args.attendees])
    layers = tuple(int(c) for c in args.layers if c.isdigit())
    scenario = scenarios.webinar(targets, args.sample_every, args.presenters,
                                 weak_share=args.weak_share / 100, weak_kbps=args.weak_kbps,
                                 layer_mix=layers)
    if args.all_steps:
        scenario.stepped = False
    if args.simulcast:
        scenario.name += "-simulcast"
        scenario.description += "; the presenter publishes three simulcast encodings"
    if args.twcc:
        scenario.name += "-twcc"
        scenario.description += "; transport-cc negotiated on both legs"
    if args.transport == "tcp" and not args.compare_transports:
        scenario.name += "-tcp"
        scenario.description += "; the attendees connect over ICE-TCP"
    return scenario


def options_from(args: argparse.Namespace) -> RunOptions:
    width, _, height = args.video_size.partition("x")
    return RunOptions(seconds=args.seconds, warmup=args.warmup, workers=args.workers,
                      subscribers_per_worker=args.subscribers_per_worker,
                      bot_procs=args.bot_procs, out_dir=args.out,
                      media_seconds=args.media_seconds, width=int(width), height=int(height),
                      bitrate=args.bitrate, sample_every=args.sample_every,
                      sample_frames=args.sample_frames, decrypt_all=args.decrypt_all,
                      drop_percent=args.drop_percent,
                      aiortc=args.aiortc, join_concurrency=args.join_concurrency,
                      plots=args.plots, keep_logs=args.keep_logs, wait_idle=args.wait_idle,
                      idle_threshold=args.idle_threshold, retries=args.retries,
                      publisher_proc=args.publisher_proc,
                      target=args.target,
                      janus_event_loops=args.janus_event_loops or None,
                      simulcast=args.simulcast, twcc=args.twcc,
                      feedback_interval=args.feedback_interval,
                      link_queue_bytes=args.link_queue, ice_tcp=args.transport == "tcp",
                      trace_loop=str(args.trace_loop.resolve()) if args.trace_loop else "",
                      server_root=str(args.server_root.resolve()) if args.server_root else "")


async def main_async(args: argparse.Namespace) -> int:
    scenario = scenario_from(args)
    opts = options_from(args)
    if args.compare or args.baseline_root or args.compare_transports:
        targets = (compare.TRANSPORT_TARGETS if args.compare_transports else
                   compare.targets_for(args.baseline_root.resolve() if args.baseline_root
                                       else None, opts.server_root))
        combined = await compare.run_compare(scenario, opts, targets, args.repeat)
        for kind, path in compare_report.write(combined, opts.out_dir, opts.plots).items():
            log(f"{kind}: {path}")
        return 0 if all(r["steps"] and not r["error"] for r in combined["runs"]) else 1
    results = await run(scenario, opts)
    paths = report.write(results, opts.out_dir, opts.plots)
    for kind, path in paths.items():
        log(f"{kind}: {path}")
    return 0 if results["steps"] and not results["error"] else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (args.transport == "tcp" or args.compare_transports) and (
            args.compare or args.target == "janus" or args.baseline_root):
        raise SystemExit("ICE-TCP subscribers run against our server only (not with "
                         "--compare, --target janus or --baseline-root)")
    if args.compare or args.target == "janus":
        if args.scenario != "webinar":
            raise SystemExit("the Janus target runs the webinar scenario only")
        from .janus.launcher import ensure_namespace

        ensure_namespace()  # returns inside the namespace (re-executes this command there)
    prepare_process()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
