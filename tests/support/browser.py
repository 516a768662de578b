"""Headless Debian Chromium driven by Playwright, set up as ../shared/BROWSER_TESTING.md says.

No `playwright install`: the system browser is launched through `executable_path`. Chromium
keeps only the last --disable-features flag, so ours repeats Playwright's own list, read from
the installed Playwright so it stays right when Playwright is upgraded.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import playwright
from playwright.async_api import Browser, async_playwright

CHROMIUM = Path("/usr/lib/chromium/chromium")


def playwright_disabled_features() -> list[str]:
    lib = Path(playwright.__file__).parent / "driver" / "package" / "lib"
    for path in [lib / "coreBundle.js", *lib.rglob("chromiumSwitches.js")]:
        if path.exists():
            match = re.search(r"disabledFeatures = \[(.*?)\]", path.read_text(), re.S)
            if match:
                return re.findall(r'"([A-Za-z0-9]+)"', match.group(1))
    raise RuntimeError("cannot find Playwright's disabled Chromium features")


def chromium_args(origins: tuple[str, ...] = (), video_file: Path | None = None,
                  extra: tuple[str, ...] = ()) -> list[str]:
    """`origins`: servers ("http://10.1.2.1:8080") pages may reach besides loopback, trusted
    like localhost (camera and microphone need a secure origin): a NetLab's. `video_file`: the
    fake camera plays this .y4m or .mjpeg file (looped) instead of Chromium's own pattern
    (tests/support/fake_capture.py makes a detailed one). `extra`: more flags (e.g. a test
    TURN server's certificate to trust, turn_server.TurnServer.trust_flag)."""
    features = [*playwright_disabled_features(), "WebRtcHideLocalIpsWithMdns"]
    hosts = [urlsplit(origin).hostname for origin in origins]
    allowed = "".join(f" , EXCLUDE {host}" for host in ("127.0.0.1", "localhost", *hosts))
    trusted = [f"--unsafely-treat-insecure-origin-as-secure={','.join(origins)}"] if origins \
        else []
    return [
        "--no-sandbox", "--disable-gpu",
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        "--allow-loopback-in-peer-connection",
        "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND" + allowed,
        "--autoplay-policy=no-user-gesture-required",
        "--disable-features=" + ",".join(features),
        *trusted,
        *([f"--use-file-for-fake-video-capture={video_file}"] if video_file else []),
        *extra,
    ]


@asynccontextmanager
async def chromium(netns: str | None = None, origins: tuple[str, ...] = (),
                   video_file: Path | None = None,
                   extra: tuple[str, ...] = ()) -> AsyncIterator[Browser]:
    """`netns`: run the browser in that network namespace (a NetLab's client_ns): Playwright
    drives it over pipes, its network is the namespace's. `origins`, `video_file`, `extra`:
    see chromium_args."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    executable, wrapper = str(CHROMIUM), None
    if netns is not None:
        fd, wrapper = tempfile.mkstemp(prefix="chromium-netns-", suffix=".sh")
        os.write(fd, f'#!/bin/sh\nexec ip netns exec {netns} {CHROMIUM} "$@"\n'.encode())
        os.close(fd)
        os.chmod(wrapper, 0o755)
        executable = wrapper
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=executable, headless=True,
                                              args=chromium_args(origins, video_file, extra))
            try:
                yield browser
            finally:
                await browser.close()
    finally:
        if wrapper is not None:
            os.unlink(wrapper)


# JavaScript run in the page: totals of the subscribe connection's inbound streams.
INBOUND_STATS = """async () => {
  const m = window.__meeting;
  if (!m || !m.subscribePc) return null;
  const stats = await m.subscribePc.getStats();
  const out = {framesDecoded: 0, audioPackets: 0, audioEnergy: 0, decodingVideos: 0};
  stats.forEach(s => {
    if (s.type !== 'inbound-rtp') return;
    if (s.kind === 'video') out.framesDecoded += s.framesDecoded || 0;
    if (s.kind === 'video' && s.framesDecoded > 10) out.decodingVideos += 1;
    if (s.kind === 'audio') {
      out.audioPackets += s.packetsReceived || 0;
      out.audioEnergy += s.totalAudioEnergy || 0;
    }
  });
  return out;
}"""


# The selected candidate pair of one of the page's connections (`which`: 'publishPc' or
# 'subscribePc'), as its getStats() says; null until one succeeded.
SELECTED_PAIR = """async (which) => {
  const pc = window.__meeting && window.__meeting[which];
  if (!pc) return null;
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach(s => {
    if (s.type === 'transport' && s.selectedCandidatePairId)
      pair = stats.get(s.selectedCandidatePairId);
  });
  if (!pair || pair.state !== 'succeeded') return null;
  const local = stats.get(pair.localCandidateId), remote = stats.get(pair.remoteCandidateId);
  return {local: local.protocol, localType: local.candidateType, tcpType: local.tcpType || '',
          relayProtocol: local.relayProtocol || '', localAddress: local.address,
          remote: remote.protocol, remoteAddress: remote.address, remotePort: remote.port,
          rtt: pair.currentRoundTripTime};
}"""


WAIT_MS = 30_000


async def watch_stats(page) -> None:
    """Keep the latest inbound totals on window.__inbound (getStats is async; the wait is not)."""
    await page.evaluate(f"""() => {{
        const read = {INBOUND_STATS};
        setInterval(async () => {{ window.__inbound = await read(); }}, 200);
    }}""")


async def wait_decoding(page, frames: int) -> dict:
    """Wait until the page has decoded `frames` remote video frames and received audio."""
    handle = await page.wait_for_function(
        f"""() => {{
            const s = window.__inbound;
            return s && s.framesDecoded >= {frames} && s.audioPackets > 50 ? s : null;
        }}""", timeout=WAIT_MS, polling=200)
    return await handle.json_value()


IN_MEETING = "window.__meeting && window.__meeting.joined"


async def wait_joined(page, timeout_ms: int = WAIT_MS, reloads: int = 0) -> None:
    """Until the page is in the meeting; if not, say where it stood. `reloads`: pages on a
    NetLab's address have, a few times in many runs, not even loaded their scripts within 60 s
    of a fresh browser's first navigation (cause not found yet; the joins of every other
    browser test never stall): such a page is loaded again, and the stall reported."""
    for attempt in range(reloads + 1):
        try:
            await page.wait_for_function(IN_MEETING, timeout=timeout_ms)
            return
        except Exception as exc:
            state = await page.evaluate(
                "JSON.stringify(window.__meeting ? {lastError: window.__meeting.lastError,"
                " joined: window.__meeting.joined} : 'no meeting state')")
            if attempt == reloads:
                raise AssertionError(f"{page.url} did not join: {state}") from exc
            print(f"{page.url} did not join within {timeout_ms} ms ({state}): loading again")
            await page.reload()


@asynccontextmanager
async def lab_browsers(lab, data_dir: Path, video_file: Path | None = None,
                       browser_args: tuple[str, ...] = (),
                       **server_options: Any) -> AsyncIterator[tuple]:
    """A dev server listening on a NetLab's host address, a Chromium here (a clean link) and
    one in the lab's client namespace (behind the emulated link): (server, here, there).
    `video_file`, `browser_args`: both browsers' fake camera plays it, their extra flags (see
    chromium_args). `server_options`:
    more ServerConfig fields (turn_urls, ...)."""
    from tests.support.server import running_server  # the server side only when needed

    async with running_server(data_dir, dev=True, host=lab.host_ip,
                              **server_options) as server, \
            chromium(origins=(server.base_url,), video_file=video_file,
                     extra=browser_args) as here, \
            chromium(netns=lab.client_ns, origins=(server.base_url,),
                     video_file=video_file, extra=browser_args) as there:
        yield server, here, there
