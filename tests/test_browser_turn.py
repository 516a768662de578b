"""A doctor behind a firewall that lets out only TCP to the TURN server's port, in Chromium:
her page runs in a NetLab namespace whose forwarder drops every UDP frame and every TCP
segment to or from the media worker's ICE-TCP port; HTTP (the page and its WebSocket) and TCP
to coturn pass. The server is configured with a coturn of the test's own
(tests/support/turn_server.py) and hands her short-lived credentials in the join result; her
connections gather relay candidates over TURN/TCP, and through them she decodes the rep's video
and hears the audio, and the rep decodes hers. Both of her connections' selected candidate pairs
are relay candidates reached over TCP; the server sees her from coturn's relay address."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.support.browser import (
    SELECTED_PAIR,
    WAIT_MS,
    lab_browsers,
    wait_decoding,
    wait_joined,
    watch_stats,
)
from tests.support.netlab import NetLab
from tests.support.turn_server import turn_server

# every candidate pair of both connections, for a failure's message
ALL_PAIRS = """async () => {
  const out = {};
  for (const which of ['publishPc', 'subscribePc']) {
    const pc = window.__meeting && window.__meeting[which];
    if (!pc) { out[which] = null; continue; }
    const stats = await pc.getStats();
    const pairs = [];
    stats.forEach(s => {
      if (s.type !== 'candidate-pair') return;
      const l = stats.get(s.localCandidateId), r = stats.get(s.remoteCandidateId);
      pairs.push(`${l.candidateType}/${l.protocol}/${l.relayProtocol || ''} ` +
                 `${l.address}:${l.port} -> ${r.protocol} ${r.address}:${r.port} ${s.state}`);
    });
    out[which] = {ice: pc.iceConnectionState, connection: pc.connectionState, pairs};
  }
  return JSON.stringify(out);
}"""


async def decoding_or_why(page, frames: int, lab: NetLab, turn) -> dict:
    """wait_decoding, and on a timeout the page's candidate pairs, the link's counters and the
    end of coturn's log in the failure."""
    try:
        return await wait_decoding(page, frames)
    except Exception as exc:
        pairs = await page.evaluate(ALL_PAIRS)
        inbound = await page.evaluate("JSON.stringify(window.__inbound || null)")
        raise AssertionError(f"{page.url}: not {frames} frames: {inbound}\n{pairs}\n"
                             f"link {lab.counters()}\ncoturn: {turn.log_text()[-3000:]}") from exc


async def selected_pair(page, which: str) -> dict:
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        pair = await page.evaluate(SELECTED_PAIR, which)
        if pair is not None:
            return pair
        assert time.monotonic() < deadline, f"{which}: no selected candidate pair"
        await asyncio.sleep(0.2)  # getStats is async: polled


async def test_doctor_reaches_the_server_only_through_turn_over_tcp(tmp_path: Path) -> None:
    with NetLab() as lab, turn_server(lab.host_ip) as turn:
        async with lab_browsers(lab, tmp_path, turn_urls=(turn.url("tcp"),),
                                turn_secret=turn.secret) as (server, here, there):
            media = server.state.media.worker  # type: ignore[attr-defined]
            udp_port, tcp_port = server.config.rtc_port, media.tcp.port
            # her firewall: no UDP at all, no TCP to the media port; HTTP and TURN/TCP pass
            lab.set(block_udp=True, block_tcp_ports=[tcp_port])
            await server.create_room("ward")
            rep = await (await here.new_context()).new_page()
            await rep.goto(f"{server.base_url}/r/ward?name=Rep&autojoin=1")
            await wait_joined(rep, WAIT_MS, reloads=1)
            await watch_stats(rep)
            doctor = await (await there.new_context()).new_page()
            errors: list[str] = []
            doctor.on("pageerror", lambda exc: errors.append(str(exc)))
            loading = time.monotonic()
            await doctor.goto(f"{server.base_url}/r/ward?name=Doctor&autojoin=1")
            await wait_joined(doctor, WAIT_MS, reloads=1)
            await watch_stats(doctor)
            # her view: the rep's video decoding and the sound arriving, and it goes on
            first = await decoding_or_why(doctor, 30, lab, turn)
            to_30_frames = time.monotonic() - loading
            later = await decoding_or_why(doctor, first["framesDecoded"] + 30, lab, turn)
            assert later["audioPackets"] > first["audioPackets"], (first, later)
            # the rep sees and hears what she publishes through the relay
            await decoding_or_why(rep, 30, lab, turn)
            for which in ("publishPc", "subscribePc"):
                pair = await selected_pair(doctor, which)
                assert pair["localType"] == "relay" and pair["relayProtocol"] == "tcp", \
                    (which, pair)
                assert pair["localAddress"] == turn.host, pair  # coturn's relay address
                assert (pair["remoteAddress"], pair["remotePort"]) == (lab.host_ip, udp_port), \
                    pair
            # the server's side: all four transports on UDP (hers from coturn, which relays UDP)
            dump = await server.state.media.dump()
            assert sorted(t.protocol for t in dump.transports) == ["udp"] * 4
            counters = lab.counters()
            assert counters["up_blocked"] > 0, counters  # she did try UDP and ICE-TCP first
            # (the server's tcp_* counters are no proof either way: the rep, on a clean link,
            # may send a check over ICE-TCP before her UDP pair is chosen)
            assert not errors, errors
            print(f"\nrelay over TURN/TCP: 30 frames {to_30_frames:.2f} s after loading the "
                  f"page, rtt {pair['rtt']}, link blocked {counters['up_blocked']} frames up")
