"""A strict WebVTT reader written from the W3C WebVTT spec (file structure, cue timings) and its
chapter rules (section 3.5: chapter cues do not overlap), not from signaling/chapters.py, so it
checks the chapters file rather than mirrors it."""

from __future__ import annotations

import re
from dataclasses import dataclass

_TIME = r"(?:(\d{2,}):)?([0-5]\d):([0-5]\d)\.(\d{3})"
_TIMING = re.compile(rf"^{_TIME}[ \t]+-->[ \t]+{_TIME}(?:[ \t]+.*)?$")


@dataclass(frozen=True)
class Cue:
    identifier: str
    start: float
    end: float
    text: str


def _seconds(hours: str | None, minutes: str, seconds: str, millis: str) -> float:
    ms = ((int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + int(millis)
    return ms / 1000


def parse_chapters(text: str) -> list[Cue]:
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    blocks = re.split(r"\n{2,}", text.strip("\n"))
    header = blocks[0].split("\n")[0]
    assert header == "WEBVTT" or header.startswith(("WEBVTT ", "WEBVTT\t")), header
    cues: list[Cue] = []
    for block in blocks[1:]:
        lines = block.split("\n")
        identifier = ""
        if "-->" not in lines[0]:
            identifier = lines.pop(0)
        assert lines, f"a cue block without timings: {block!r}"
        m = _TIMING.match(lines[0])
        assert m, f"bad cue timings: {lines[0]!r}"
        start, end = _seconds(*m.groups()[:4]), _seconds(*m.groups()[4:])
        assert end > start, f"a cue must end after it starts: {lines[0]!r}"
        body = "\n".join(lines[1:])
        assert body and "-->" not in body, f"a chapter title is text without '-->': {body!r}"
        cues.append(Cue(identifier, start, end, body))
    for before, after in zip(cues, cues[1:], strict=False):
        assert after.start >= before.end, f"chapter cues overlap: {before} {after}"
    return cues
