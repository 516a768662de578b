"""Forwarding cost of the packet path alone, inside one process.

A real Worker with real SRTP contexts and a real UDP socket: one publisher transport and N
subscriber transports whose sends go to a local sink socket. Protected packets are handed to
`Worker.datagram_received` directly, so what is measured is everything from demultiplexing to
`sendto` (SRTP unprotect, producer bookkeeping, per-consumer rewrite, protect, send), without
the kernel's receive. Reports forwarded packets per CPU-second for several fan-outs, and
optionally the top functions from cProfile.

With `--transport tcp` the subscribers are ICE-TCP connections instead (mediaserver/tcp.py: one
framed write per copy where UDP sends a fan-out in one sendmmsg), drained by a child process
so that the kernel's buffers never fill and nothing is dropped.

    python -m benchmarks.packet_path --fanout 1 10 50 --packets 20000 [--profile]
    python -m benchmarks.packet_path --fanout 10 50 --transport tcp

With `--simulcast` the producer declares three encodings and sends the top one as Chromium
does, with VP8 temporal ids (PictureID, TL0PICIDX, TID in the pattern 0 2 1 2); the consumers
are simulcast consumers, forwarding temporal layers up to `--temporal` (default: all).

    python -m benchmarks.packet_path --fanout 10 50 --simulcast [--temporal 0]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import socket
import subprocess
import sys
import time
from pathlib import Path

from mediaserver.config import MediaConfig
from mediaserver.params import Codec, ConsumerParams, Encoding, ProducerParams
from mediaserver.rtp.packet import build_packet
from mediaserver.srtp import PROFILES, make_pair
from mediaserver.worker import Worker

VP8 = Codec("VP8", 96, 90000, rtx_payload_type=97, nack=True, pli=True)
PAYLOAD_SIZES = (1100, 1100, 1100, 1100, 600)  # a 1.2 Mbps-ish frame in 5 packets
TEMPORAL_PATTERN = (0, 2, 1, 2)  # libwebrtc's three temporal layers
# The ICE-TCP subscribers' side, in a process of its own: N connections, read until closed.
DRAIN = """
import selectors, socket, sys
sel = selectors.DefaultSelector()
for _ in range(int(sys.argv[2])):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
while sel.get_map():
    for key, _ in sel.select(10):
        try:
            data = key.fileobj.recv(1 << 20)
        except BlockingIOError:
            continue
        if not data:
            sel.unregister(key.fileobj)
"""


def _connect(worker: Worker, transport_id: str, addr: tuple, profile: bytes) -> bytes:
    """Give a transport the SRTP keys a DTLS handshake would have; returns the material."""
    material = os.urandom(2 * (16 + 14))
    worker.transports[transport_id].set_connected(addr, make_pair(profile, material,
                                                                  is_server=True))
    return material


async def _tcp_subscribers(worker: Worker, count: int) -> tuple[subprocess.Popen, list]:
    """`count` ICE-TCP connections from a draining child process, as the worker accepted
    them (each marked as checked, as an authenticated STUN check would)."""
    assert worker.tcp is not None
    drain = subprocess.Popen([sys.executable, "-c", DRAIN, str(worker.tcp.port), str(count)])
    deadline = time.monotonic() + 10
    while len(worker.tcp.connections) < count:
        if time.monotonic() > deadline or drain.poll() is not None:
            raise RuntimeError("the draining process did not connect")
        await asyncio.sleep(0.01)
    conns = sorted(worker.tcp.connections, key=lambda c: c.addr[3])  # type: ignore[index]
    for conn in conns:
        conn.bind(True)
    return drain, [conn.addr for conn in conns]


def _vp8_payload(seq: int, size: int, temporal: bool) -> bytes:
    """Packet `seq` of a stream of 5-packet frames; with `temporal`, RFC 7741 descriptors with
    a 15-bit PictureID, TL0PICIDX and TID (Y on the first TL1/TL2 frames of every 8th cycle)."""
    frame, first = seq // 5, seq % 5 == 0
    if temporal:
        tid = TEMPORAL_PATTERN[frame % 4]
        sync = tid > 0 and frame % 32 < 4
        head = bytes((0x90 if first else 0x80, 0xE0, 0x80 | frame >> 8 & 0x7F, frame & 0xFF,
                      (frame + 3) // 4 & 0xFF, tid << 6 | sync << 5))
    else:
        head = b"\x10" if first else b"\x00"
    if first:
        head += b"\x00\x00\x9d\x01\x2a" if seq == 0 else b"\x01\x00"
    return head + b"\x55" * (size - len(head))


async def measure(fanout: int, packets: int, profile_name: bytes,
                  profiler: cProfile.Profile | None = None,
                  transport: str = "udp", simulcast: bool = False,
                  temporal: int = -1) -> dict[str, float]:
    worker = Worker(MediaConfig(port=0))
    await worker.start()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    drain, tcp_addrs = (await _tcp_subscribers(worker, fanout) if transport == "tcp"
                        else (None, []))
    try:
        router = worker.create_router()
        pub = worker.create_transport(router).id
        pub_addr = ("127.0.0.1", 1)  # never sent to: the publisher only sends
        material = _connect(worker, pub, pub_addr, profile_name)
        client = make_pair(profile_name, material, is_server=False)  # the publisher's side
        # simulcast: the top of three encodings is the one sent (1111)
        encodings = ([Encoding(rid, ssrc) for rid, ssrc in zip("qhf", (1109, 1110, 1111),
                                                               strict=True)]
                     if simulcast else [])
        producer = worker.produce(pub, ProducerParams("video", "0", VP8,
                                                      ssrc=None if simulcast else 1111,
                                                      encodings=encodings))
        for i in range(fanout):
            sub = worker.create_transport(router).id
            _connect(worker, sub, tcp_addrs[i] if tcp_addrs else sink.getsockname(),
                     profile_name)
            consumer = worker.consume(sub, producer, ConsumerParams(str(i), VP8, ssrc=5000 + i))
            if simulcast and temporal >= 0:
                worker.set_preferred_layers(consumer.id, 2, temporal)
        # pre-protect the publisher's packets; the first is a keyframe so consumers start
        sent = []
        for seq in range(packets):
            payload = _vp8_payload(seq, PAYLOAD_SIZES[seq % len(PAYLOAD_SIZES)], simulcast)
            sent.append(client.protect(build_packet(96, seq & 0xFFFF, (seq // 5) * 3000, 1111,
                                                    payload, seq % 5 == 4)))
        receive = worker.datagram_received
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        for i, data in enumerate(sent):
            receive(data, pub_addr)
            if i % 200 == 199:
                await asyncio.sleep(0)  # let the loop flush sends and run timers, as in service
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        forwarded = sum(c.packets for c in worker.consumers.values())
        tcp = worker.tcp.counters() if worker.tcp is not None else {}
        return {"transport": transport, "simulcast": simulcast, "temporal": temporal,
                "fanout": fanout, "packets_in": packets,
                "forwarded": forwarded, "tcp_send_dropped": tcp.get("tcp_send_dropped", 0),
                "cpu_seconds": round(cpu, 3), "wall_seconds": round(wall, 3),
                "forwarded_per_cpu_second": round(forwarded / cpu),
                "us_per_forwarded_packet": round(cpu / forwarded * 1e6, 2),
                "errors": worker.errors}
    finally:
        sink.close()
        await worker.stop()  # closes the TCP connections: the draining process ends
        if drain is not None:
            try:
                drain.wait(10)
            except subprocess.TimeoutExpired:
                drain.kill()
                drain.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.packet_path")
    parser.add_argument("--fanout", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--profile", action="store_true", help="print the top cProfile costs")
    parser.add_argument("--srtp", choices=[p.openssl_name.decode() for p in PROFILES],
                        default=PROFILES[0].openssl_name.decode())
    parser.add_argument("--transport", choices=["udp", "tcp"], default="udp",
                        help="the subscribers' transport: UDP, or ICE-TCP connections")
    parser.add_argument("--simulcast", action="store_true",
                        help="three declared encodings, the top one sent with VP8 temporal ids")
    parser.add_argument("--temporal", type=int, default=-1,
                        help="with --simulcast: the consumers' temporal layer (default: all)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    rows = []
    for fanout in args.fanout:
        profiler = cProfile.Profile() if args.profile else None
        row = asyncio.run(measure(fanout, args.packets, args.srtp.encode(), profiler,
                                  args.transport, args.simulcast, args.temporal))
        rows.append(row)
        print(json.dumps(row))
        if profiler:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
            print(out.getvalue())
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "packet_path" + ("" if args.transport == "udp" else "_tcp") + (
        "_simulcast" if args.simulcast else "")
    (out_dir / f"{name}.json").write_text(json.dumps(
        {"srtp": args.srtp, "transport": args.transport, "cpu": os.cpu_count(), "rows": rows},
        indent=2))
    lines = ["| fan-out | forwarded | CPU s | forwarded / CPU-s | µs / forwarded packet |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['fanout']} | {r['forwarded']} | {r['cpu_seconds']} | "
              f"{r['forwarded_per_cpu_second']:,} | {r['us_per_forwarded_packet']} |"
              for r in rows]
    (out_dir / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
