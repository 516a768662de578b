"""A link emulator between two interfaces: `python -m tests.support.netfwd LEFT RIGHT CONTROL`.

Runs inside the middle namespace of a NetLab (netlab.py) and forwards every Ethernet frame
between the two interfaces through AF_PACKET sockets: this kernel has no netem, so delay, loss
and "UDP blocked" are done here, in userspace; rate is tc tbf on the interfaces themselves
(frames written to a packet socket pass the device's qdisc).

Per direction: `delay_ms` (each frame held until its due time), `loss` (a fraction of IPv4
frames dropped at random; ARP always passes so the link stays up), and `block_udp` (every
IPv4 UDP frame dropped, TCP and ICMP pass: a firewall that blocks UDP) and `block_tcp_ports`
(IPv4 TCP frames from or to one of these ports dropped: a firewall that lets TCP out only to
some ports). Changed at run time by JSON datagrams on the Unix socket CONTROL: {"delay_ms": 50,
"loss": 0.05, "block_udp": false, "block_tcp_ports": [40000]} (keys optional, "up"/"down"
prefixes for one direction: "down_loss"), answered with the counters. Prints "ready" once
forwarding.
"""

from __future__ import annotations

import heapq
import json
import os
import random
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # sll_pkttype of frames this host sent: our own writes, never forwarded
ETHERTYPE_IPV4 = b"\x08\x00"
IPPROTO_UDP = 17
IPPROTO_TCP = 6


def _open(interface: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((interface, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setblocking(False)
    return sock


class Direction:
    """One way through the link (down: right -> left, towards the client)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.delay = 0.0
        self.loss = 0.0
        self.block_udp = False
        self.block_tcp_ports: frozenset[int] = frozenset()
        self.forwarded = self.dropped = self.blocked = 0

    def verdict(self, frame: bytes, rng: random.Random) -> bool:
        """True: forward the frame."""
        if frame[12:14] != ETHERTYPE_IPV4 or len(frame) < 34:
            return True
        if self.block_udp and frame[23] == IPPROTO_UDP:
            self.blocked += 1
            return False
        if self.block_tcp_ports and frame[23] == IPPROTO_TCP:
            start = 14 + (frame[14] & 0x0F) * 4  # the TCP header, after the IP options
            ports = frame[start:start + 4]
            if len(ports) == 4 and (int.from_bytes(ports[:2], "big") in self.block_tcp_ports
                                    or int.from_bytes(ports[2:], "big") in self.block_tcp_ports):
                self.blocked += 1
                return False
        if self.loss and rng.random() < self.loss:
            self.dropped += 1
            return False
        return True


def _configure(directions: dict[str, Direction], settings: dict) -> None:
    for key, value in settings.items():
        for name, direction in directions.items():
            field = key[len(name) + 1:] if key.startswith(name + "_") else key
            if field == "delay_ms":
                direction.delay = float(value) / 1000
            elif field == "loss":
                direction.loss = float(value)
            elif field == "block_udp":
                direction.block_udp = bool(value)
            elif field == "block_tcp_ports":
                direction.block_tcp_ports = frozenset(int(port) for port in value or ())


def main() -> None:
    left_name, right_name, control_path = sys.argv[1:4]
    try:  # a link keeps its timing when the machine is busy (tests run as root)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except (OSError, AttributeError):
        pass
    left, right = _open(left_name), _open(right_name)
    control = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if os.path.exists(control_path):
        os.unlink(control_path)
    control.bind(control_path)
    control.setblocking(False)
    up, down = Direction("up"), Direction("down")
    directions = {"up": up, "down": down}
    routes = {left.fileno(): (left, right, up), right.fileno(): (right, left, down)}
    rng = random.Random(int(os.environ.get("NETFWD_SEED", "1")))
    queue: list[tuple[float, int, socket.socket, bytes]] = []
    order = 0
    max_late = 0.0
    print("ready", flush=True)
    while True:
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            due, _, out, frame = heapq.heappop(queue)
            max_late = max(max_late, now - due)
            try:
                out.send(frame)
            except OSError:
                pass  # the qdisc is full (tbf) or the peer went away: a lost frame, as on a link
        timeout = max(0.0, queue[0][0] - now) if queue else 1.0
        readable, _, _ = select.select([left, right, control], [], [], timeout)
        now = time.monotonic()
        for sock in readable:
            if sock is control:
                try:
                    data, sender = control.recvfrom(4096)
                except OSError:
                    continue
                _configure(directions, json.loads(data or b"{}"))
                reply = {"max_late_ms": round(max_late * 1000, 2)}
                for name, d in directions.items():
                    reply.update({f"{name}_forwarded": d.forwarded, f"{name}_dropped": d.dropped,
                                  f"{name}_blocked": d.blocked})
                if sender:
                    try:
                        control.sendto(json.dumps(reply).encode(), sender)
                    except OSError:
                        pass
                continue
            source, out, direction = routes[sock.fileno()]
            for _ in range(256):  # drain what is there, then look at the heap again
                try:
                    frame, address = source.recvfrom(65535)
                except BlockingIOError:
                    break
                if address[2] == PACKET_OUTGOING or not direction.verdict(frame, rng):
                    continue
                direction.forwarded += 1
                if direction.delay:
                    order += 1
                    heapq.heappush(queue, (now + direction.delay, order, out, frame))
                else:
                    try:
                        out.send(frame)
                    except OSError:
                        pass


if __name__ == "__main__":
    main()
