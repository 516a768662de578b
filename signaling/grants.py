"""Expiring, signed access to a recording's files.

The grant sits in the path, not the query: `/recordings/<id>/g/<expiry>/<signature>/<file>`.
An HLS playlist names its segments relatively, so a player that loaded the playlist through a
granted path asks for every segment under the same grant without knowing about it.
"""

from __future__ import annotations

import hashlib
import hmac
import time


def _signature(secret: str, recording_id: str, expires: int) -> str:
    message = f"recording:{recording_id}:{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def grant_path(secret: str, recording_id: str, ttl: int = 3600, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + ttl)
    return f"/recordings/{recording_id}/g/{expires}/{_signature(secret, recording_id, expires)}"


def check(secret: str, recording_id: str, expires: str, signature: str,
          now: float | None = None) -> bool:
    if not expires.isdigit() or int(expires) < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(signature, _signature(secret, recording_id, int(expires)))
