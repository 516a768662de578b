"""`python -m recorder serve --rtp-host 127.0.0.1 --control /path/to.sock --recordings DIR`."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from .composite import CompositeOptions
from .service import STOP_SECONDS, RecorderService


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m recorder")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the recorder process")
    serve.add_argument("--rtp-host", default="127.0.0.1", help="address the RTP sockets bind")
    serve.add_argument("--control", required=True, type=Path, help="Unix socket for control")
    serve.add_argument("--recordings", required=True, type=Path, help="output directory")
    serve.add_argument("--jitter-ms", type=float, default=150.0,
                       help="how long a hole is waited for before the frame is dropped")
    serve.add_argument("--segment-seconds", type=float, default=2.0)
    serve.add_argument("--latency", type=float, default=0.5,
                       help="media seconds the composite waits for late tracks")
    serve.add_argument("--low-latency", action="store_true",
                       help="composite recordings write LL-HLS parts unless `start` says not")
    serve.add_argument("--part-seconds", type=float, default=1 / 3,
                       help="LL-HLS part length (rounded to whole video frames)")
    serve.add_argument("--stop-seconds", type=float, default=STOP_SECONDS,
                       help="the longest a shutdown (SIGTERM, SIGINT, the server gone) may "
                            "take; a finalization not done by then is finished at the next "
                            "start")
    serve.add_argument("--parent", type=int, default=0,
                       help="PID of the server; leave when it is gone (default: our parent)")
    serve.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = CompositeOptions(segment_seconds=args.segment_seconds, latency=args.latency,
                               low_latency=args.low_latency, part_seconds=args.part_seconds)
    service = RecorderService(args.rtp_host, args.recordings, options, args.jitter_ms / 1000)
    try:
        import uvloop  # the SFU's event loop; optional here

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(service.serve(args.control, args.stop_seconds, args.parent))


if __name__ == "__main__":
    main()
