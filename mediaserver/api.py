"""What the rest of the server may use of the media plane (DESIGN.md section 2).

`signaling` imports from `mediaserver` only this module: the control API (control.py), the
plain data it exchanges (params.py), its JSON encoding (wire.py), the header extensions SDP
negotiates, and the helpers that run child processes. `open_media` builds the media plane
the configuration asks for: one worker in this process, or a pool of worker processes.
"""

from __future__ import annotations

from .config import MediaConfig
from .control import MediaControl
from .lifetime import end_process, stopping_within
from .params import (
    CLOSED_BY_SIGNALLING,
    CONSENT_EXPIRED,
    GRAMMAR_NAMES,
    ICE_CHARS,
    MAX_CHANNELS,
    MAX_CLOCK_RATE,
    MAX_CNAME,
    MAX_CODEC_NAME,
    MAX_ENCODINGS,
    MAX_EXTENSION_ID,
    MAX_FMTP,
    MAX_MID,
    MAX_PAYLOAD_TYPE,
    MAX_TILE,
    MAX_U32,
    MAX_URI,
    PRINTABLE,
    SOURCES,
    TOKEN,
    VISIBLE,
    Codec,
    ConsumerDump,
    ConsumerInfo,
    ConsumerParams,
    Encoding,
    EncodingDump,
    IceCandidate,
    MediaDump,
    MediaError,
    ParamsError,
    PipeInfo,
    ProducerDump,
    ProducerParams,
    RemoteParams,
    TransportDump,
    TransportInfo,
    check_int,
    check_text,
)
from .rpc import RpcClient, RpcError
from .rtp.packet import (
    EXT_ABS_SEND_TIME,
    EXT_AUDIO_LEVEL,
    EXT_MID,
    EXT_REPAIRED_RID,
    EXT_RID,
    EXT_TRANSPORT_CC,
)
from .wire import decode, encode

__all__ = [
    "CLOSED_BY_SIGNALLING", "CONSENT_EXPIRED", "GRAMMAR_NAMES", "ICE_CHARS", "MAX_CHANNELS",
    "MAX_CLOCK_RATE", "MAX_CNAME", "MAX_CODEC_NAME", "MAX_ENCODINGS",
    "MAX_EXTENSION_ID", "MAX_FMTP", "MAX_MID", "MAX_TILE", "SOURCES",
    "MAX_PAYLOAD_TYPE", "MAX_U32", "MAX_URI", "PRINTABLE", "TOKEN", "VISIBLE",
    "EXT_ABS_SEND_TIME", "EXT_AUDIO_LEVEL", "EXT_MID", "EXT_REPAIRED_RID", "EXT_RID",
    "EXT_TRANSPORT_CC",
    "Codec", "ConsumerDump", "ConsumerInfo", "ConsumerParams", "Encoding", "EncodingDump",
    "IceCandidate",
    "MediaConfig",
    "MediaControl", "MediaDump", "MediaError", "ParamsError", "PipeInfo", "ProducerDump",
    "ProducerParams", "RemoteParams", "RpcClient", "RpcError", "TransportDump",
    "TransportInfo", "check_int", "check_text", "decode", "encode", "end_process",
    "open_media", "stopping_within",
]


def open_media(config: MediaConfig, workers: int = 0, node: str = "") -> MediaControl:
    """0 workers: the embedded default, one Worker in this process's event loop. Otherwise a
    pool of that many worker processes; `node` makes their ids unique among signalling
    nodes sharing a Redis. Call `start()` before using it and `stop()` at the end."""
    if workers:
        from .pool import WorkerPool

        return WorkerPool(config, workers, node=node)
    from .local_control import LocalMediaControl
    from .worker import Worker

    return LocalMediaControl(Worker(config))
