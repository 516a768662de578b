"""The analytics dashboard (/dashboard, docs/analytics.md "Dashboard") in a real Chromium.

A meeting of two aiortc participants is recorded through the server (a few seconds, with chat
messages), two views of the recording send scripted player reports through the real endpoint;
then the page, opened with the API key typed into its form, must show: the room's session in
its list, the concurrency chart drawn by uPlot, the per-person table with the report's values,
a CSV download equal to the API's, and, for the recording, the heatmap with its skipped and
re-watched bands where the reports put them, and the drop-off curve. Without a grant the page
shows the refusal and no data. No page errors throughout.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from playwright.async_api import Page

from tests.support.browser import WAIT_MS, chromium
from tests.support.server import API_KEY, RunningServer, running_server
from tests.test_browser_player_analytics import AUTH, api, record_meeting

SECONDS = 8
CHATS = 3
# two views of the recording (seconds): the first skips 2-5, the second plays 1-3 twice and
# stops at 4
VIEWS = [{"viewId": "v-one", "viewer": "dr-a", "ranges": [[0, 2, 1], [5, SECONDS, 1]],
          "seeks": [[2, 5]]},
         {"viewId": "v-two", "viewer": "dr-b", "ranges": [[0, 4, 1], [1, 3, 1]], "seeks": []}]
SKIPPED, REWATCHED = (2, 5), (1, 3)
ORANGE, VIOLET, BLUE, GREEN = (245, 158, 11), (168, 85, 247), (59, 130, 246), (34, 197, 94)

# Columns of the canvas under `selector` that hold a pixel of exactly `rgb` (opaque).
COLUMNS_OF = """([selector, rgb]) => {
  const c = document.querySelector(selector);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const cols = new Set();
  for (let i = 0; i < d.length; i += 4) {
    if (d[i] === rgb[0] && d[i + 1] === rgb[1] && d[i + 2] === rgb[2] && d[i + 3] === 255) {
      cols.add((i / 4) % c.width);
    }
  }
  return [...cols].sort((a, b) => a - b);
}"""


def clock(seconds: float) -> str:
    """dashcharts.js's clock(): 75 -> "1:15"."""
    s = max(0, math.floor(seconds))
    h, m = s // 3600, s // 60 % 60
    return (f"{h}:{m:02d}" if h else f"{m}") + f":{s % 60:02d}"


def shown(p: dict) -> dict[str, str]:
    """A participant's row as dashboard.js shows it, by column heading."""
    return {"Name": p["name"], "Identity": p["identity"], "Role": p["role"],
            "Score": f"{p['score']:.1f}", "Present": clock(p["presentSeconds"]),
            "Speaking": clock(p["talkSeconds"]), "Camera": clock(p["cameraSeconds"]),
            "Tab visible": clock(p["visibleSeconds"]), "Chat": str(p["chat"]),
            "Questions": str(p["questions"]), "Upvotes": str(p["upvotes"]),
            "Votes": str(p["votes"]), "Reactions": str(p["reactions"]),
            "Hands": str(p["hands"]), "Breakouts": ", ".join(p["breakouts"])}


async def table(page: Page) -> list[dict[str, str]]:
    return await page.evaluate("""() => {
      const t = document.getElementById('people-table');
      const heads = [...t.tHead.rows[0].cells].map((th) => th.textContent.replace(/ [▾▴]$/, ''));
      return [...t.tBodies[0].rows].map((tr) =>
        Object.fromEntries([...tr.cells].map((td, i) => [heads[i], td.textContent])));
    }""")


async def report_views(server: RunningServer, recording: dict) -> None:
    async with aiohttp.ClientSession() as s:
        for view in VIEWS:
            body = {**view, "src": recording["links"]["playlist"], "final": True,
                    "duration": recording["duration"], "visible": 5}
            async with s.post(server.base_url + "/api/player/report", json=body) as r:
                assert r.status == 200, await r.text()


def unexpected(errors: list[str], server: RunningServer) -> list[str]:
    """The page's errors but those the console reports of refusals (the API's 401 and 403)
    and of the dev-token probe (404: not a dev server)."""
    expected = (("401", "/api/rooms/rounds/sessions"), ("403", "/api/rooms/rounds/sessions"),
                ("404", "/api/dev/token"))
    return [e for e in errors if not any(code in e and e.endswith(server.base_url + url)
                                         for code, url in expected)]


def span(columns: list[int]) -> int:
    assert columns, "no pixel of that colour: not drawn"
    return columns[-1] - columns[0] + 1


@pytest.mark.timeout(180)
async def test_dashboard_shows_a_session_and_a_recording(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data") as server, chromium() as browser:
        recording = await record_meeting(server, "rounds", seconds=SECONDS, chats=CHATS)
        rid = recording["id"]
        await report_views(server, recording)
        (session,) = (await api(server, "/api/rooms/rounds/sessions"))["sessions"]
        report = await api(server, f"/api/rooms/rounds/sessions/{session['id']}/report")
        figures = await api(server, f"/api/recordings/{rid}/analytics")
        assert rid in report["session"]["recordings"]
        assert [p["chat"] for p in report["participants"]] == [0, CHATS]
        assert figures["views"] == 2 and figures["skipped"] == [list(SKIPPED)]
        assert figures["rewatched"] == [list(REWATCHED)]

        context = await browser.new_context(accept_downloads=True)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: errors.append(f"{m.text} {m.location.get('url')}")
                if m.type == "error" else None)

        # no grant: the page asks for one and shows nothing; a wrong one or an attendee's
        # token is refused by the API and the page says so
        await page.goto(f"{server.base_url}/dashboard?room=rounds")
        await page.wait_for_function(
            "document.getElementById('dash-status').textContent.includes('API key')",
            timeout=WAIT_MS)
        attendee = server.token("rounds", "dr-9", role="attendee")
        for given, says in (("not-a-key", "The API key or a host token"),
                            (attendee, "not a host token of this room")):
            await page.goto(f"{server.base_url}/dashboard?room=rounds&token={quote(given)}")
            await page.wait_for_function("window.__dashboard.errors.length > 0",
                                         timeout=WAIT_MS)
            assert says in await page.locator("#dash-status").text_content()
            assert await page.evaluate("[window.__dashboard.sessions, window.__dashboard.report,"
                                       " window.__dashboard.ready]") == [None, None, False]
            assert await page.locator("#sessions-section").is_hidden()
            assert await page.locator("#session-section").is_hidden()
        assert unexpected(errors, server) == []

        # the API key typed into the form
        await page.goto(f"{server.base_url}/dashboard?room=rounds")
        await page.fill("#auth-input", API_KEY)
        await page.click("#auth-form button[type=submit]")
        await page.wait_for_function("window.__dashboard.ready", timeout=WAIT_MS)
        assert await page.evaluate("window.__dashboard.errors") == []
        # the sessions list: this one, with its people and peak
        rows = page.locator("#sessions-table tbody tr")
        assert await rows.count() == 1
        assert await rows.first.get_attribute("data-id") == session["id"]
        cells = await rows.first.locator("td").all_text_contents()
        assert cells[3:] == [str(session["participants"]), str(session["peak"])] == ["2", "2"]
        assert await page.evaluate("window.__dashboard.report") == report
        # the concurrency chart: uPlot's canvas with its blue line drawn
        assert span(await page.evaluate(COLUMNS_OF, ["#timeline-chart canvas", BLUE])) > 50
        # the per-person table: the report's values, one row each
        got = sorted(await table(page), key=lambda r: r["Identity"])
        want = sorted((shown(p) for p in report["participants"]), key=lambda r: r["Identity"])
        assert got == want
        assert [r["Chat"] for r in got] == ["0", str(CHATS)]
        # the CSV download is the API's CSV
        async with page.expect_download() as download:
            await page.click("#csv-btn")
        got_csv = Path(await (await download.value).path()).read_bytes().decode()
        async with aiohttp.ClientSession() as s, s.get(
                f"{server.base_url}/api/rooms/rounds/sessions/{session['id']}/report"
                "?format=csv", headers=AUTH) as r:
            assert got_csv == await r.text()
        assert len(list(csv.DictReader(io.StringIO(got_csv)))) == 2

        # the session's recording: heatmap with its bands, drop-off curve
        await page.click(f"#session-recordings button:has-text('{rid}')")
        await page.wait_for_function(f"window.__dashboard.recording?.id === {rid!r}",
                                     timeout=WAIT_MS)
        shown_figures = await page.evaluate("window.__dashboard.recording")
        assert {k: v for k, v in shown_figures.items() if k not in ("id", "links")} == \
            {k: v for k, v in figures.items() if k != "links"}
        orange = await page.evaluate(COLUMNS_OF, ["#heat-chart canvas", ORANGE])
        violet = await page.evaluate(COLUMNS_OF, ["#heat-chart canvas", VIOLET])
        # the bands where the reports put them: skipped 2-5 s is 1.5 x as wide as re-watched
        # 1-3 s, starts 1 s later and ends 2 s later
        per_second = span(violet) / (REWATCHED[1] - REWATCHED[0])
        print("heatmap bands (canvas columns): skipped", orange[0], orange[-1], "re-watched",
              violet[0], violet[-1])
        assert abs(span(orange) / per_second - (SKIPPED[1] - SKIPPED[0])) < 0.2
        assert abs((orange[0] - violet[0]) / per_second - (SKIPPED[0] - REWATCHED[0])) < 0.2
        assert span(await page.evaluate(COLUMNS_OF, ["#dropoff-chart canvas", GREEN])) > 50
        assert await page.evaluate("window.__dashboard.errors") == []
        assert unexpected(errors, server) == []
        await context.close()
