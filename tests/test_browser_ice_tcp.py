"""A doctor behind a hospital firewall that drops UDP, in Chromium: her page runs in a NetLab
namespace whose forwarder drops every UDP frame (TCP passes), the rep's page publishes from a
clean link. The doctor comes through the pre-join page: its connectivity check reports UDP
direct failing and TCP direct (ICE-TCP) working, with its round-trip time; she presses Join.
Over ICE-TCP (the worker's passive TCP candidate, mediaserver/tcp.py) she decodes the rep's
video and hears the audio, the rep decodes hers, and both of her connections' selected
candidate pairs are TCP. The control, an open network: the check reports UDP direct working
with its round-trip time (and TCP too), and the same pages take UDP, the TCP candidate's lower
priority leaves it unused."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.support.browser import (
    SELECTED_PAIR,
    WAIT_MS,
    lab_browsers,
    wait_decoding,
    watch_stats,
)
from tests.support.netlab import NetLab
from tests.support.prejoin import join, rep_in_doctor_checked


async def selected_pair(page, which: str) -> dict:
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        pair = await page.evaluate(SELECTED_PAIR, which)
        if pair is not None:
            return pair
        assert time.monotonic() < deadline, f"{which}: no selected candidate pair"
        await asyncio.sleep(0.2)  # getStats is async: polled


async def first_frame(page) -> float:
    """Seconds until the page's first decoded remote video frame."""
    started = time.monotonic()
    await page.wait_for_function("() => window.__inbound && window.__inbound.framesDecoded > 0",
                                 timeout=WAIT_MS, polling=50)
    return time.monotonic() - started


@pytest.mark.parametrize("udp_blocked", [True, False], ids=["udp-blocked", "udp-open"])
async def test_doctor_behind_a_udp_blocking_firewall(tmp_path: Path, udp_blocked: bool) -> None:
    with NetLab() as lab:
        lab.set(block_udp=udp_blocked)
        async with lab_browsers(lab, tmp_path) as (server, here, there):
            await server.create_room("ward")
            rep, doctor, errors, check = await rep_in_doctor_checked(server, here, there)
            udp, tcp = check["paths"]["udp"], check["paths"]["tcp"]
            assert sorted(check["paths"]) == ["tcp", "udp"], check  # no TURN configured
            assert tcp["ok"] and tcp["local"]["protocol"] == tcp["remote"]["protocol"] == "tcp"
            assert tcp["remote"]["address"] == lab.host_ip, tcp
            assert udp["ok"] is not udp_blocked, check
            best = "tcp" if udp_blocked else "udp"
            assert check["state"] == "pass" and check["best"] == best, check
            rtt = check["paths"][best]["rtt"]  # ms, the selected pair's currentRoundTripTime
            assert rtt is not None and rtt >= 0, check
            assert not check["relayOnly"] and check["shownAdvice"] is None, check
            if udp_blocked:
                assert "TCP direct" in check["banner"] and "fail" in check["rows"], check
            else:
                assert udp["local"]["protocol"] == "udp" and "UDP direct" in check["banner"]
            loading = time.monotonic()
            await join(doctor)
            joined = time.monotonic()
            await watch_stats(doctor)
            await first_frame(doctor)
            to_first_frame = time.monotonic() - loading
            # her view: the rep's video decoding and the sound arriving, and it goes on
            first = await wait_decoding(doctor, 30)
            later = await wait_decoding(doctor, first["framesDecoded"] + 30)
            assert later["audioPackets"] > first["audioPackets"], (first, later)
            # the rep sees and hears what she publishes over the same path
            await wait_decoding(rep, 30)
            protocol = "tcp" if udp_blocked else "udp"
            tcp_port = server.state.media.worker.tcp.port  # type: ignore[attr-defined]
            for which in ("publishPc", "subscribePc"):
                pair = await selected_pair(doctor, which)
                assert (pair["local"], pair["remote"]) == (protocol, protocol), (which, pair)
                assert pair["remoteAddress"] == lab.host_ip, pair
                if udp_blocked:  # Chromium's active TCP candidate to our passive one
                    assert pair["tcpType"] == "active" and pair["remotePort"] == tcp_port, pair
            # the server's side: the doctor's two transports on TCP (or UDP), the rep's on UDP
            dump = await server.state.media.dump()
            paths = sorted(t.protocol for t in dump.transports)
            assert paths == sorted([protocol, protocol, "udp", "udp"]), paths
            stats = await server.state.media.stats()
            if udp_blocked:
                assert lab.counters()["up_blocked"] > 0  # she did try UDP first
                assert stats["tcp_frames_in"] > 0 and stats["tcp_frames_out"] > 0, stats
            assert stats.get("tcp_send_dropped", 0) == 0, stats
            assert not errors, errors
            print(f"\n{protocol}: check took {check['tookMs']:.0f} ms: {check['rows']!r}; "
                  f"joined {joined - loading:.2f} s after pressing Join, first frame at "
                  f"{to_first_frame:.2f} s (to 200 ms), rtt {pair['rtt']}, TCP connections "
                  f"{stats.get('tcp_connections')}")
