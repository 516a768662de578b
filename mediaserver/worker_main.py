"""Entry point of one media worker process: `python -m mediaserver.worker_main ...`.

Started by the WorkerPool of the signalling process; serves the control API on a Unix socket
and media on its own UDP port. Exits when its parent goes away (the RPC socket closes).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

from .api import LocalMediaControl
from .config import MediaConfig
from .rpc import RpcServer
from .worker import Worker


async def serve(config: MediaConfig, rpc_path: str) -> None:
    worker = Worker(config)
    await worker.start()
    server = await RpcServer(LocalMediaControl(worker)).serve(rpc_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()

    def watch_parent() -> None:
        # An orphaned worker would hold its UDP port forever: leave with the parent.
        if os.getppid() != parent:
            stop.set()
        else:
            loop.call_later(1.0, watch_parent)

    watch_parent()
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
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(),
                        format=f"%(asctime)s %(levelname)s worker{args.index} %(name)s: "
                               "%(message)s")
    config = MediaConfig(host=args.host, port=args.port, announced_ip=args.announced_ip,
                         id_prefix=args.prefix or f"w{args.index}.")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(config, args.rpc))


if __name__ == "__main__":
    main()
