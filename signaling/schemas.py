"""What the signalling border accepts: a params model per WebSocket method, a body model per
HTTP endpoint, each checked once before any handler runs (docs/protocol.md, "Validation").

Pydantic v2 in strict mode: no coercion ("1" is not 1, 1.0 is not 1, 1 is not true), every
fault of a message reported at once with its field, and limits declared next to the field they
bound. Handlers receive the model instance and keep only room logic (not_found, conflict, ...).

Unknown extra fields are ignored, so an older or newer client keeps working. Ids are kept within
0..2^53-1 (what JavaScript numbers hold exactly), so nothing past 64 bits reaches a store. Text
refuses lone surrogates (they cannot be stored as UTF-8) and control characters (tab, newline
and carriage return are allowed in multi-line texts only).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from mediaserver.api import MAX_TILE, SOURCES

from .errors import RequestError
from .recordings import LAYOUTS, MODES
from .tokens import ROLES

MAX_ID = 2**53 - 1
MAX_REF = 128  # a participant, track or group id is far shorter; longer cannot be one
MAX_CHAT = 2000
MAX_NOTES = 20_000
MAX_QUESTION = 500
MAX_POLL_TEXT = 200
MAX_OPTIONS = 10
MAX_PRIVATE = 2000
MAX_BROADCAST = 500
MAX_GROUPS = 20
MAX_GROUP_NAME = 60
MAX_TIMER = 4 * 3600
MAX_VIEW = MAX_TILE  # pixels of a video tile per side, as the media plane takes them
MAX_TRACK_NAME = 60
MAX_NAME = 100
MAX_IDENTITY = 128
REACTIONS = ("👍", "👏", "❤️", "😂", "😮", "🎉")
ROOM_TYPES = ("meeting", "webinar")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ROOM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise PydanticCustomError("control_character", "must not contain control characters")
    return value


def _no_control_in_text(value: str) -> str:
    if _CONTROL_IN_TEXT.search(value):
        raise PydanticCustomError("control_character",
                                  "must not contain control characters other than tab and "
                                  "line breaks")
    return value


def _room_name(value: str) -> str:
    if not _ROOM_NAME.fullmatch(value):
        raise PydanticCustomError("room_name", "must be 1 to 64 letters, digits, '-', '_' or "
                                  "'.', starting with a letter or digit")
    return value


def line(limit: int, min_length: int = 1) -> Any:
    """One line of text (a name, a title): trimmed, no control characters."""
    return Annotated[str, StringConstraints(strip_whitespace=True, min_length=min_length,
                                            max_length=limit), AfterValidator(_no_control)]


def text(limit: int, min_length: int = 1, strip: bool = True) -> Any:
    """Text that may span lines (chat, questions, notes)."""
    return Annotated[str, StringConstraints(strip_whitespace=strip, min_length=min_length,
                                            max_length=limit),
                     AfterValidator(_no_control_in_text)]


Id = Annotated[int, Field(ge=0, le=MAX_ID)]
Ref = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REF),
                AfterValidator(_no_control)]
Sdp = str  # parsed and checked by sdp.py; the message size bounds it
RoomName = Annotated[str, AfterValidator(_room_name)]


class Params(BaseModel):
    """Base of every params and body model: strict types, camelCase names on the wire,
    unknown fields ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", alias_generator=to_camel,
                              frozen=True)


class Empty(Params):
    pass


# ---- core methods (participant.py, media_session.py) --------------------------------------

class Join(Params):
    since_chat_id: Id | None = None
    keep_media: bool = False  # coming back on a new socket with the same peer connections


class Publish(Params):
    sdp: Sdp
    names: Annotated[dict[Ref, line(MAX_TRACK_NAME)], Field(max_length=64)] | None = None
    sources: Annotated[dict[Ref, Literal[SOURCES]],  # type: ignore[valid-type]
                       Field(max_length=64)] | None = None


class TrackRef(Params):
    track_id: Ref


class Mute(TrackRef):
    muted: bool


class SetTrackView(TrackRef):
    """How a remote video is shown: hidden tiles get nothing; the size caps its layer."""

    visible: bool
    width: Annotated[int, Field(ge=0, le=MAX_VIEW)] = 0  # device pixels; 0: unknown
    height: Annotated[int, Field(ge=0, le=MAX_VIEW)] = 0


class SetVisibility(Params):
    """The page is visible or hidden (analytics: visibleSeconds; events.py)."""

    visible: bool


class SubscriberAnswer(Params):
    sdp: Sdp
    offer_id: Id | None = None


class Chat(Params):
    text: text(MAX_CHAT)


class ProbeRef(Params):
    """A probe's name: probes of different names run side by side (one per path tested)."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,16}$")] = ""


class Probe(ProbeRef):
    sdp: Sdp


# ---- room features (features.py) -----------------------------------------------------------

class ParticipantRef(Params):
    participant_id: Ref


class RaiseHand(Params):
    raised: bool


class CatchUp(Params):
    """Rewound to the live HLS of the stage (true) or back on the live stage (false)."""

    rewound: bool


class SetNotes(Params):
    text: text(MAX_NOTES, min_length=0, strip=False)
    base_version: Id


class MuteParticipant(ParticipantRef):
    kind: Literal["audio", "video"] = "audio"


class SetLive(Params):
    live: bool


class RecordingOptions(Params):
    """POST /api/rooms/{room}/recordings (every field optional)."""

    mode: Literal[MODES] = "composite"  # type: ignore[valid-type]
    layout: Literal[LAYOUTS] = "grid"  # type: ignore[valid-type]
    low_latency: bool = False


class RecordStart(RecordingOptions):
    """recordStart: the same, the mode named."""

    mode: Literal[MODES]  # type: ignore[valid-type]


# ---- interaction (interaction.py) ----------------------------------------------------------

class Question(Params):
    text: text(MAX_QUESTION)


class QuestionRef(Params):
    question_id: Id


class PollCreate(Params):
    question: line(MAX_POLL_TEXT)
    options: Annotated[list[line(MAX_POLL_TEXT)], Field(min_length=2, max_length=MAX_OPTIONS)]


class PollRef(Params):
    poll_id: Id


class PollVote(PollRef):
    option: Annotated[int, Field(ge=0, lt=MAX_OPTIONS)]


class SetChat(Params):
    enabled: bool


class PrivateMessage(ParticipantRef):
    text: text(MAX_PRIVATE)


class Reaction(Params):
    emoji: Literal[REACTIONS]  # type: ignore[valid-type]


# ---- breakout groups (breakouts.py) --------------------------------------------------------

class BreakoutCreate(Params):
    """`names`, or `count` groups named "Group 1".. when names are not given."""

    count: Annotated[int, Field(ge=1, le=MAX_GROUPS)] | None = None
    names: Annotated[list[line(MAX_GROUP_NAME)],
                     Field(min_length=1, max_length=MAX_GROUPS)] | None = None

    @model_validator(mode="after")
    def _count_or_names(self) -> BreakoutCreate:
        if self.names is None and self.count is None:
            raise PydanticCustomError("count_or_names", "count or names is required")
        return self

    def group_names(self) -> list[str]:
        if self.names is not None:
            return list(self.names)
        return [f"Group {i + 1}" for i in range(self.count or 0)]


class BreakoutAssign(ParticipantRef):
    group_id: Ref | None = None  # null: back to the main room


class GroupChoice(Params):
    group_id: Ref


class GroupVisit(Params):
    group_id: Ref | None = None  # null: the main room


class AllowChoose(Params):
    allowed: bool


class Broadcast(Params):
    text: text(MAX_BROADCAST)


class Timer(Params):
    seconds: Annotated[int, Field(ge=0, le=MAX_TIMER)]


# The params model of every WebSocket method (each has its handler in methods.METHODS).
PARAMS: dict[str, type[Params]] = {
    "ping": Empty, "join": Join, "publish": Publish, "unpublish": TrackRef, "mute": Mute,
    "subscriberAnswer": SubscriberAnswer, "restartIce": Empty, "requestKeyframe": TrackRef,
    "chat": Chat,
    "setTrackView": SetTrackView, "setVisibility": SetVisibility,
    "leave": Empty, "probe": Probe, "probeDone": ProbeRef, "probeInfo": Empty,
    "recordStart": RecordStart, "recordStop": Empty, "setLive": SetLive, "lobbyList": Empty,
    "admit": ParticipantRef, "refuse": ParticipantRef, "raiseHand": RaiseHand,
    "catchUp": CatchUp,
    "getNotes": Empty, "setNotes": SetNotes, "muteParticipant": MuteParticipant,
    "removeParticipant": ParticipantRef, "promote": ParticipantRef, "demote": ParticipantRef,
    "qaAsk": Question, "qaUpvote": QuestionRef, "qaAnswer": QuestionRef,
    "qaDismiss": QuestionRef, "qaList": Empty, "pollCreate": PollCreate, "pollOpen": PollRef,
    "pollClose": PollRef, "pollVote": PollVote, "pollList": Empty, "setChat": SetChat,
    "privateMessage": PrivateMessage, "reaction": Reaction,
    "breakoutCreate": BreakoutCreate, "breakoutAssign": BreakoutAssign,
    "breakoutAuto": Empty, "breakoutAllowChoose": AllowChoose,
    "breakoutChoose": GroupChoice, "breakoutOpen": Empty, "breakoutBroadcast": Broadcast,
    "breakoutTimer": Timer, "breakoutClose": Empty, "breakoutVisit": GroupVisit,
}


# ---- HTTP bodies (http_api.py) -------------------------------------------------------------

class CreateRoom(Params):
    name: RoomName | None = None  # a random name when missing
    type: Literal[ROOM_TYPES] = "meeting"  # type: ignore[valid-type]
    lobby: bool = False
    backstage: bool = False
    auto_record: bool = False


class TokenRequest(Params):
    identity: line(MAX_IDENTITY) | None = None  # a random one when missing
    name: line(MAX_NAME) | None = None  # the identity when missing
    role: Literal[ROLES] = "attendee"  # type: ignore[valid-type]
    ttl: Annotated[int, Field(ge=1, le=7 * 86400)] = 3600


class InviteRequest(Params):
    role: Literal[ROLES] = "attendee"  # type: ignore[valid-type]
    ttl: Annotated[int, Field(ge=1, le=30 * 86400)] = 7 * 86400


class DevToken(Params):
    room: RoomName
    name: line(MAX_NAME, min_length=0) = ""  # "guest" when empty
    type: Literal[ROOM_TYPES] = "meeting"  # type: ignore[valid-type]
    identity: line(MAX_IDENTITY) | None = None  # a random one when missing


# ---- turning validation errors into bad_request ------------------------------------------------

def _where(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (key)"
        else:
            out += f".{part}"
    return out


_PROBLEMS = {
    "missing": "is required", "string_type": "must be a string",
    "string_unicode": "must be valid Unicode text", "int_type": "must be an integer",
    "bool_type": "must be true or false", "dict_type": "must be an object",
    "model_type": "must be an object", "list_type": "must be a list",
    "greater_than_equal": "must be at least {ge}", "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "string_too_short": "must be at least {min_length} characters",
    "string_too_long": "must be at most {max_length} characters",
    "too_short": "must have at least {min_length} items",
    "too_long": "must have at most {max_length} items",
    "literal_error": "must be one of {expected}",
}


def _problem(error: Any) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind in _PROBLEMS:
        return _PROBLEMS[kind].format(**ctx)
    message = str(error["msg"])  # our own checks (control characters, room names) say it
    return message[:1].lower() + message[1:]


def validate(model: type[Params], data: dict[str, Any], where: str = "params") -> Any:
    """`data` as an instance of `model`, or RequestError("bad_request") naming every field at
    fault: message "params.trackId: must be a string; ...", data {"fields": [...]}."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        faults: dict[str, str] = {}
        for error in exc.errors(include_url=False, include_input=False):
            faults.setdefault(_where(where, error["loc"]), _problem(error))
        message = "; ".join(f"{field}: {problem}" for field, problem in faults.items())
        raise RequestError("bad_request", message, {"fields": list(faults)}) from None


def params(method: str, data: dict[str, Any]) -> Params:
    """The validated params of a WebSocket method (the method is known)."""
    return validate(PARAMS[method], data)
