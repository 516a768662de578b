"""ICE-lite STUN handling: real Binding requests built with aioice's codec (RFC 5389, RFC 8445)."""

from __future__ import annotations

import os
import struct

import pytest
from aioice import stun
from hypothesis import given, settings
from hypothesis import strategies as st

from mediaserver import ice
from tests.support.fuzz import fuzz_examples

LOCAL_UFRAG = "serverufrag"
REMOTE_UFRAG = "clientufrag"
LOCAL_PWD = "serverpasswordserverpwd0"
PEER = ("192.0.2.7", 54321)


def binding_request(
    username: str | None = f"{LOCAL_UFRAG}:{REMOTE_UFRAG}",
    pwd: str | None = LOCAL_PWD,
    use_candidate: bool = True,
    message_class: stun.Class = stun.Class.REQUEST,
) -> bytes:
    """A browser-like connectivity check from the controlling peer."""
    message = stun.Message(stun.Method.BINDING, message_class)
    if username is not None:
        message.attributes["USERNAME"] = username
    message.attributes["PRIORITY"] = 1853824767
    message.attributes["ICE-CONTROLLING"] = 0x1122334455667788
    if use_candidate:
        message.attributes["USE-CANDIDATE"] = None
    if pwd is not None:
        message.add_message_integrity(pwd.encode())  # also adds FINGERPRINT
    else:
        message.add_fingerprint()
    return bytes(message)


def parsed_request(**kwargs: object) -> stun.Message:
    message = ice.parse_request(binding_request(**kwargs))  # type: ignore[arg-type]
    assert message is not None
    return message


# --- credentials -----------------------------------------------------------------------------


def test_new_credentials_lengths_and_alphabet() -> None:
    ufrag, pwd = ice.new_credentials()
    assert len(ufrag) >= 4
    assert len(pwd) >= 22
    assert set(ufrag + pwd) <= set(ice.ALPHABET)
    assert ice.new_credentials() != (ufrag, pwd)


# --- parse_request ---------------------------------------------------------------------------


def test_parse_request_accepts_binding_request() -> None:
    message = ice.parse_request(binding_request())
    assert message is not None
    assert message.message_method == stun.Method.BINDING
    assert message.message_class == stun.Class.REQUEST
    assert message.attributes["USERNAME"] == f"{LOCAL_UFRAG}:{REMOTE_UFRAG}"
    assert message.attributes["PRIORITY"] == 1853824767
    assert "USE-CANDIDATE" in message.attributes
    assert "FINGERPRINT" in message.attributes


def test_username_ufrag_is_the_part_before_the_colon() -> None:
    assert ice.username_ufrag(parsed_request()) == LOCAL_UFRAG
    assert ice.username_ufrag(parsed_request(username="nocolon")) is None
    assert ice.username_ufrag(parsed_request(username=None)) is None


@pytest.mark.parametrize("message_class", [stun.Class.RESPONSE, stun.Class.ERROR,
                                           stun.Class.INDICATION])
def test_parse_request_rejects_other_classes(message_class: stun.Class) -> None:
    assert ice.parse_request(binding_request(message_class=message_class)) is None


def test_parse_request_rejects_other_methods() -> None:
    message = stun.Message(stun.Method.ALLOCATE, stun.Class.REQUEST)
    message.add_message_integrity(LOCAL_PWD.encode())
    assert ice.parse_request(bytes(message)) is None


def test_parse_request_rejects_missing_fingerprint() -> None:
    message = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    message.attributes["USERNAME"] = f"{LOCAL_UFRAG}:{REMOTE_UFRAG}"
    message.attributes["PRIORITY"] = 1
    assert ice.parse_request(bytes(message)) is None


def test_parse_request_rejects_corrupted_fingerprint() -> None:
    data = bytearray(binding_request())
    data[-1] ^= 0x01  # last byte of the FINGERPRINT value
    assert ice.parse_request(bytes(data)) is None


def test_parse_request_rejects_corrupted_body_via_fingerprint() -> None:
    data = bytearray(binding_request())
    data[25] ^= 0x40  # inside the USERNAME value
    assert ice.parse_request(bytes(data)) is None


@pytest.mark.parametrize("length", [0, 1, 19, 20, 28, 40, -8, -1])
def test_parse_request_rejects_truncated_data(length: int) -> None:
    assert ice.parse_request(binding_request()[:length]) is None


def test_parse_request_rejects_random_bytes() -> None:
    for n in (1, 20, 64, 200):
        assert ice.parse_request(os.urandom(n)) is None


def test_parse_request_rejects_rtp_and_dtls_looking_data() -> None:
    assert ice.parse_request(b"\x80\x60" + b"\x00" * 30) is None
    assert ice.parse_request(b"\x16\xfe\xfd" + b"\x00" * 40) is None


def stun_with_attribute(attr_type: int, value: bytes) -> bytes:
    """A Binding request header followed by one raw attribute (length field as given)."""
    body = struct.pack("!HH", attr_type, len(value)) + value + b"\x00" * (-len(value) % 4)
    return struct.pack("!HHI12s", 0x0001, len(body), stun.COOKIE, b"T" * 12) + body


@pytest.mark.parametrize(
    ("attr_type", "value"),
    [
        (0x0024, b"\x00\x01"),  # PRIORITY with 2 bytes instead of 4
        (0x8028, b"\x01\x02\x03"),  # FINGERPRINT with 3 bytes
        (0x802A, b"\x00" * 4),  # ICE-CONTROLLING with 4 bytes instead of 8
        (0x0006, b"\xff\xfe"),  # USERNAME that is not UTF-8
        (0x0020, b"\x00\x09\x00\x00"),  # XOR-MAPPED-ADDRESS of an unknown family
    ],
    ids=["short-priority", "short-fingerprint", "short-ice-controlling", "bad-utf8-username",
         "bad-address-family"],
)
def test_parse_request_returns_none_for_malformed_attributes(attr_type: int, value: bytes) -> None:
    assert ice.parse_request(stun_with_attribute(attr_type, value)) is None


KNOWN_ATTRIBUTE = st.sampled_from([entry[0] for entry in stun.ATTRIBUTES])
RAW_ATTRIBUTE = st.tuples(KNOWN_ATTRIBUTE | st.integers(0, 0xFFFF), st.binary(max_size=24))


@pytest.mark.fuzz
@settings(max_examples=fuzz_examples(300))
@given(st.lists(RAW_ATTRIBUTE, max_size=6))
def test_parse_request_never_raises_on_random_attributes(
    attributes: list[tuple[int, bytes]],
) -> None:
    body = b"".join(
        struct.pack("!HH", attr_type, len(value)) + value + b"\x00" * (-len(value) % 4)
        for attr_type, value in attributes
    )
    data = struct.pack("!HHI12s", 0x0001, len(body), stun.COOKIE, b"R" * 12) + body
    result = ice.parse_request(data)
    assert result is None or "FINGERPRINT" in result.attributes


@pytest.mark.fuzz
@settings(max_examples=fuzz_examples(300))
@given(st.binary(max_size=200))
def test_parse_request_never_raises_on_random_bytes(data: bytes) -> None:
    result = ice.parse_request(data)
    assert result is None or isinstance(result, stun.Message)


# --- check_request ---------------------------------------------------------------------------


def test_check_request_accepts_right_credentials() -> None:
    assert ice.check_request(parsed_request(), LOCAL_UFRAG, REMOTE_UFRAG, LOCAL_PWD)


def test_check_request_accepts_any_remote_ufrag_before_it_is_known() -> None:
    assert ice.check_request(parsed_request(), LOCAL_UFRAG, None, LOCAL_PWD)


def test_check_request_rejects_wrong_password() -> None:
    assert not ice.check_request(parsed_request(), LOCAL_UFRAG, REMOTE_UFRAG, "x" * 24)


def test_check_request_rejects_request_signed_with_other_password() -> None:
    request = parsed_request(pwd="someoneelsespassword0000")
    assert not ice.check_request(request, LOCAL_UFRAG, REMOTE_UFRAG, LOCAL_PWD)


def test_check_request_rejects_wrong_local_ufrag() -> None:
    assert not ice.check_request(parsed_request(), "otherufrag", REMOTE_UFRAG, LOCAL_PWD)


def test_check_request_rejects_wrong_remote_ufrag() -> None:
    assert not ice.check_request(parsed_request(), LOCAL_UFRAG, "otherclient", LOCAL_PWD)


def test_check_request_rejects_swapped_username() -> None:
    request = parsed_request(username=f"{REMOTE_UFRAG}:{LOCAL_UFRAG}")
    assert not ice.check_request(request, LOCAL_UFRAG, REMOTE_UFRAG, LOCAL_PWD)


def test_check_request_rejects_missing_username() -> None:
    assert not ice.check_request(parsed_request(username=None), LOCAL_UFRAG, REMOTE_UFRAG,
                                 LOCAL_PWD)


def test_check_request_rejects_missing_integrity() -> None:
    request = parsed_request(pwd=None)
    assert "MESSAGE-INTEGRITY" not in request.attributes
    assert not ice.check_request(request, LOCAL_UFRAG, REMOTE_UFRAG, LOCAL_PWD)


def test_check_request_rejects_tampered_attribute_with_fixed_fingerprint() -> None:
    # Change PRIORITY after signing and recompute FINGERPRINT: integrity must catch it.
    message = stun.parse_message(binding_request())
    message.attributes["PRIORITY"] = 1
    integrity = message.attributes.pop("MESSAGE-INTEGRITY")
    message.attributes.pop("FINGERPRINT")
    message.attributes["MESSAGE-INTEGRITY"] = integrity
    message.add_fingerprint()
    request = ice.parse_request(bytes(message))
    assert request is not None
    assert not ice.check_request(request, LOCAL_UFRAG, REMOTE_UFRAG, LOCAL_PWD)


# --- responses -------------------------------------------------------------------------------


@pytest.mark.parametrize("addr", [PEER, ("127.0.0.1", 1), ("2001:db8::5", 60000)])
def test_success_response_round_trip(addr: tuple[str, int]) -> None:
    request = parsed_request()
    data = ice.success_response(request, addr, LOCAL_PWD)
    response = stun.parse_message(data)  # also checks FINGERPRINT
    assert response.message_method == stun.Method.BINDING
    assert response.message_class == stun.Class.RESPONSE
    assert response.transaction_id == request.transaction_id
    assert response.attributes["XOR-MAPPED-ADDRESS"] == addr
    assert "FINGERPRINT" in response.attributes
    assert response.check_message_integrity(LOCAL_PWD.encode())
    assert not response.check_message_integrity(b"wrong password")


def test_success_response_is_not_accepted_as_a_request() -> None:
    data = ice.success_response(parsed_request(), PEER, LOCAL_PWD)
    assert ice.parse_request(data) is None


def test_error_response_round_trip() -> None:
    request = parsed_request()
    response = stun.parse_message(ice.error_response(request, 401, "Unauthorized"))
    assert response.message_class == stun.Class.ERROR
    assert response.transaction_id == request.transaction_id
    assert response.attributes["ERROR-CODE"] == (401, "Unauthorized")
    assert "FINGERPRINT" in response.attributes


# --- routable_from ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bind", "peer", "expected"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.53", True),
        ("127.0.0.1", "192.168.1.20", False),
        ("127.0.0.1", "10.0.0.1", False),
        ("127.0.0.1", "2001:db8::1", False),
        ("::1", "::1", True),
        ("::1", "192.168.1.20", False),
        ("0.0.0.0", "192.168.1.20", True),
        ("0.0.0.0", "127.0.0.1", True),
        ("0.0.0.0", "203.0.113.9", True),
        ("::", "2001:db8::1", True),
        ("192.168.1.5", "192.168.1.20", True),
        ("192.168.1.5", "127.0.0.1", True),
    ],
)
def test_routable_from(bind: str, peer: str, expected: bool) -> None:
    assert ice.routable_from(bind, peer) is expected


def test_routable_from_hostnames_are_not_filtered() -> None:
    assert ice.routable_from("localhost", "192.168.1.20")
    assert ice.routable_from("127.0.0.1", "not-an-ip")
