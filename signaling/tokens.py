"""Access tokens: JWT (RFC 7519) signed with HMAC-SHA256, through PyJWT.

Verification pins the algorithm to HS256 (the header never chooses it: `alg: none` or any other
algorithm is refused), requires the claims the server uses and checks their types strictly.
Expiry is compared with the server's clock with no leeway (LEEWAY): the tokens are minted by
this server's API, on the same clock, and a caller may pass the clock (`now`) to check against.
The JWT header is read before its signature is checked, so its nesting depth is bounded first
(safe_json), and the token must be ASCII (base64url and dots) of bounded length.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Literal

import jwt
from pydantic import BaseModel, ConfigDict, ValidationError

from .safe_json import depth_ok

clock = time.time  # what minting and expiry read (a test may move it by hours)

ROLES = ("host", "presenter", "attendee", "service")
ALGORITHM = "HS256"
LEEWAY = 0  # seconds of grace after `exp`
MAX_TOKEN = 4096  # characters; a minted token is a few hundred
REQUIRED = ("exp", "room", "sub", "role")


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


class Claims(BaseModel):
    """The claims the server reads; others are ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")
    room: str
    sub: str
    role: Literal[ROLES]  # type: ignore[valid-type]
    exp: int
    iat: int | None = None
    name: str | None = None  # the identity when missing
    inv: bool = False


def mint(secret: str, room: str, identity: str, name: str, role: str, ttl: int = 3600,
         now: float | None = None, invite: bool = False) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    issued = int(now if now is not None else clock())
    claims: dict[str, object] = {"room": room, "sub": identity, "name": name, "role": role,
                                 "iat": issued, "exp": issued + int(ttl)}
    if invite:
        claims["inv"] = True
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def _header_nesting_ok(token: str) -> bool:
    header = token.split(".", 1)[0]
    try:
        text = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
    except ValueError:
        return True  # not base64: PyJWT refuses it as malformed
    return depth_ok(text.decode("utf-8", "replace"))


def verify(secret: str, token: str | None, now: float | None = None) -> Grant:
    if not token:
        raise TokenError("token_missing", "a token is required")
    if len(token) > MAX_TOKEN or not token.isascii() or not _header_nesting_ok(token):
        raise TokenError("token_invalid", "malformed token")
    try:
        payload = jwt.decode(token, secret, algorithms=[ALGORITHM], options={
            "require": list(REQUIRED), "verify_exp": False, "verify_iat": False,
            "verify_nbf": False})
    except jwt.InvalidTokenError as exc:
        raise TokenError("token_invalid", f"invalid token: {exc}") from None
    try:
        claims = Claims.model_validate(payload)
    except ValidationError as exc:
        fields = ", ".join(str(e["loc"][0]) for e in exc.errors() if e["loc"])
        raise TokenError("token_invalid", f"token claims of the wrong type: {fields}") from None
    if claims.exp <= (now if now is not None else clock()) - LEEWAY:
        raise TokenError("token_expired", "token has expired")
    name = claims.name if claims.name is not None else claims.sub
    return Grant(claims.room, claims.sub, name[:100], claims.role, claims.exp, claims.inv)
