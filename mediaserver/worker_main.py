"""Entry point of one media worker process: `python -m mediaserver.worker_main ...`.

Started by the WorkerPool of the signalling process (in a session of its own); serves the
control API on a Unix socket and media on its own UDP port. Exits on SIGTERM or SIGINT, and
when its parent goes away (lifetime.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from .config import MediaConfig
from .lifetime import watch_parent
from .local_control import LocalMediaControl
from .remote_control import serve_control
from .worker import Worker


async def serve(config: MediaConfig, rpc_path: str, parent: int = 0) -> None:
    worker = Worker(config)
    await worker.start()
    server = await serve_control(LocalMediaControl(worker), rpc_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watch_parent(parent, stop.set)  # an orphan would hold its UDP port for ever
    print(f"ready {worker.port}", flush=True)
    await stop.wait()
    server.close()
    await worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="mediaserver.worker_main")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--announced-ip", default="")
    parser.add_argument("--rpc", required=True, help="Unix socket path for the control API")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--prefix", default="", help="id prefix; default w<index>.")
    parser.add_argument("--parent", type=int, default=0,
                        help="PID of the server; leave when it is gone (default: our parent)")
    parser.add_argument("--consent-timeout", type=float, default=MediaConfig.consent_timeout,
                        help="ICE consent timeout of connections that were up (RFC 7675)")
    parser.add_argument("--tcp-port", type=int, default=None,
                        help="ICE-TCP port; default: the UDP port's number")
    parser.add_argument("--no-ice-tcp", action="store_true", help="no ICE-TCP candidate")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(),
                        format=f"%(asctime)s %(levelname)s worker{args.index} %(name)s: "
                               "%(message)s")
    config = MediaConfig(host=args.host, port=args.port, announced_ip=args.announced_ip,
                         id_prefix=args.prefix or f"w{args.index}.",
                         consent_timeout=args.consent_timeout, ice_tcp=not args.no_ice_tcp,
                         tcp_port=args.tcp_port)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(config, args.rpc, args.parent))


if __name__ == "__main__":
    main()
