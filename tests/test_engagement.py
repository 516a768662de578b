"""Webinar engagement over the WebSocket: Q&A, polls, chat control, private messages,
reactions, and their rate limits."""

from __future__ import annotations

import aiohttp

from tests.support.client import Client, RequestFailed
from tests.support.server import API_KEY


async def setup(server, room: str) -> dict[str, Client]:
    async with aiohttp.ClientSession() as s, s.post(
            server.base_url + "/api/rooms", json={"name": room, "type": "webinar"},
            headers={"Authorization": f"Bearer {API_KEY}"}) as r:
        assert r.status == 201
    people = {}
    for identity, role in (("host", "host"), ("speaker", "presenter"), ("a1", "attendee"),
                           ("a2", "attendee")):
        c = Client(server.base_url, server.token(room, identity, role=role))
        await c.connect()
        await c.join()
        people[identity] = c
    return people


async def refused(coro, code: str) -> None:
    try:
        await coro
    except RequestFailed as exc:
        assert exc.code == code, exc
    else:
        raise AssertionError(f"expected {code}")


async def close_all(people: dict[str, Client]) -> None:
    for c in people.values():
        await c.close()


async def test_questions_and_answers(server) -> None:
    p = await setup(server, "qa-room")
    try:
        q1 = (await p["a1"].request("qaAsk", {"text": "Dose for renal patients?"}))["question"]
        q2 = (await p["a2"].request("qaAsk", {"text": "Interactions with statins?"}))["question"]
        added = await p["host"].wait_event("questionAdded",
                                           lambda d: d["question"]["id"] == q2["id"])
        assert added["question"]["name"] == "a2"
        upvoted = await p["a1"].request("qaUpvote", {"questionId": q2["id"]})
        assert upvoted["question"]["votes"] == 1
        await refused(p["a1"].request("qaUpvote", {"questionId": q2["id"]}), "conflict")
        await refused(p["a1"].request("qaAnswer", {"questionId": q2["id"]}), "forbidden")
        order = [q["id"] for q in (await p["a1"].request("qaList"))["questions"]]
        assert order == [q2["id"], q1["id"]]  # most votes first
        await p["speaker"].request("qaAnswer", {"questionId": q2["id"]})
        updated = await p["a2"].wait_event(
            "questionUpdated", lambda d: d["question"]["state"] == "answered")
        assert updated["question"]["id"] == q2["id"]
        await p["host"].request("qaDismiss", {"questionId": q1["id"]})
        states = {q["id"]: q["state"] for q in (await p["a2"].request("qaList"))["questions"]}
        assert states == {q1["id"]: "dismissed", q2["id"]: "answered"}
        await refused(p["a1"].request("qaAsk", {"text": "x" * 501}), "bad_request")
    finally:
        await close_all(p)


async def test_polls_live_results(server) -> None:
    p = await setup(server, "poll-room")
    try:
        await refused(p["a1"].request("pollCreate", {"question": "q", "options": ["a", "b"]}),
                      "forbidden")
        poll = (await p["speaker"].request(
            "pollCreate", {"question": "Which dose?", "options": ["5 mg", "10 mg", "20 mg"]}
        ))["poll"]
        assert (await p["a1"].request("pollList"))["polls"] == []  # drafts are not shown
        await refused(p["a1"].request("pollVote", {"pollId": poll["id"], "option": 0}),
                      "conflict")
        await p["speaker"].request("pollOpen", {"pollId": poll["id"]})
        opened = await p["a1"].wait_event("pollUpdated", lambda d: d["poll"]["state"] == "open")
        assert [o["text"] for o in opened["poll"]["options"]] == ["5 mg", "10 mg", "20 mg"]
        await p["a1"].request("pollVote", {"pollId": poll["id"], "option": 1})
        result = (await p["a2"].request("pollVote", {"pollId": poll["id"], "option": 1}))["poll"]
        assert [o["votes"] for o in result["options"]] == [0, 2, 0]
        live = await p["host"].wait_event("pollUpdated", lambda d: d["poll"]["total"] == 2)
        assert live["poll"]["options"][1]["votes"] == 2
        await refused(p["a2"].request("pollVote", {"pollId": poll["id"], "option": 0}),
                      "conflict")
        await refused(p["a2"].request("pollVote", {"pollId": poll["id"], "option": 9}),
                      "not_found")
        await p["host"].request("pollClose", {"pollId": poll["id"]})
        kept = (await p["a2"].request("pollList"))["polls"]
        assert kept[0]["state"] == "closed" and kept[0]["total"] == 2
    finally:
        await close_all(p)


async def test_chat_control_private_messages_reactions(server) -> None:
    p = await setup(server, "talk-room")
    try:
        await p["host"].request("setChat", {"enabled": False})
        changed = await p["a1"].wait_event("settingsChanged")
        assert changed["settings"]["chat"] is False
        await refused(p["a1"].request("chat", {"text": "hello?"}), "chat_disabled")
        await p["speaker"].request("chat", {"text": "questions go to Q&A please"})
        await p["host"].request("setChat", {"enabled": True})
        await p["a1"].request("chat", {"text": "thanks"})

        await refused(p["a1"].request("privateMessage", {"participantId": p["a2"].self_id,
                                                         "text": "psst"}), "forbidden")
        await p["a1"].request("privateMessage", {"participantId": p["host"].self_id,
                                                 "text": "my audio is bad"})
        pm = await p["host"].wait_event("privateMessage")
        assert pm["message"]["text"] == "my audio is bad"
        assert pm["message"]["from"] == p["a1"].self_id
        assert not any(e.get("event") == "privateMessage" for e in p["a2"].events)

        await p["a2"].request("reaction", {"emoji": "👏"})
        seen = await p["speaker"].wait_event("reaction")
        assert seen == {"participantId": p["a2"].self_id, "emoji": "👏"}
        await refused(p["a2"].request("reaction", {"emoji": "💩"}), "bad_request")
    finally:
        await close_all(p)


async def test_rate_limits_per_participant(server) -> None:
    p = await setup(server, "busy-room")
    try:
        codes = []
        for i in range(6):
            try:
                await p["a1"].request("qaAsk", {"text": f"question {i}"})
                codes.append("ok")
            except RequestFailed as exc:
                codes.append(exc.code)
        assert codes[:3] == ["ok"] * 3 and "rate_limited" in codes
        # another participant is not affected by a1's limit
        await p["a2"].request("qaAsk", {"text": "mine"})
        flood = []
        for _ in range(12):
            try:
                await p["a2"].request("reaction", {"emoji": "🎉"})
                flood.append("ok")
            except RequestFailed as exc:
                flood.append(exc.code)
        assert "rate_limited" in flood
    finally:
        await close_all(p)
