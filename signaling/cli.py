"""`mediaserver serve`: every option is a flag and an environment variable."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from aiohttp import web

from .config import ServerConfig
from .turn import parse_urls

ENV = "MEDIASERVER_"
HTTP_SHUTDOWN_WAIT = 0.25  # for HTTP requests still running once every session is closed
WATCHDOG_MARGIN = 0.25  # the watchdog fires this long before the shutdown's time is up

log = logging.getLogger(__name__)


def _env(name: str, default: str) -> str:
    return os.environ.get(ENV + name, default)


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(ENV + name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mediaserver",
                                     description="Real-time media server (SFU) for meetings")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the signalling server and a media worker",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    serve.add_argument("--host", default=_env("HOST", "127.0.0.1"),
                       help="HTTP bind address [env MEDIASERVER_HOST]")
    serve.add_argument("--port", type=int, default=int(_env("PORT", "8080")),
                       help="HTTP port [env MEDIASERVER_PORT]")
    serve.add_argument("--rtc-host", default=_env("RTC_HOST", ""),
                       help="UDP (and TCP) bind address of the media worker; default: --host "
                            "[env MEDIASERVER_RTC_HOST]")
    serve.add_argument("--rtc-port", type=int, default=int(_env("RTC_PORT", "40000")),
                       help="the media worker's one UDP port [env MEDIASERVER_RTC_PORT]")
    serve.add_argument("--rtc-tcp-port", type=int,
                       default=int(_env("RTC_TCP_PORT", "-1")),
                       help="TCP port of the media worker for ICE-TCP (clients whose UDP is "
                            "blocked); worker i uses rtc-tcp-port + i; -1: the same numbers "
                            "as the UDP ports [env MEDIASERVER_RTC_TCP_PORT]")
    serve.add_argument("--ice-tcp", action=argparse.BooleanOptionalAction,
                       default=_env_bool("ICE_TCP", True),
                       help="offer ICE-TCP: every media worker also listens on TCP and "
                            "announces it after its UDP candidate [env MEDIASERVER_ICE_TCP]")
    serve.add_argument("--workers", type=int,
                       default=int(_env("WORKERS", str(os.cpu_count() or 1))),
                       help="media worker processes, UDP ports rtc-port .. rtc-port+N-1; "
                            "0 runs one worker inside the signalling process "
                            "[env MEDIASERVER_WORKERS]")
    serve.add_argument("--subscribers-per-worker", type=int,
                       default=int(_env("SUBSCRIBERS_PER_WORKER", "200")),
                       help="a room's subscribers beyond this many go to other workers, fed "
                            "through pipes (0: never) [env MEDIASERVER_SUBSCRIBERS_PER_WORKER]")
    serve.add_argument("--announced-ip", default=_env("ANNOUNCED_IP", ""),
                       help="address put in ICE candidates, for NAT and cloud hosts "
                            "[env MEDIASERVER_ANNOUNCED_IP]")
    serve.add_argument("--data-dir", default=_env("DATA_DIR", "data"),
                       help="directory of the SQLite store [env MEDIASERVER_DATA_DIR]")
    serve.add_argument("--store", default=_env("STORE", "sqlite"),
                       help="sqlite (a file under --data-dir) or a redis:// URL shared by "
                            "several signalling nodes [env MEDIASERVER_STORE]")
    serve.add_argument("--node", default=_env("NODE", ""),
                       help="name of this signalling node when several share one Redis "
                            "(--store redis://...); needs --workers >= 1 [env MEDIASERVER_NODE]")
    serve.add_argument("--node-ttl", type=float,
                       default=float(_env("NODE_TTL", str(ServerConfig.node_ttl))),
                       help="with --node: seconds after which a node that stopped renewing "
                            "its registration in Redis counts as dead; the others then end "
                            "its participants after the grace period (docs/operations.md) "
                            "[env MEDIASERVER_NODE_TTL]")
    serve.add_argument("--dev", action=argparse.BooleanOptionalAction,
                       default=_env_bool("DEV", False),
                       help="dev mode, for a local trial: POST /api/dev/token gives anyone a "
                            "host token for any room (created on the spot); the web client "
                            "asks for one by itself, so opening /r/<room> is enough. The "
                            "WebSocket still needs a token. Without --jwt-secret a random "
                            "secret of this run signs tokens [env MEDIASERVER_DEV]")
    serve.add_argument("--api-key", default=_env("API_KEY", ""),
                       help="key protecting the HTTP API (Authorization: Bearer) "
                            "[env MEDIASERVER_API_KEY]")
    serve.add_argument("--jwt-secret", default=_env("JWT_SECRET", ""),
                       help="HS256 secret signing access tokens; required without --dev "
                            "[env MEDIASERVER_JWT_SECRET]")
    serve.add_argument("--grace-period", type=float, default=float(_env("GRACE_PERIOD", "30")),
                       help="seconds a participant whose connection dropped keeps their place "
                            "[env MEDIASERVER_GRACE_PERIOD]")
    serve.add_argument("--ice-consent-timeout", type=float,
                       default=float(_env("ICE_CONSENT_TIMEOUT",
                                          str(ServerConfig.ice_consent_timeout))),
                       help="seconds without an ICE check after which a media connection that "
                            "was up counts as gone (RFC 7675); its participant is asked to come "
                            "back and keeps their place for the grace period; a connection "
                            "that has not connected yet never expires "
                            "[env MEDIASERVER_ICE_CONSENT_TIMEOUT]")
    serve.add_argument("--turn-url", default=_env("TURN_URLS", ""),
                       help="TURN servers handed to every participant in the join result, "
                            "comma-separated, e.g. turn:turn.example.org:3478?transport=tcp,"
                            "turns:turn.example.org:443?transport=tcp; none: no TURN "
                            "(docs/operations.md, \"TURN\") [env MEDIASERVER_TURN_URLS]")
    # default "": the variable is read in config_from_args, so --help never prints it
    serve.add_argument("--turn-secret", default="",
                       help="coturn's static-auth-secret (use-auth-secret), which signs the "
                            "participants' short-lived TURN credentials; prefer the "
                            "environment variable [env MEDIASERVER_TURN_SECRET]")
    serve.add_argument("--turn-ttl", type=float,
                       default=float(_env("TURN_TTL", str(ServerConfig.turn_ttl))),
                       help="seconds a participant's TURN credentials stay valid; the web "
                            "client uses them for every connection of its session (breakout "
                            "moves make new ones), so longer than a meeting "
                            "[env MEDIASERVER_TURN_TTL]")
    serve.add_argument("--webhook-url", default=_env("WEBHOOK_URL", ""),
                       help="URL receiving signed JSON events such as recording.ready "
                            "[env MEDIASERVER_WEBHOOK_URL]")
    serve.add_argument("--webhook-secret", default=_env("WEBHOOK_SECRET", ""),
                       help="HMAC-SHA256 key signing webhooks; default: the JWT secret "
                            "[env MEDIASERVER_WEBHOOK_SECRET]")
    serve.add_argument("--analytics-retention-days", type=float,
                       default=float(_env("ANALYTICS_RETENTION_DAYS", "365")),
                       help="days analytics events are kept (docs/analytics.md) "
                            "[env MEDIASERVER_ANALYTICS_RETENTION_DAYS]")
    serve.add_argument("--analytics-hash-identities", action=argparse.BooleanOptionalAction,
                       default=_env_bool("ANALYTICS_HASH_IDENTITIES", False),
                       help="store analytics identities as keyed hashes, and no names "
                            "[env MEDIASERVER_ANALYTICS_HASH_IDENTITIES]")
    serve.add_argument("--shutdown-timeout", type=float,
                       default=float(_env("SHUTDOWN_TIMEOUT",
                                          str(ServerConfig.shutdown_timeout))),
                       help="seconds SIGTERM or SIGINT may take, everything included; "
                            "recordings finalize in all but 2 s of it, one that cannot (the "
                            "MP4 of a long recording) is finished at the next start "
                            "[env MEDIASERVER_SHUTDOWN_TIMEOUT]")
    serve.add_argument("--log-level", default=_env("LOG_LEVEL", "info"),
                       help="debug, info, warning or error [env MEDIASERVER_LOG_LEVEL]")
    return parser


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(host=args.host, http_port=args.port, rtc_host=args.rtc_host,
                        rtc_port=args.rtc_port, announced_ip=args.announced_ip,
                        ice_tcp=args.ice_tcp,
                        rtc_tcp_port=None if args.rtc_tcp_port < 0 else args.rtc_tcp_port,
                        workers=max(0, args.workers),
                        subscribers_per_worker=max(0, args.subscribers_per_worker),
                        data_dir=Path(args.data_dir), store=args.store, node=args.node,
                        node_ttl=args.node_ttl,
                        dev=args.dev,
                        api_key=args.api_key,
                        jwt_secret=args.jwt_secret, log_level=args.log_level,
                        grace_period=max(0.0, args.grace_period),
                        ice_consent_timeout=args.ice_consent_timeout,
                        shutdown_timeout=max(0.0, args.shutdown_timeout),
                        webhook_url=args.webhook_url, webhook_secret=args.webhook_secret,
                        turn_urls=parse_urls(args.turn_url),
                        turn_secret=args.turn_secret or _env("TURN_SECRET", ""),
                        turn_ttl=args.turn_ttl,
                        analytics_retention_days=max(0.0, args.analytics_retention_days),
                        analytics_hash_identities=args.analytics_hash_identities)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"mediaserver: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .app import make_app

    app = make_app(config)
    mode = "dev mode" if config.dev else "production mode"
    url = f"http://{config.host}:{config.http_port}/r/demo"
    ports = (f"{config.rtc_port}-{config.rtc_port + config.workers - 1}"
             if config.workers > 1 else str(config.rtc_port))
    if config.ice_tcp:
        tcp = config.rtc_port if config.rtc_tcp_port is None else config.rtc_tcp_port
        ports += (" and TCP " + (f"{tcp}-{tcp + config.workers - 1}" if config.workers > 1
                                 else str(tcp)))
    print(f"mediaserver ({mode}) HTTP on {config.host}:{config.http_port}, "
          f"{max(1, config.workers)} media worker(s) on UDP {config.rtc_host or config.host}:"
          f"{ports}" + (f", TURN {' '.join(config.turn_urls)}" if config.turn_urls else "")
          + f"\nopen {url}", flush=True)
    try:
        import uvloop  # the receive path is about three times faster than on asyncio's loop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    try:
        run(serve(app, config))
    except KeyboardInterrupt:  # Ctrl-C before the handlers were in place, or after they left
        pass
    return 0


async def serve(app: web.Application, config: ServerConfig) -> None:
    """Serve until SIGTERM or SIGINT, then shut down (docs/operations.md, "Stopping and
    restarting"). aiohttp's run_app is not used: its shutdown waits up to a minute for open
    WebSockets, and a second signal during it raised out of the cleanup. Every step of the
    shutdown is bounded; should one still hang (a child stuck in the kernel, a bug), a
    watchdog ends the process when `config.shutdown_timeout` is up, and the children, whose parent
    is gone, leave by themselves (mediaserver/lifetime.py)."""
    from .app import begin_shutdown

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signalled: list[float] = []  # when the first signal came

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.info("%s: already shutting down", sig.name)
            return
        begin_shutdown(app)  # first of all: nothing is restarted from now on
        signalled.append(loop.time())
        loop.call_later(max(0.5, config.shutdown_timeout - WATCHDOG_MARGIN), _overdue, app,
                        config.shutdown_timeout)
        log.info("%s: shutting down", sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    runner = web.AppRunner(app, shutdown_timeout=HTTP_SHUTDOWN_WAIT)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, config.host, config.http_port).start()
        except OSError as exc:
            raise SystemExit(f"mediaserver: cannot listen on {config.host}:"
                             f"{config.http_port}: {exc.strerror}") from None
        await stop.wait()
    finally:
        await runner.cleanup()
    if signalled:
        log.info("stopped in %.2f s", loop.time() - signalled[0])


def _overdue(app: web.Application, shutdown_seconds: float) -> None:
    from .app import kill_children

    log.error("shutdown still running after %.1f s: killing the children, exiting now",
              shutdown_seconds)
    kill_children(app)
    logging.shutdown()
    os._exit(1)


if __name__ == "__main__":
    sys.exit(main())
