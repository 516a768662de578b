"""Who may call what: the role table of docs/protocol.md, checked before every method.

Roles come from the signed token. In a webinar an attendee is receive-only until a host
promotes them to the stage; the stage methods below are what that unlocks.
"""

from __future__ import annotations

from .tokens import ROLES

ALL = frozenset(ROLES)
PARTICIPANTS = frozenset({"host", "presenter", "attendee"})
PUBLISHERS = frozenset({"host", "presenter", "attendee", "service"})
HOST = frozenset({"host"})
MODERATORS = frozenset({"host", "presenter"})

RULES: dict[str, frozenset[str]] = {
    "ping": ALL, "probe": ALL, "probeDone": ALL, "join": ALL, "leave": ALL,
    "subscriberAnswer": ALL, "requestKeyframe": ALL, "chat": ALL, "getNotes": ALL,
    "publish": PUBLISHERS, "unpublish": PUBLISHERS, "mute": PUBLISHERS,
    "raiseHand": PARTICIPANTS, "setNotes": PARTICIPANTS,
    "muteParticipant": HOST, "removeParticipant": HOST, "promote": HOST, "demote": HOST,
    "qaAsk": PARTICIPANTS, "qaUpvote": PARTICIPANTS, "qaList": ALL,
    "qaAnswer": MODERATORS, "qaDismiss": MODERATORS,
    "pollCreate": MODERATORS, "pollOpen": MODERATORS, "pollClose": MODERATORS,
    "pollVote": PARTICIPANTS, "pollList": ALL,
    "setChat": HOST, "privateMessage": ALL, "reaction": PARTICIPANTS,
    "breakoutCreate": HOST, "breakoutAssign": HOST, "breakoutAuto": HOST,
    "breakoutAllowChoose": HOST, "breakoutOpen": HOST, "breakoutBroadcast": HOST,
    "breakoutTimer": HOST, "breakoutClose": HOST, "breakoutVisit": HOST,
    "breakoutChoose": PARTICIPANTS,
    "lobbyList": HOST, "admit": HOST, "refuse": HOST, "setLive": HOST,
    "recordStart": HOST, "recordStop": HOST,
}
# In a webinar, attendees need the stage for these.
STAGE_METHODS = frozenset({"publish", "unpublish", "mute"})


def allowed(method: str, role: str, room_type: str = "meeting", on_stage: bool = False) -> bool:
    roles = RULES.get(method)
    if roles is None or role not in roles:
        return False
    if method in STAGE_METHODS and room_type == "webinar" and role == "attendee":
        return on_stage
    return True
