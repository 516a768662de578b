"""Expiring, signed access to a recording's files.

The grant sits in the path, not the query: `/recordings/<id>/g/<expiry>/<signature>/<file>`.
An HLS playlist names its segments relatively, so a player that loaded the playlist through a
granted path asks for every segment under the same grant without knowing about it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

_RECORDING = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_EXPIRES = re.compile(r"[0-9]{1,12}")  # seconds since 1970: 12 digits reach the year 33658
_SIGNATURE = re.compile(r"[0-9a-f]{32}")


def _signature(secret: str, recording_id: str, expires: int) -> str:
    message = f"recording:{recording_id}:{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def grant_path(secret: str, recording_id: str, ttl: int = 3600, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + ttl)
    return f"/recordings/{recording_id}/g/{expires}/{_signature(secret, recording_id, expires)}"


def check(secret: str, recording_id: str, expires: str, signature: str,
          now: float | None = None) -> bool:
    """Whether the path's grant is valid now. Anything not shaped like a grant we make (a
    recording id of letters, digits, '-', '_' and '.', an expiry of 1 to 12 ASCII digits, a
    signature of 32 lowercase hex digits) is simply not one: never an exception, whatever the
    path holds."""
    if not (_RECORDING.fullmatch(recording_id) and _EXPIRES.fullmatch(expires)
            and _SIGNATURE.fullmatch(signature)):
        return False
    if int(expires) < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(signature, _signature(secret, recording_id, int(expires)))


# ---- a participant's grant: valid while they are in the room (catchup.py) --------------------
# `/recordings/<id>/p/<participant>/<expiry>/<signature>/<file>`: the signature binds the
# participant's id, and the route serves it only while that participant is in the room.
_PARTICIPANT = re.compile(r"p-[A-Za-z0-9_-]{1,64}")


def _participant_signature(secret: str, recording_id: str, participant: str,
                           expires: int) -> str:
    message = f"watch:{recording_id}:{participant}:{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def participant_grant_path(secret: str, recording_id: str, participant: str, ttl: int,
                           now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + ttl)
    sig = _participant_signature(secret, recording_id, participant, expires)
    return f"/recordings/{recording_id}/p/{participant}/{expires}/{sig}"


def check_participant(secret: str, recording_id: str, participant: str, expires: str,
                      signature: str, now: float | None = None) -> bool:
    """The signature and expiry of a participant's grant (whether they are still in the room
    is the route's question). Never an exception, whatever the path holds."""
    if not (_RECORDING.fullmatch(recording_id) and _PARTICIPANT.fullmatch(participant)
            and _EXPIRES.fullmatch(expires) and _SIGNATURE.fullmatch(signature)):
        return False
    if int(expires) < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(
        signature, _participant_signature(secret, recording_id, participant, int(expires)))
