"""A doctor's address changes mid-call (issue "Every firewall", network change), in Chromium.

The doctor's page runs in a NetLab namespace (tests/support/netlab.py), the rep's on a clean
link; both publish Chromium's fake camera and microphone and decode each other. Mid-call the
doctor's interface loses its address and gets another one of the same network (a new lease
after a move from one access point to another): every path of hers, both media connections
and the WebSocket, is bound to the old address and dies with it. The web client
(web_client/js/netchange.js) finds its connections silent and its socket not answering, opens
a new socket, resumes the same participant with its connections kept (`join` with keepMedia),
and restarts ICE on both connections (docs/protocol.md, "Network change").

Checked: both sides decode each other's video and receive sound again, over the new address;
the doctor keeps her participant id and never rejoined (the page's join count stays 1, a
resume, the recovery's steps in order); a third participant (an aiortc client that only
listens to the room) sees no participantLeft and no trackUnpublished. The gap from the address
change to the first frames decoded again on each side is printed, with every later freeze
and the page's recovery steps: the issue asks for 3 s; measured here (load average 6-15) the
video froze 2.0-2.8 s, close enough to 3 s that a bound on it would fail on a busier machine,
so none is asserted (the wait for the media to come back is bounded, as every wait is).
The fallback, when her connections expired before she came back, is the second test.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediaserver.api import CONSENT_EXPIRED
from tests.support.browser import (
    SELECTED_PAIR,
    WAIT_MS,
    lab_browsers,
    wait_decoding,
    wait_joined,
    watch_stats,
)
from tests.support.client import Client
from tests.support.netlab import NetLab

BACK_FRAMES = 60  # 2 s of video past the change: more than any jitter buffer holds
WATCH_S = 12.0  # freezes are watched for this long after the change
FREEZE_S = 0.5
WAIT_S = WAIT_MS / 1000
# the doctor's page's recovery (window.__meeting.network), in this order
RECOVERY = ["recovering", "resumed", "ICE restarted"]


async def decoded(page) -> dict:
    return await page.evaluate("() => window.__inbound")


async def watch_freezes(pages: dict, base: dict, changed: float) -> dict[str, list]:
    """Each page's freezes (gaps over FREEZE_S between new decoded frames) from the change
    until WATCH_S after it and BACK_FRAMES frames past `base`: [(start, length)], start in
    s after the change. Frames already on their way are decoded after the change, so the
    first freeze starts a little after it."""
    increases: dict[str, list[float]] = {name: [changed] for name in pages}
    last = {name: base[name]["framesDecoded"] for name in pages}
    done: set[str] = set()
    while len(done) < len(pages) or time.monotonic() < changed + WATCH_S:
        assert time.monotonic() < changed + WAIT_S, f"media did not resume: {last} {base}"
        for name, page in pages.items():
            frames = (await decoded(page))["framesDecoded"]
            if frames > last[name]:
                increases[name].append(time.monotonic())
                last[name] = frames
            if frames >= base[name]["framesDecoded"] + BACK_FRAMES:
                done.add(name)
        await page.wait_for_timeout(50)  # getStats (watch_stats, every 200 ms) is polled
    return {name: [(a - changed, b - a) for a, b in zip(times, times[1:], strict=False)
                   if b - a > FREEZE_S] for name, times in increases.items()}


def change_address(lab: NetLab) -> str:
    """The doctor's interface loses its address and gets a new one on the same network."""
    dev = f"{lab.name}c0"
    new_ip = lab.client_ip.rsplit(".", 1)[0] + ".3"
    # Old first: a second address of the same /24 would be a secondary one, removed with
    # the primary.
    for args in (("del", f"{lab.client_ip}/24"), ("add", f"{new_ip}/24")):
        subprocess.run(["ip", "-n", lab.client_ns, "addr", *args, "dev", dev], check=True,
                       capture_output=True)
    return new_ip


@dataclass
class Call:
    lab: NetLab
    server: Any
    observer: Client  # an aiortc client in the room that only listens to its events
    rep: Any
    doctor: Any
    errors: list[str]  # the doctor's page errors
    doctor_id: str


@asynccontextmanager
async def call_in_lab(tmp_path: Path, **server_options: Any) -> AsyncIterator[Call]:
    """The rep (clean link) and the doctor (NetLab) in a call, decoding each other."""
    with NetLab() as lab:
        async with lab_browsers(lab, tmp_path, **server_options) as (server, here, there):
            await server.create_room("ward")
            observer = Client(server.base_url, server.token("ward", "observer"))
            try:
                await observer.connect()
                await observer.request("join")  # events only: it answers no offer
                rep = await (await here.new_context()).new_page()
                await rep.goto(f"{server.base_url}/r/ward?name=Rep&autojoin=1")
                await wait_joined(rep, WAIT_MS, reloads=1)
                await watch_stats(rep)
                doctor = await (await there.new_context()).new_page()
                errors: list[str] = []
                doctor.on("pageerror", lambda exc: errors.append(str(exc)))
                await doctor.goto(f"{server.base_url}/r/ward?name=Doctor&autojoin=1")
                await wait_joined(doctor, WAIT_MS, reloads=1)
                await watch_stats(doctor)
                for page in (doctor, rep):
                    await wait_decoding(page, 30)
                before = await doctor.evaluate(SELECTED_PAIR, "subscribePc")
                assert before["localAddress"] == lab.client_ip, before
                yield Call(lab, server, observer, rep, doctor, errors,
                           await doctor.evaluate("() => window.__meeting.selfId"))
            finally:
                await observer.close()


async def page_state(page) -> dict:
    return await page.evaluate(
        "() => ({id: window.__meeting.selfId, joins: window.__meeting.joins,"
        " resumes: window.__meeting.resumes, error: window.__meeting.lastError})")


async def test_address_change_mid_call(tmp_path: Path) -> None:
    async with call_in_lab(tmp_path) as call:
        doctor, rep = call.doctor, call.rep
        pages = {"doctor": doctor, "rep": rep}
        base = {name: await decoded(page) for name, page in pages.items()}
        changed = time.monotonic()
        new_ip = change_address(call.lab)
        freezes = await watch_freezes(pages, base, changed)
        print()
        for name, found in freezes.items():
            back = next((f"{start + length:.2f} s" for start, length in found
                         if length > 1), "no freeze over 1 s")
            print(f"{name}: video decoding again after the address change: {back};"
                  " freezes (start, length): " + ", ".join(
                      f"({start:.2f} s, {length:.2f} s)" for start, length in found))
        steps = await doctor.evaluate("() => window.__meeting.network")
        start = await doctor.evaluate("() => performance.now()") - \
            (time.monotonic() - changed) * 1000
        print("the doctor's page:", ", ".join(f"{(t - start) / 1000:.2f} s {what}"
                                             for t, what in steps))

        # it goes on: video and sound both ways, over her new address
        for page in pages.values():
            now = await decoded(page)
            later = await wait_decoding(page, now["framesDecoded"] + 30)
            assert later["audioPackets"] > now["audioPackets"], (now, later)
        for which in ("publishPc", "subscribePc"):
            pair = await doctor.evaluate(SELECTED_PAIR, which)
            assert pair and pair["localAddress"] == new_ip, (which, pair)
        # the same participant, resumed rather than rejoined, and nobody saw her go
        state = await page_state(doctor)
        assert state.pop("resumes") >= 1, state  # more: a false alarm under load too
        assert state == {"id": call.doctor_id, "joins": 1, "error": None}, state
        done = [what.split(" (")[0] for _, what in steps]
        assert [what for what in done if what in RECOVERY][:3] == RECOVERY, steps
        assert await rep.evaluate("(id) => window.__meeting.participants.has(id)",
                                  call.doctor_id)
        seen = {e["event"] for e in call.observer.events}
        assert not seen & {"participantLeft", "trackUnpublished"}, seen
        assert not call.errors, call.errors


async def test_address_change_after_the_connections_expired(tmp_path: Path) -> None:
    """The fallback: her connections expired (ICE consent; closed here as the worker's consent
    timer closes them, at once rather than 30 s on) before she came back, so the server cannot
    keep them (mediaKept false). The page then joins again the long way, in the same place:
    same participant id, no participantLeft (her tracks are published anew)."""
    async with call_in_lab(tmp_path) as call:
        doctor, rep = call.doctor, call.rep
        frames = (await decoded(rep))["framesDecoded"]
        new_ip = change_address(call.lab)
        session = next(p for p in call.server.state.sessions if p.id == call.doctor_id)
        worker = call.server.state.media.worker
        worker.transports[session.subscribe_transport].close(CONSENT_EXPIRED)
        await doctor.wait_for_function("() => window.__meeting.joins === 2 &&"
                                       " window.__meeting.joined", timeout=WAIT_MS)
        await wait_decoding(doctor, 30)  # on the new page's connections
        await wait_decoding(rep, frames + 30)
        pair = await doctor.evaluate(SELECTED_PAIR, "subscribePc")
        assert pair and pair["localAddress"] == new_ip, pair
        state = await page_state(doctor)
        assert state["id"] == call.doctor_id and state["resumes"] == 0, state
        steps = [what for _, what in await doctor.evaluate("() => window.__meeting.network")]
        assert "recovering (socket dead)" in steps and "resumed" not in steps, steps
        seen = {e["event"] for e in call.observer.events}
        assert "participantLeft" not in seen and "trackPublished" in seen, seen
        assert not call.errors, call.errors
