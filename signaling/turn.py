"""Short-lived TURN credentials for the participants (the TURN REST API scheme).

coturn with `use-auth-secret` and `static-auth-secret=SECRET` accepts, without any user
database, a username "<expiry unix time>:<anything>" whose password is
base64(HMAC-SHA1(SECRET, username)), until that time. The signalling server and coturn share
only SECRET (--turn-secret / MEDIASERVER_TURN_SECRET, never in the repository); each `join`
result carries a fresh pair in `iceServers` (docs/protocol.md), which the web client gives its
RTCPeerConnections. coturn checks the expiry when it authenticates a client: an Allocate, and
again only when its nonce goes stale (coturn's `stale-nonce`, off by default); an allocation
made in time lives on through its refreshes (tests/test_turn.py). The web client keeps the pair
of its last `join` for every connection of the session (a breakout move, an ICE restart make new
allocations), so the lifetime (--turn-ttl, default 12 h) must outlast a meeting; a client that
joins again (a reconnect) gets a new pair.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any


def credential(secret: str, username: str) -> str:
    """coturn's password for `username` under `static-auth-secret=secret`."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def username(expires: int, who: str) -> str:
    # coturn takes the time before the first ":" (its rest-api-separator); `who` is free text
    return f"{int(expires)}:{who}"


@dataclass(frozen=True)
class TurnIssuer:
    """Hands out the `iceServers` entry of one participant."""

    urls: tuple[str, ...]
    secret: str
    ttl: float

    def ice_servers(self, who: str, now: float | None = None) -> list[dict[str, Any]]:
        expires = int((time.time() if now is None else now) + self.ttl)
        name = username(expires, who)
        return [{"urls": list(self.urls), "username": name,
                 "credential": credential(self.secret, name)}]


def parse_urls(value: str) -> tuple[str, ...]:
    """A comma- or space-separated list of turn:/turns: URLs (RFC 7065)."""
    urls = tuple(u for u in value.replace(",", " ").split() if u)
    for url in urls:
        if not url.startswith(("turn:", "turns:", "stun:")):
            raise ValueError(f"bad TURN URL {url!r}: use turn:HOST:PORT?transport=tcp, "
                             "turns:HOST:443?transport=tcp or stun:HOST:PORT")
    return urls


def issuer(urls: tuple[str, ...], secret: str, ttl: float) -> TurnIssuer | None:
    """None without TURN configured (then `join` carries no iceServers)."""
    if not urls:
        return None
    return TurnIssuer(urls, secret, ttl)
