"""Access tokens: JWT (RFC 7519) signed with HMAC-SHA256, checked without third-party code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

ROLES = ("host", "presenter", "attendee", "service")


class TokenError(Exception):
    """code is one of token_missing, token_invalid, token_expired."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Grant:
    room: str
    identity: str
    name: str
    role: str
    expires: int
    invite: bool = False  # a shared invitation: each holder picks an identity of their own


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint(secret: str, room: str, identity: str, name: str, role: str, ttl: int = 3600,
         now: float | None = None, invite: bool = False) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    issued = int(now if now is not None else time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"room": room, "sub": identity, "name": name, "role": role,
              "iat": issued, "exp": issued + int(ttl)}
    if invite:
        claims["inv"] = True
    signing_input = (_b64(json.dumps(header, separators=(",", ":")).encode()) + "." +
                     _b64(json.dumps(claims, separators=(",", ":")).encode()))
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(signature)


def verify(secret: str, token: str | None, now: float | None = None) -> Grant:
    if not token:
        raise TokenError("token_missing", "a token is required")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("token_invalid", "malformed token")
    try:
        header = json.loads(_unb64(parts[0]))
        signature = _unb64(parts[2])
    except (ValueError, UnicodeDecodeError):
        raise TokenError("token_invalid", "malformed token") from None
    # Only HS256: never let the token choose the algorithm ("alg": "none" attacks).
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise TokenError("token_invalid", "unsupported token algorithm")
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(),
                        hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise TokenError("token_invalid", "bad token signature")
    try:
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, UnicodeDecodeError):
        raise TokenError("token_invalid", "malformed token claims") from None
    if not isinstance(claims, dict):
        raise TokenError("token_invalid", "malformed token claims")
    exp = claims.get("exp")
    if not isinstance(exp, int):
        raise TokenError("token_invalid", "token has no expiry")
    if exp <= (now if now is not None else time.time()):
        raise TokenError("token_expired", "token has expired")
    room, sub, role = claims.get("room"), claims.get("sub"), claims.get("role")
    if not (isinstance(room, str) and isinstance(sub, str) and role in ROLES):
        raise TokenError("token_invalid", "token lacks room, identity or role")
    name = claims.get("name") if isinstance(claims.get("name"), str) else sub
    return Grant(room, sub, name[:100], role, exp, claims.get("inv") is True)
