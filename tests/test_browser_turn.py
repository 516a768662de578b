"""A doctor behind a firewall that lets out only TCP to the TURN server's port, in Chromium:
her page runs in a NetLab namespace whose forwarder drops every UDP frame and every TCP
segment to or from the media worker's ICE-TCP port; HTTP (the page and its WebSocket) and TCP
to coturn pass. The server is configured with a coturn of the test's own
(tests/support/turn_server.py, TURN over UDP and TCP) and hands her short-lived credentials
(`iceServers` before join for the check, the join result's for the meeting). Her pre-join
check reports UDP and TCP direct and TURN over UDP failing, TURN over TCP working through a
relay candidate; she presses Join and her connections use the relay alone
(iceTransportPolicy 'relay'); through it she decodes the rep's video and hears the audio, and
the rep decodes hers. Both of her connections' selected candidate pairs are relay candidates
reached over TCP; the server sees her from coturn's relay address. With TCP to coturn blocked
too, nothing gets through: the check fails and tells her, in plain words, which host and ports
to ask her IT department to open. With coturn also on TLS (turns:, a self-signed certificate
that her Chromium is told to trust) and only that port open, the check finds the relay over
TLS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.support.browser import (
    SELECTED_PAIR,
    WAIT_MS,
    lab_browsers,
    wait_decoding,
    watch_stats,
)
from tests.support.netlab import NetLab
from tests.support.prejoin import join, rep_in_doctor_checked, run_check
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


@asynccontextmanager
async def behind_a_firewall(tmp_path: Path, tls: bool = False) -> AsyncIterator[tuple]:
    """The lab, its coturn (TURN over UDP and TCP, with `tls` also over TLS), the server, the
    two browsers, the room; (lab, turn, server, here, there, udp_port, tcp_port) with the media
    worker's ports."""
    with NetLab() as lab, turn_server(lab.host_ip, tls=tls) as turn:
        urls = (turn.url("udp"), turn.url("tcp"), *([turn.tls_url()] if tls else []))
        # Chromium checks a turns: server's certificate: trust the test's self-signed one
        trust = (turn.trust_flag(),) if tls else ()
        async with lab_browsers(lab, tmp_path, turn_urls=urls, turn_secret=turn.secret,
                                browser_args=trust) as (server, here, there):
            media = server.state.media.worker  # type: ignore[attr-defined]
            await server.create_room("ward")
            yield lab, turn, server, here, there, server.config.rtc_port, media.tcp.port


async def test_doctor_reaches_the_server_only_through_turn_over_tcp(tmp_path: Path) -> None:
    async with behind_a_firewall(tmp_path) as (lab, turn, server, here, there, udp_port,
                                               tcp_port):
        # her firewall: no UDP at all, no TCP to the media port; HTTP and TURN/TCP pass
        lab.set(block_udp=True, block_tcp_ports=[tcp_port])
        rep, doctor, errors, check = await rep_in_doctor_checked(server, here, there)
        # her pre-join check: only the relay over TCP gets through
        paths = check["paths"]
        assert list(paths) == ["udp", "tcp", "turn-udp", "turn-tcp"], check
        assert [p["ok"] for p in paths.values()] == [False, False, False, True], check
        relayed = paths["turn-tcp"]
        assert relayed["local"] == {"type": "relay", "protocol": "udp",
                                    "relayProtocol": "tcp"}, relayed
        assert relayed["remote"]["address"] == lab.host_ip and relayed["rtt"] is not None
        assert check["state"] == "pass" and check["best"] == "turn-tcp", check
        assert check["relayOnly"] and "TURN relay over TCP" in check["banner"], check
        loading = time.monotonic()
        await join(doctor)
        policies = await doctor.evaluate(
            "['publishPc', 'subscribePc'].map(w => window.__meeting[w]"
            ".getConfiguration().iceTransportPolicy)")
        assert policies == ["relay", "relay"], policies
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
        assert counters["up_blocked"] > 0, counters  # her check did try UDP and ICE-TCP
        # (the server's tcp_* counters are no proof either way: the rep, on a clean link,
        # may send a check over ICE-TCP before her UDP pair is chosen)
        assert not errors, errors
        print(f"\nrelay over TURN/TCP: check took {check['tookMs']:.0f} ms: {check['rows']!r}; "
              f"30 frames {to_30_frames:.2f} s after pressing Join, rtt {pair['rtt']}, link "
              f"blocked {counters['up_blocked']} frames up")


async def test_nothing_gets_through_the_check_says_what_to_open(tmp_path: Path) -> None:
    async with behind_a_firewall(tmp_path) as (lab, turn, server, _, there, udp_port,
                                               tcp_port):
        # no UDP, no TCP to the media port nor to coturn: only the page and its WebSocket
        lab.set(block_udp=True, block_tcp_ports=[tcp_port, turn.port])
        doctor = await (await there.new_context()).new_page()
        check = await run_check(doctor, f"{server.base_url}/r/ward?name=Doctor")
        assert list(check["paths"]) == ["udp", "tcp", "turn-udp", "turn-tcp"], check
        assert not any(p["ok"] for p in check["paths"].values()), check
        assert check["state"] == "fail" and check["best"] is None, check
        assert "cannot get through your network" in check["banner"], check
        advice, shown = check["advice"], check["shownAdvice"]
        assert "IT department" in advice and "IT department" in shown, check
        openings = [f"{lab.host_ip}, UDP port {udp_port} (audio and video)",
                    f"{lab.host_ip}, TCP port {tcp_port} (audio and video over TCP)",
                    f"{turn.host}, UDP port {turn.port} (the relay server)",
                    f"{turn.host}, TCP port {turn.port} (the relay server)"]
        assert check["openings"] == openings, check  # best first
        for opening in openings:
            assert opening in advice and opening in shown, (opening, advice, shown)
        assert lab.counters()["up_blocked"] > 0, lab.counters()  # she did try each way
        print(f"\nnothing open (check took {check['tookMs']:.0f} ms): {advice}")


async def test_check_finds_turn_over_tls_when_only_its_port_is_open(tmp_path: Path) -> None:
    async with behind_a_firewall(tmp_path, tls=True) as (lab, turn, server, _, there, _udp,
                                                         tcp_port):
        # only TLS to coturn's turns: port gets out (what port 443 is in many companies)
        lab.set(block_udp=True, block_tcp_ports=[tcp_port, turn.port])
        doctor = await (await there.new_context()).new_page()
        check = await run_check(doctor, f"{server.base_url}/r/ward?name=Doctor")
        paths = check["paths"]
        assert list(paths) == ["udp", "tcp", "turn-udp", "turn-tcp", "turns"], check
        assert [p["ok"] for p in paths.values()] == [False, False, False, False, True], \
            (check["rows"], turn.log_text()[-3000:])
        assert paths["turns"]["local"] == {"type": "relay", "protocol": "udp",
                                           "relayProtocol": "tls"}, paths["turns"]
        assert check["best"] == "turns" and check["relayOnly"], check
        print(f"\nonly TURN over TLS (check took {check['tookMs']:.0f} ms): {check['rows']!r}")
