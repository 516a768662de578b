"""Engagement analytics with two signalling nodes on one real Redis (docs/analytics.md,
"Several nodes"): a session whose participants are on both nodes is one session, the same
report from either node, and one `session.ended` webhook, not one per node."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from signaling.analytics_api import EVENTS
from tests.support.client import Client
from tests.support.hooks import hook_receiver
from tests.support.server import RunningServer, two_nodes
from tests.support.tracks import PatternVideoTrack
from tests.test_active_speaker_room import SwitchedTone, speaker_is
from tests.test_analytics import close_to, get


async def settled(*nodes: RunningServer) -> None:
    """Every node's session-end checks and webhook deliveries in flight are done."""
    for node in nodes:
        await node.runner.app[EVENTS].drain()
        await node.state.recordings.webhooks.drain()


async def test_one_session_across_two_nodes(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (a, b), hook_receiver(a, b) as hooks:
        await a.create_room("span")
        ann = Client(a.base_url, a.token("span", "ann", "Dr Ann"))
        bea = Client(b.base_url, b.token("span", "bea", "Dr Bea", role="presenter"))
        cid = Client(a.base_url, a.token("span", "cid", "Dr Cid", role="attendee"))
        dan = Client(b.base_url, b.token("span", "dan", "Dr Dan", role="attendee"))
        people = (ann, bea, cid, dan)
        tones = [SwitchedTone(440), SwitchedTone(660)]
        camera = PatternVideoTrack(3)
        try:
            # the room's first joins, one on each node at the same moment: one session
            await asyncio.gather(ann.connect(), bea.connect(), cid.connect(), dan.connect())
            t_first = time.time()
            await asyncio.gather(ann.join(), bea.join())
            await ann.publish(tones[0])
            await bea.publish(tones[1], camera)
            t_cam = time.time()
            t_cid = time.time()
            await cid.join()
            t_dan = time.time()
            await dan.join()
            # Ann (node a) speaks, then Bea (node b) until she leaves
            tones[0].loud = True
            await speaker_is(dan, ann.self_id)
            t_ann_talk = time.time()
            await asyncio.sleep(1.5)  # a known stretch of speaking
            tones[0].loud, tones[1].loud = False, True
            await speaker_is(cid, bea.self_id)
            t_bea_talk = time.time()
            # interactions on both nodes
            await ann.request("chat", {"text": "welcome"})
            await ann.request("chat", {"text": "slides are up"})
            await bea.request("chat", {"text": "thank you"})
            question = (await cid.request("qaAsk", {"text": "Renal dose?"}))["question"]
            await bea.request("qaUpvote", {"questionId": question["id"]})
            await dan.request("qaUpvote", {"questionId": question["id"]})
            poll = (await ann.request("pollCreate", {"question": "Which?",
                                                     "options": ["a", "b"]}))["poll"]
            await ann.request("pollOpen", {"pollId": poll["id"]})
            await cid.request("pollVote", {"pollId": poll["id"], "option": 0})
            await dan.request("pollVote", {"pollId": poll["id"], "option": 1})
            await dan.request("raiseHand", {"raised": True})
            await cid.request("reaction", {"emoji": "👏"})
            await dan.close()
            t_dan_left = time.time()
            await cid.close()
            t_cid_left = time.time()
            # node b's last participant leaves; Ann is still in on node a: no session end
            await bea.close()
            t_bea_left = time.time()
            await settled(a, b)
            assert hooks.empty(), "session.ended while Ann was still in the room on node a"
            await ann.close()
            t_ann_left = time.time()
            headers, body = await asyncio.wait_for(hooks.get(), 15)
            await settled(a, b)
            assert hooks.empty(), "session.ended sent more than once"
        finally:
            for tone in tones:
                tone.stop()
            camera.stop()
            await asyncio.gather(*(c.close() for c in people), return_exceptions=True)

        assert headers["X-Mediaserver-Event"] == "session.ended" and body["data"]["room"] == "span"
        assert sorted(p["identity"] for p in body["data"]["participants"]) == \
            ["ann", "bea", "cid", "dan"]

        # the same single session from either node
        (_, listed_a), (_, listed_b) = await asyncio.gather(
            get(a, "/api/rooms/span/sessions"), get(b, "/api/rooms/span/sessions"))
        assert listed_a == listed_b
        (session,) = listed_a["sessions"]
        assert session["id"] == body["data"]["session"]["id"]
        assert session["participants"] == 4 and session["peak"] == 4
        assert close_to(session["started"], t_first) and close_to(session["ended"], t_ann_left)
        path = f"/api/rooms/span/sessions/{session['id']}/report"
        (status_a, rep), (status_b, rep_b) = await asyncio.gather(get(a, path), get(b, path))
        assert status_a == status_b == 200 and rep == rep_b
        assert rep["session"]["funnel"]["joined"] == 4
        assert rep["session"]["funnel"]["stayedToEnd"] == 4  # all within 60 s of the end
        p = {x["identity"]: x for x in rep["participants"]}
        spans = {"ann": (t_first, t_ann_left), "bea": (t_first, t_bea_left),
                 "cid": (t_cid, t_cid_left), "dan": (t_dan, t_dan_left)}
        for who, (joined, left) in spans.items():
            (interval,) = p[who]["intervals"]
            assert close_to(interval[0], joined) and close_to(interval[1], left), who
            assert close_to(p[who]["presentSeconds"], left - joined), who
        assert close_to(p["ann"]["talkSeconds"], t_bea_talk - t_ann_talk)
        assert close_to(p["bea"]["talkSeconds"], t_bea_left - t_bea_talk)
        assert p["cid"]["talkSeconds"] == p["dan"]["talkSeconds"] == 0
        assert close_to(p["bea"]["cameraSeconds"], t_bea_left - t_cam)
        assert p["ann"]["cameraSeconds"] == 0
        counts = {who: tuple(p[who][k] for k in ("chat", "questions", "upvotes", "votes",
                                                 "reactions", "hands")) for who in p}
        assert counts == {"ann": (2, 0, 0, 0, 0, 0), "bea": (1, 0, 1, 0, 0, 0),
                          "cid": (0, 1, 0, 1, 1, 0), "dan": (0, 0, 1, 1, 0, 1)}
        concurrent = [c for _, c in rep["timeline"]]
        assert concurrent[:-6] in ([2], [1, 2]) and concurrent[-6:] == [3, 4, 3, 2, 1, 0]

        # a second session whose last two participants leave on both nodes at once: it
        # ends once, and one webhook tells it
        eve = Client(a.base_url, a.token("span", "eve"))
        fay = Client(b.base_url, b.token("span", "fay"))
        try:
            await asyncio.gather(eve.connect(), fay.connect())
            await asyncio.gather(eve.join(), fay.join())
            await asyncio.gather(eve.close(), fay.close())
            headers, body = await asyncio.wait_for(hooks.get(), 15)
            await settled(a, b)
            assert hooks.empty(), "session.ended sent by both nodes"
        finally:
            await asyncio.gather(eve.close(), fay.close(), return_exceptions=True)
        (_, listed_a), (_, listed_b) = await asyncio.gather(
            get(a, "/api/rooms/span/sessions"), get(b, "/api/rooms/span/sessions"))
        assert listed_a == listed_b and len(listed_a["sessions"]) == 2
        second = listed_a["sessions"][1]
        assert second["id"] == body["data"]["session"]["id"] != session["id"]
        assert second["participants"] == 2 and second["ended"] is not None
