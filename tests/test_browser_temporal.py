"""Browser end to end: Chromium publishes its camera in three VP8 encodings, each with
temporal layers (libwebrtc's default: three); asking a consumer for temporal layer 0 through
the control call drops the other page's decoded frame rate to a quarter to a half with the
picture still going (no gap over half a second between shown frames), across a switch of
encoding too, and asking for all of them again brings the rate back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.browser import chromium, wait_decoding
from tests.support.server import running_server
from tests.test_browser_simulcast import join_pages

# The subscribe connection's inbound video, as the page decodes it.
VIDEO_IN = """async () => {
  const stats = await window.__meeting.subscribePc.getStats();
  let out = null;
  stats.forEach(s => {
    if (s.type === 'inbound-rtp' && s.kind === 'video' && s.framesDecoded > 0)
      out = {frames: s.framesDecoded, freezes: s.freezeCount || 0, width: s.frameWidth,
             at: performance.now()};
  });
  if (out) Object.assign(out, {shown: window.__remote.frames, longest: window.__remote.longest,
                               stalls: window.__remote.stalls.slice()});
  return out;
}"""
WINDOW = 4.0  # seconds over which a frame rate is measured
# The frames the page's remote <video> shows (requestVideoFrameCallback): a stall is a gap over
# STALL_MS between two. (WebRTC's freezeCount is printed, not asserted: it compares each gap
# with a moving average of the last 30, so right after the rate falls to a quarter every
# TL0 interval reads as a freeze until the average catches up.)
STALL_MS = 500
SHOWN = f"""() => {{
  if (window.__remote) return;
  const remote = window.__remote = {{frames: 0, stalls: [], longest: 0}};
  const seen = new WeakSet();
  setInterval(() => {{
    const ids = new Set(window.__meeting.subscribePc.getReceivers()
                        .map(r => r.track && r.track.id));
    document.querySelectorAll('video').forEach(v => {{
      const track = v.srcObject && v.srcObject.getVideoTracks()[0];
      if (!track || !ids.has(track.id) || seen.has(v)) return;
      seen.add(v);
      let last = null;
      const frame = (now) => {{
        if (last !== null && now - last > {STALL_MS}) remote.stalls.push(Math.round(now - last));
        if (last !== null) remote.longest = Math.max(remote.longest, Math.round(now - last));
        last = now;
        remote.frames += 1;
        v.requestVideoFrameCallback(frame);
      }};
      v.requestVideoFrameCallback(frame);
    }});
  }}, 100);
}}"""


async def frame_rate(page) -> tuple[float, dict]:
    """Frames decoded per second over WINDOW (a measurement window: nothing to await), and
    the stats at its end."""
    read = f"({VIDEO_IN})()"
    first = await page.evaluate(read)
    await asyncio.sleep(WINDOW)
    last = await page.evaluate(read)
    return (last["frames"] - first["frames"]) / ((last["at"] - first["at"]) / 1000), last


async def alice_and_bob(server, browser, room: str) -> tuple[list, object, list]:
    """Both pages joined and Bob's decoding Alice; his shown frames watched; the two video
    consumers (the worker is in-process)."""
    pages = await join_pages(browser, server.base_url, room)
    bob = pages[1][0]
    await bob.evaluate(SHOWN)
    await wait_decoding(bob, 60)
    consumers = [c for c in server.state.media.worker.consumers.values() if c.kind == "video"]
    assert len(consumers) == 2 and all(c.temporal is not None for c in consumers)
    return pages, bob, consumers


async def test_temporal_layer_0_lowers_the_frame_rate_and_all_layers_restore_it(
        tmp_path: Path) -> None:
    async with running_server(tmp_path / "data", dev=True) as server, chromium() as browser:
        pages, bob, consumers = await alice_and_bob(server, browser, "temporal-room")

        def sent() -> int:
            return sum(c.bytes for c in consumers)

        # What Chromium sends: every frame of its VP8 encodings carries a TID, in the
        # pattern 0 2 1 2 (half the frames TL2, a quarter each TL0 and TL1)
        start = sent()
        before, stats = await frame_rate(bob)
        sent_all = sent() - start
        freezes = stats["freezes"]
        assert stats["shown"] > 0 and stats["stalls"] == [], stats
        for c in consumers:
            tids = list(c.temporal.frames_by_tid)
            print(f"frames per TID {tids}, forwarding TL{c.temporal.current}")
            assert tids[0] > 0 and tids[1] > 0 and tids[2] > 0 and tids[3] == 0, tids
            assert c.temporal.current >= 2 and c.temporal.frames_dropped == 0
        assert before >= 10, before

        for c in consumers:
            await server.state.media.set_preferred_layers(c.id, 2, 0)
        low, _ = await frame_rate(bob)
        dump = await server.state.media.dump()  # down at the next frame
        assert {(d.temporal_layer, d.target_temporal_layer) for d in dump.consumers
                if d.kind == "video"} == {(0, 0)}
        start = sent()
        low2, stats = await frame_rate(bob)  # the picture goes on, at that rate
        print(f"bytes sent at TL0 / at all layers: {(sent() - start) / sent_all:.2f} (a "
              f"window each, the encoders' own rates moving meanwhile)")
        print(f"frame rate {before:.1f} -> {low:.1f}, {low2:.1f} at TL0")
        assert 0.2 * before <= low <= 0.55 * before, (before, low)
        assert 0.2 * before <= low2 <= 0.55 * before, (before, low2)
        assert stats["stalls"] == [], stats
        print(f"WebRTC's freezeCount {freezes} -> {stats['freezes']} as the rate fell")

        # a spatial switch at TL0: PictureID and TL0PICIDX go on from the last sent, and
        # the other page decodes the new encoding at the same low rate
        wide = stats["width"]
        print(f"encodings forwarded at TL0: {[c.spatial_layer for c in consumers]}")
        for c in consumers:
            await server.state.media.set_preferred_layers(c.id, 0, 0)
        for _ in range(100):
            if all(c.spatial_layer == 0 for c in consumers):
                break
            await asyncio.sleep(0.1)
        assert all(c.spatial_layer == 0 for c in consumers)
        low3, stats = await frame_rate(bob)
        print(f"frame rate {low3:.1f} at TL0 of the lowest encoding ({stats['width']} wide, "
              f"{wide} before)")
        assert 0.2 * before <= low3 <= 0.55 * before, (before, low3)
        assert stats["stalls"] == [], stats

        for c in consumers:
            await server.state.media.set_preferred_layers(c.id, 2, 3)
        # up one layer at a time, each at a frame of that layer with Y set (or a keyframe)
        asked = asyncio.get_running_loop().time()
        for _ in range(100):
            if all(c.temporal.current >= 2 for c in consumers):
                break
            await asyncio.sleep(0.1)
        assert all(c.temporal.current >= 2 for c in consumers)
        print(f"back on TL2 within {asyncio.get_running_loop().time() - asked:.1f} s")
        after, stats = await frame_rate(bob)
        print(f"frame rate back to {after:.1f}")
        assert after >= 0.8 * before, (before, after)
        assert stats["stalls"] == [], stats
        print(f"shown {stats['shown']} frames, the longest gap {stats['longest']} ms; WebRTC's "
              f"freezeCount {stats['freezes']}")
        for _, errors in pages:
            assert not errors, errors


async def test_losses_at_temporal_layer_0_are_repaired_through_the_renumbering(
        tmp_path: Path) -> None:
    """Every 5th media packet towards the pages is lost on its way out (after the consumer
    numbered it): Chromium NACKs the output numbers, which at TL0 (three frames in four
    dropped, the offset moving at each) must map back to the right source packets, resent
    with the descriptor as it first went out. A wrong one corrupts or stalls the picture
    (with the mapping or the resend's rewrite broken on purpose, the rate fell to 0.7-1.0 fps
    with gaps of 1.4-3 s, and Chromium asked for keyframes)."""
    async with running_server(tmp_path / "data", dev=True) as server, chromium() as browser:
        pages, bob, consumers = await alice_and_bob(server, browser, "temporal-loss")
        before, _ = await frame_rate(bob)
        lost = 0

        def lossy(consumer):
            # The copies are numbered as ever (the fan-out's C lane, or Python), then left
            # built in the transport's SRTP buffer for the consumer to send, as over TCP (no
            # address for the batch, also after Chromium's checks renew it): the loss is there.
            send, count, transport = consumer.send_built, 0, consumer.transport
            update = transport._update_destination

            def no_batch() -> None:
                update()
                transport.out.c.addrlen = 0
            transport._update_destination = no_batch
            no_batch()

            def send_built(size):
                nonlocal count, lost
                ssrc = int.from_bytes(transport.srtp.tx_view[8:12], "big")  # not encrypted
                if ssrc == consumer.ssrc:  # first sends only: resends go over RTX
                    count += 1
                    if count % 5 == 0:
                        lost += 1
                        return
                send(size)
            consumer.send_built = send_built

        for c in consumers:
            await server.state.media.set_preferred_layers(c.id, 2, 0)
        await frame_rate(bob)  # (the rate falls)
        counts = [(c.nacks_received, c.retransmitted, c.plis_received) for c in consumers]
        for c in consumers:
            lossy(c)
        low, stats = await frame_rate(bob)
        low2, stats = await frame_rate(bob)
        after = [(c.nacks_received, c.retransmitted, c.plis_received) for c in consumers]
        print(f"frame rate {before:.1f} -> {low:.1f}, {low2:.1f} at TL0 with {lost} packets "
              f"lost; (NACKs, resent, PLIs) {counts} -> {after}; the longest gap "
              f"{stats['longest']} ms")
        assert lost >= 15
        for (nacks0, resent0, plis0), (nacks, resent, plis) in zip(counts, after, strict=True):
            assert nacks > nacks0 and resent > resent0
            assert plis == plis0  # every loss repaired: nothing for a keyframe to mend
        assert 0.2 * before <= low2 <= 0.55 * before, (before, low2)
        # a loss at the end of a frame is seen (and NACKed) at the next frame's first packet,
        # a TL0 interval (200 ms) later: gaps up to ~2-3 intervals are the repair itself
        assert [ms for ms in stats["stalls"] if ms > 1000] == [], stats
        for _, errors in pages:
            assert not errors, errors
