"""What the request handlers share: configuration, store, media control, rooms, sessions."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from mediaserver.api import MediaControl

from .config import ServerConfig
from .participant import Participant
from .recordings import Recordings
from .rooms import RoomRegistry
from .store import Store


@dataclass
class AppState:
    config: ServerConfig
    store: Store
    media: MediaControl
    rooms: RoomRegistry
    recordings: Recordings
    sessions: set[Participant] = field(default_factory=set)
    draining: bool = False  # a shutdown began: no new sessions (app.py)
    handed_over: bool = False  # it told its participants to resume through other nodes


STATE = web.AppKey("state", AppState)
