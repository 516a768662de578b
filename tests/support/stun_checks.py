"""STUN Binding requests as an ICE agent's connectivity checks (RFC 8445 7.2.2), for tests."""

from __future__ import annotations

from aioice import stun


def binding_request(username: str, pwd: str, nominate: bool = False,
                    priority: int = 1) -> bytes:
    """A controlling agent's check: USERNAME 'theirs:ours', MESSAGE-INTEGRITY keyed by `pwd`,
    FINGERPRINT; USE-CANDIDATE when it nominates."""
    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    request.attributes["USERNAME"] = username
    request.attributes["PRIORITY"] = priority
    request.attributes["ICE-CONTROLLING"] = 1
    if nominate:
        request.attributes["USE-CANDIDATE"] = None
    request.add_message_integrity(pwd.encode())
    request.add_fingerprint()
    return bytes(request)
