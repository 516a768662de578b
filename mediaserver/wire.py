"""The control API's values as JSON: dataclasses of `params` to dicts and back.

Used by the RPC between the signalling process and media worker processes; kept apart so both
ends agree on one encoding.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .params import (
    Codec,
    ConsumerInfo,
    ConsumerParams,
    IceCandidate,
    ProducerParams,
    RemoteParams,
    TransportInfo,
)


def encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


def codec(d: dict[str, Any]) -> Codec:
    return Codec(**d)


def transport_info(d: dict[str, Any]) -> TransportInfo:
    return TransportInfo(d["id"], d["ice_ufrag"], d["ice_pwd"], d["fingerprint"],
                         [IceCandidate(**c) for c in d["candidates"]])


def remote_params(d: dict[str, Any]) -> RemoteParams:
    return RemoteParams(d["ice_ufrag"], d["ice_pwd"],
                        [(a, v) for a, v in d["fingerprints"]], d["dtls_role"])


def producer_params(d: dict[str, Any]) -> ProducerParams:
    return ProducerParams(**{**d, "codec": codec(d["codec"])})


def consumer_params(d: dict[str, Any]) -> ConsumerParams:
    return ConsumerParams(**{**d, "codec": codec(d["codec"])})


def consumer_info(d: dict[str, Any]) -> ConsumerInfo:
    return ConsumerInfo(**d)
