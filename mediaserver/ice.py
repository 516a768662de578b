"""ICE-lite connectivity checks (RFC 8445 section 2.5, RFC 5389) using aioice's STUN codec.

The server never sends checks of its own: it answers authenticated Binding requests and learns
the peer's address from them. USE-CANDIDATE from the controlling peer selects the address media
goes to; a later nomination from another address moves it (network change, ICE restart).
"""

from __future__ import annotations

import ipaddress
import secrets
import string

from aioice import stun

ALPHABET = string.ascii_letters + string.digits


def random_string(n: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(n))


def new_credentials() -> tuple[str, str]:
    """ufrag (>= 4 chars) and password (>= 22 chars), RFC 8839 section 5.4."""
    return random_string(8), random_string(24)


def username_ufrag(message: stun.Message) -> str | None:
    """Our ufrag: the part of USERNAME before the colon ('ours:theirs', RFC 8445 7.2.2)."""
    username = message.attributes.get("USERNAME")
    if not isinstance(username, str) or ":" not in username:
        return None
    return username.split(":", 1)[0]


def parse_request(data: bytes) -> stun.Message | None:
    """A Binding request with FINGERPRINT, or None for anything else or malformed input."""
    try:
        message = stun.parse_message(data)
    except Exception:  # untrusted bytes: aioice raises ValueError, struct.error, IndexError...
        return None
    if message.message_method != stun.Method.BINDING:
        return None
    if message.message_class != stun.Class.REQUEST:
        return None
    if "FINGERPRINT" not in message.attributes:
        return None
    return message


def check_request(message: stun.Message, local_ufrag: str, remote_ufrag: str | None,
                  local_pwd: str) -> bool:
    """MESSAGE-INTEGRITY keyed by our password, and USERNAME 'ours:theirs'."""
    username = message.attributes.get("USERNAME")
    if not isinstance(username, str):
        return False
    ours, _, theirs = username.partition(":")
    if ours != local_ufrag or (remote_ufrag and theirs != remote_ufrag):
        return False
    return message.check_message_integrity(local_pwd.encode())


def success_response(request: stun.Message, addr: tuple[str, int], local_pwd: str) -> bytes:
    response = stun.Message(
        message_method=stun.Method.BINDING,
        message_class=stun.Class.RESPONSE,
        transaction_id=request.transaction_id,
    )
    response.attributes["XOR-MAPPED-ADDRESS"] = (addr[0], addr[1])
    response.add_message_integrity(local_pwd.encode())
    return bytes(response)


def error_response(request: stun.Message, code: int, reason: str) -> bytes:
    response = stun.Message(
        message_method=stun.Method.BINDING,
        message_class=stun.Class.ERROR,
        transaction_id=request.transaction_id,
    )
    response.attributes["ERROR-CODE"] = (code, reason)
    response.add_fingerprint()
    return bytes(response)


def routable_from(bind_host: str, peer_host: str) -> bool:
    """Whether a socket bound to bind_host can answer peer_host.

    A socket bound to loopback cannot reach a peer's LAN address: browsers send checks from
    every interface, and answering those would only produce send errors.
    """
    try:
        bind = ipaddress.ip_address(bind_host)
        peer = ipaddress.ip_address(peer_host)
    except ValueError:
        return True
    if bind.is_loopback:
        return peer.is_loopback
    return True
