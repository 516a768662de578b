"""Server configuration: one frozen dataclass; each field has a flag and an env variable."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

MIN_SECRET = 32  # bytes of an HS256 key (RFC 7518 section 3.2)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    http_port: int = 8080
    rtc_host: str = ""  # UDP bind address; default: host
    rtc_port: int = 40000  # worker i of a pool listens on rtc_port + i
    # ICE-TCP: worker i also listens on TCP rtc_tcp_port + i (None: the same numbers as UDP)
    ice_tcp: bool = True
    rtc_tcp_port: int | None = None
    workers: int = 0  # media worker processes; 0: one worker inside this process
    subscribers_per_worker: int = 0  # spread a room's subscribers past this many; 0: never
    announced_ip: str = ""
    data_dir: Path = Path("data")
    store: str = ""  # "" or "sqlite": SQLite under data_dir; "redis://host:port/db": Redis
    node: str = ""  # with a Redis store and workers: this node's name among several
    # a node that has not renewed its registration for this long is dead (liveness.py)
    node_ttl: float = 10.0
    dev: bool = False
    api_key: str = ""
    jwt_secret: str = ""
    log_level: str = "info"
    webhook_url: str = ""  # where recording.ready and other events are POSTed
    webhook_secret: str = ""  # HMAC-SHA256 key of X-Mediaserver-Signature; default JWT secret
    analytics_retention_days: float = 365.0  # analytics events older than this are deleted
    analytics_hash_identities: bool = False  # store keyed hashes of identities, no names
    grace_period: float = 30.0  # a dropped participant keeps their place this long
    # RFC 7675: a media connection that was up and has had no ICE check this long is gone
    ice_consent_timeout: float = 30.0
    # TURN (signaling/turn.py): coturn's URLs, the static-auth-secret shared with it, and how
    # long a participant's credentials stay valid; no URLs: `join` hands out no iceServers
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = ""
    turn_ttl: float = 12 * 3600.0
    shutdown_timeout: float = 5.0  # SIGTERM or SIGINT to exit, everything included
    max_message: int = 64 * 1024  # largest WebSocket message accepted
    messages_per_second: float = 50.0  # per session, with a burst of twice that
    web_root: Path = Path(__file__).resolve().parent.parent / "web_client"

    def __post_init__(self) -> None:
        if not 0 <= self.http_port <= 65535:
            raise ValueError(f"bad HTTP port {self.http_port}")
        if self.rtc_tcp_port is not None and not 0 <= self.rtc_tcp_port <= 65535:
            raise ValueError(f"bad --rtc-tcp-port {self.rtc_tcp_port}")
        if self.store not in ("", "sqlite") and not self.store.startswith(("redis://",
                                                                          "rediss://")):
            raise ValueError(f"unknown store {self.store!r}: use sqlite or a redis:// URL")
        if not 0 < self.ice_consent_timeout <= 3600:
            raise ValueError("--ice-consent-timeout must be more than 0 and at most 3600 s")
        if any(u.startswith("turn") for u in self.turn_urls) and not self.turn_secret:
            raise ValueError("--turn-url needs the secret shared with coturn (--turn-secret or "
                             "MEDIASERVER_TURN_SECRET)")
        if not 60 <= self.turn_ttl <= 7 * 86400:
            raise ValueError("--turn-ttl must be between 60 s and 7 days")
        if self.shutdown_timeout < 0:
            raise ValueError("--shutdown-timeout must not be negative")
        if not 0.3 <= self.node_ttl <= 600:
            raise ValueError("--node-ttl must be between 0.3 and 600 s")
        if self.node and not self.node.isalnum():
            raise ValueError("--node must be letters and digits")
        if not self.dev and not self.jwt_secret:
            raise ValueError("production mode needs a JWT secret (--jwt-secret or "
                             "MEDIASERVER_JWT_SECRET); use --dev for a local trial")
        if self.jwt_secret and len(self.jwt_secret.encode()) < MIN_SECRET:
            # RFC 7518 3.2: an HS256 key of fewer than 256 bits can be guessed offline
            raise ValueError(f"the JWT secret must be at least {MIN_SECRET} bytes "
                             "(e.g. openssl rand -base64 32)")

    @property
    def effective_jwt_secret(self) -> str:
        return self.jwt_secret or _DEV_SECRET


# Dev mode without a configured secret: a fresh random secret per process, never a constant
# in the repository; tokens simply do not survive a restart.
_DEV_SECRET = secrets.token_urlsafe(32)
