"""Access tokens: HS256 JWTs (RFC 7515, RFC 7519) minted and verified by signaling.tokens
(PyJWT underneath), checked here against tokens built independently of it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.tokens import ROLES, Grant, TokenError, mint, verify
from tests.support.fuzz import fuzz_examples

# The test secrets are short on purpose (RFC 7515 examples); PyJWT warns about it each time.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

SECRET = "s3cret-signing-key"
NOW = 1_700_000_000


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, header: dict[str, object] | bytes, claims: dict[str, object] | bytes) -> str:
    """A compact JWS built independently of the module under test."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    c = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing_input = f"{b64url(h)}.{b64url(c)}"
    sig = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def claims(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {"room": "standup", "sub": "alice", "name": "Alice",
                               "role": "presenter", "iat": NOW, "exp": NOW + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def code_of(secret: str, token: str | None, now: float = NOW) -> str:
    with pytest.raises(TokenError) as info:
        verify(secret, token, now=now)
    return info.value.code


# --- round trip ------------------------------------------------------------------------------


def test_mint_verify_round_trip() -> None:
    token = mint(SECRET, "standup", "alice", "Alice", "host", ttl=600, now=NOW)
    grant = verify(SECRET, token, now=NOW + 1)
    assert grant == Grant(room="standup", identity="alice", name="Alice", role="host",
                          expires=NOW + 600)


@pytest.mark.parametrize("role", ROLES)
def test_every_role_round_trips(role: str) -> None:
    assert verify(SECRET, mint(SECRET, "r", "id", "n", role, now=NOW), now=NOW).role == role


@given(
    room=st.text(min_size=1, max_size=30),
    identity=st.text(min_size=1, max_size=30),
    name=st.text(max_size=150),
    role=st.sampled_from(ROLES),
    ttl=st.integers(1, 10**7),
)
def test_round_trip_any_text(room: str, identity: str, name: str, role: str, ttl: int) -> None:
    grant = verify(SECRET, mint(SECRET, room, identity, name, role, ttl=ttl, now=NOW), now=NOW)
    assert (grant.room, grant.identity, grant.role, grant.expires) == (room, identity, role,
                                                                        NOW + ttl)
    assert grant.name == name[:100]


def test_minted_token_is_a_standard_hs256_jwt() -> None:
    token = mint(SECRET, "standup", "alice", "Alice", "attendee", ttl=60, now=NOW)
    header_b64, claims_b64, sig_b64 = token.split(".")
    assert "=" not in token
    assert json.loads(unb64url(header_b64)) == {"alg": "HS256", "typ": "JWT"}
    body = json.loads(unb64url(claims_b64))
    assert body == {"room": "standup", "sub": "alice", "name": "Alice", "role": "attendee",
                    "iat": NOW, "exp": NOW + 60}
    expected = hmac.new(SECRET.encode(), f"{header_b64}.{claims_b64}".encode(),
                        hashlib.sha256).digest()
    assert unb64url(sig_b64) == expected


def test_rfc7515_style_known_vector() -> None:
    # Fixed header and payload bytes: the signature is HMAC-SHA256 over "b64(h).b64(p)".
    header = b'{"alg":"HS256","typ":"JWT"}'
    payload = (b'{"room":"r1","sub":"bob","name":"Bob","role":"attendee",'
               b'"iat":1700000000,"exp":1700003600}')
    h, p = b64url(header), b64url(payload)
    assert h == "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    signature = hmac.new(b"key", f"{h}.{p}".encode(), hashlib.sha256).digest()
    token = f"{h}.{p}.{b64url(signature)}"
    assert mint("key", "r1", "bob", "Bob", "attendee", ttl=3600, now=1_700_000_000) == token
    assert verify("key", token, now=1_700_000_001) == Grant("r1", "bob", "Bob", "attendee",
                                                            1_700_003_600)


def test_externally_signed_token_verifies() -> None:
    token = sign(SECRET, {"typ": "JWT", "alg": "HS256"}, claims())
    grant = verify(SECRET, token, now=NOW)
    assert (grant.room, grant.identity, grant.name, grant.role) == ("standup", "alice", "Alice",
                                                                    "presenter")


def test_name_defaults_to_identity_and_is_truncated() -> None:
    unnamed = sign(SECRET, {"alg": "HS256"}, claims(name=None))
    assert verify(SECRET, unnamed, now=NOW).name == "alice"
    long_name = "x" * 500
    assert verify(SECRET, sign(SECRET, {"alg": "HS256"}, claims(name=long_name)),
                  now=NOW).name == "x" * 100


# --- expiry ----------------------------------------------------------------------------------


def test_expired_token() -> None:
    token = mint(SECRET, "r", "id", "n", "attendee", ttl=60, now=NOW)
    assert verify(SECRET, token, now=NOW + 59).expires == NOW + 60
    assert code_of(SECRET, token, now=NOW + 60) == "token_expired"
    assert code_of(SECRET, token, now=NOW + 10_000) == "token_expired"


def test_zero_ttl_token_is_already_expired() -> None:
    assert code_of(SECRET, mint(SECRET, "r", "id", "n", "host", ttl=0, now=NOW)) == "token_expired"


def test_expired_check_uses_wall_clock_by_default() -> None:
    token = mint(SECRET, "r", "id", "n", "host", ttl=60, now=NOW)  # expired in 2023
    with pytest.raises(TokenError) as info:
        verify(SECRET, token)
    assert info.value.code == "token_expired"
    fresh = mint(SECRET, "r", "id", "n", "host", ttl=60)
    assert verify(SECRET, fresh).identity == "id"


@pytest.mark.parametrize("exp", [None, "1800000000", 1.8e9, [1], {"t": 1}])
def test_missing_or_non_integer_expiry_is_invalid(exp: object) -> None:
    token = sign(SECRET, {"alg": "HS256"}, claims(exp=exp))
    assert code_of(SECRET, token) == "token_invalid"


# --- forgery ---------------------------------------------------------------------------------


def test_token_signed_with_other_secret_is_invalid() -> None:
    token = mint("another-secret", "r", "id", "n", "host", now=NOW)
    assert code_of(SECRET, token) == "token_invalid"


def test_changed_payload_with_original_signature_is_invalid() -> None:
    token = mint(SECRET, "r", "mallory", "Mallory", "attendee", now=NOW)
    header_b64, _, sig_b64 = token.split(".")
    elevated = b64url(json.dumps(claims(sub="mallory", role="host")).encode())
    assert code_of(SECRET, f"{header_b64}.{elevated}.{sig_b64}") == "token_invalid"


def test_changed_header_with_original_signature_is_invalid() -> None:
    token = mint(SECRET, "r", "id", "n", "host", now=NOW)
    _, claims_b64, sig_b64 = token.split(".")
    header = b64url(b'{"alg":"HS256","typ":"JWT","kid":"x"}')
    assert code_of(SECRET, f"{header}.{claims_b64}.{sig_b64}") == "token_invalid"


def test_truncated_signature_is_invalid() -> None:
    token = mint(SECRET, "r", "id", "n", "host", now=NOW)
    assert code_of(SECRET, token[:-4]) == "token_invalid"


def test_alg_none_token_is_invalid() -> None:
    header = b64url(b'{"alg":"none","typ":"JWT"}')
    unsigned = f"{header}.{b64url(json.dumps(claims()).encode())}."
    assert code_of(SECRET, unsigned) == "token_invalid"


def test_alg_none_with_valid_hmac_is_invalid() -> None:
    # Even a correct HMAC does not make a token acceptable when the header says "none".
    assert code_of(SECRET, sign(SECRET, {"alg": "none"}, claims())) == "token_invalid"


@pytest.mark.parametrize("alg", ["HS512", "RS256", "hs256", "", None])
def test_other_algorithms_are_invalid(alg: object) -> None:
    assert code_of(SECRET, sign(SECRET, {"alg": alg, "typ": "JWT"}, claims())) == "token_invalid"


def test_header_that_is_not_an_object_is_invalid() -> None:
    assert code_of(SECRET, sign(SECRET, b'["HS256"]', claims())) == "token_invalid"


# --- malformed -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b",
        "a.b.c.d",
        "..",
        "a..c",
        "!!!.@@@.###",
        "eyJhbGciOiJIUzI1NiJ9.%%%.abc",
        "e.e.e",
        "\u00e9\u00e9.\u00e9\u00e9.\u00e9\u00e9",
        "x" * 5000,
    ],
)
def test_malformed_tokens_are_invalid(token: str) -> None:
    assert code_of(SECRET, token) == "token_invalid"


def test_two_parts_of_a_valid_token_are_invalid() -> None:
    token = mint(SECRET, "r", "id", "n", "host", now=NOW)
    assert code_of(SECRET, token.rsplit(".", 1)[0]) == "token_invalid"


def test_non_json_payload_with_valid_signature_is_invalid() -> None:
    assert code_of(SECRET, sign(SECRET, {"alg": "HS256"}, b"not json")) == "token_invalid"
    assert code_of(SECRET, sign(SECRET, {"alg": "HS256"}, b"\xff\xfe")) == "token_invalid"
    assert code_of(SECRET, sign(SECRET, {"alg": "HS256"}, b"[1, 2]")) == "token_invalid"


@given(st.text(max_size=300))
def test_random_strings_never_verify(token: str) -> None:
    with pytest.raises(TokenError) as info:
        verify(SECRET, token, now=NOW)
    assert info.value.code in ("token_invalid", "token_missing")


@pytest.mark.parametrize("token", [None, ""])
def test_missing_token(token: str | None) -> None:
    assert code_of(SECRET, token) == "token_missing"


# --- claims ----------------------------------------------------------------------------------


def test_unknown_role_rejected_at_mint() -> None:
    with pytest.raises(ValueError):
        mint(SECRET, "r", "id", "n", "admin", now=NOW)


@pytest.mark.parametrize(
    "overrides",
    [
        {"room": None},
        {"room": 42},
        {"sub": None},
        {"sub": ["alice"]},
        {"role": None},
        {"role": "admin"},
        {"role": ["host"]},
    ],
    ids=["no-room", "int-room", "no-sub", "list-sub", "no-role", "unknown-role", "list-role"],
)
def test_claims_lacking_room_identity_or_role_are_invalid(overrides: dict[str, object]) -> None:
    token = sign(SECRET, {"alg": "HS256", "typ": "JWT"}, claims(**overrides))
    assert code_of(SECRET, token) == "token_invalid"


def test_token_error_carries_code_and_message() -> None:
    error = TokenError("token_invalid", "bad token signature")
    assert error.code == "token_invalid"
    assert str(error) == "bad token signature"


# --- hostile tokens (PyJWT underneath; header read before the signature) -----------------------


def test_deeply_nested_header_is_invalid_without_recursion() -> None:
    for depth in (33, 1000, 3000):
        header = b'{"alg":"HS256","x":' + b"[" * depth + b"]" * depth + b"}"
        token = sign(SECRET, header, claims())
        assert code_of(SECRET, token) == "token_invalid"


def test_oversized_token_is_invalid() -> None:
    token = sign(SECRET, {"alg": "HS256"}, claims(name="x" * 10_000))
    assert code_of(SECRET, token) == "token_invalid"


@pytest.mark.parametrize("overrides", [{"exp": 10**30}, {"exp": True}, {"iat": "now"},
                                       {"inv": "yes"}, {"name": 5}, {"room": "\ud800"}])
def test_claims_of_odd_types_never_raise_anything_else(overrides: dict[str, object]) -> None:
    token = sign(SECRET, {"alg": "HS256"}, claims(**overrides))
    try:
        verify(SECRET, token, now=NOW)
    except TokenError as exc:
        assert exc.code == "token_invalid"


@st.composite
def mutated_token(draw: st.DrawFn) -> str:
    """A valid token with parts swapped, cut, re-encoded or replaced by hostile JSON."""
    token = mint(SECRET, "r", "id", "n", draw(st.sampled_from(ROLES)), now=NOW)
    header, payload, signature = token.split(".")
    how = draw(st.sampled_from(["header", "payload", "chars", "parts", "cut"]))
    junk = st.one_of(
        st.builds(lambda d: b'{"alg":"HS256","a":' + b"[" * d + b"]" * d + b"}",
                  st.integers(0, 3000)),
        st.sampled_from([b'{"alg":"none"}', b'{"alg":"HS512"}', b'{"alg":null}', b"[]",
                         b'{"alg":"HS256","b64":false}', b'{"alg":"HS256","crit":["b64"]}',
                         b'{"alg":"HS256","kid":"../../x"}', b"\xff", b"null", b'"HS256"',
                         b'{"alg":["HS256"]}', b'{"alg":"HS256"}' + b" " * 5000]),
        st.binary(max_size=40),
    )
    if how == "header":
        header = b64url(draw(junk))
    elif how == "payload":
        payload = b64url(draw(junk))
    elif how == "chars":
        chars = list(f"{header}.{payload}.{signature}")
        for _ in range(draw(st.integers(1, 5))):
            at = draw(st.integers(0, len(chars) - 1))
            chars[at] = draw(st.sampled_from(list("A-_.=+/\x00é") + ["\ud800"]))
        return "".join(chars)
    elif how == "parts":
        parts = [header, payload, signature]
        return ".".join(draw(st.lists(st.sampled_from(parts) | st.text(max_size=10),
                                      max_size=6)))
    else:
        return token[:draw(st.integers(0, len(token)))]
    return f"{header}.{payload}.{signature}"


@pytest.mark.fuzz
@settings(max_examples=fuzz_examples(300))
@given(st.one_of(mutated_token(), st.text(max_size=300), st.text(st.sampled_from(
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.-_="), max_size=300)))
def test_random_and_mutated_tokens_raise_only_token_errors(token: str) -> None:
    try:
        grant = verify(SECRET, token, now=NOW)
    except TokenError as exc:
        assert exc.code in ("token_invalid", "token_missing", "token_expired")
    else:
        assert grant.role in ROLES  # a mutation that left the token valid
