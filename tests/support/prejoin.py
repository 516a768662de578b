"""The pre-join page as a person uses it: load it, let its connectivity check run (every media
path, web_client/js/precheck.js and netpaths.js), read the outcome, then press Join."""

from __future__ import annotations

from typing import Any

from tests.support.browser import WAIT_MS, wait_joined, watch_stats

CHECKED = "window.__precheck && ['pass', 'fail'].includes(window.__precheck.state)"


async def run_check(page, url: str) -> dict[str, Any]:
    """window.__precheck once the check has ended: {state, paths: {id: {ok, rtt, local, remote,
    detail, ...}}, best, relayOnly, advice, openings, tookMs, banner, rows, shownAdvice (the
    advice as the page shows it)}. A page on a NetLab's
    address that stalls before its scripts run (see browser.wait_joined) is loaded once more."""
    await page.goto(url)
    try:
        await page.wait_for_function(CHECKED, timeout=WAIT_MS)
    except Exception:
        print(f"{url}: the pre-join check did not end within {WAIT_MS} ms: loading again")
        await page.reload()
        await page.wait_for_function(CHECKED, timeout=WAIT_MS)
    result = await page.evaluate("""() => ({
        ...window.__precheck,
        banner: document.getElementById('precheck-banner').textContent,
        rows: document.getElementById('precheck-steps').innerText,
        shownAdvice: document.getElementById('precheck-advice').hidden ? null
          : document.getElementById('precheck-advice').innerText,
    })""")
    result["paths"] = {p["id"]: p for p in result["paths"]}
    return result


async def join(page) -> None:
    """Press Join on the pre-join page and wait until in the meeting."""
    await page.click("#join-btn")
    await wait_joined(page, WAIT_MS)


async def rep_in_doctor_checked(server, here, there, room: str = "ward") -> tuple:
    """The rep joined straight away from `here` (her inbound totals watched); the doctor's
    pre-join page in `there` with its check ended: (rep, doctor, doctor's page errors, check)."""
    rep = await (await here.new_context()).new_page()
    await rep.goto(f"{server.base_url}/r/{room}?name=Rep&autojoin=1")
    await wait_joined(rep, WAIT_MS, reloads=1)
    await watch_stats(rep)
    doctor = await (await there.new_context()).new_page()
    errors: list[str] = []
    doctor.on("pageerror", lambda exc: errors.append(str(exc)))
    check = await run_check(doctor, f"{server.base_url}/r/{room}?name=Doctor")
    return rep, doctor, errors, check
