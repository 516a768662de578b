"""A client behind an emulated link, in network namespaces this test creates and removes.

    client namespace            middle namespace (netfwd.py)           this namespace
    <name>c: <name>c0 ==veth== <name>m0   [delay, loss, UDP block]   <name>m1 ==veth== <name>h0
             10.<a>.<b>.2/24              tbf on m0 (down), m1 (up)              10.<a>.<b>.1/24

The client and this namespace share one Ethernet segment through the middle, so the server
binds to `lab.host_ip` and announces it; programs run in the client namespace through
`lab.run([...])` / `lab.command([...])` (ip netns exec). Rate is tc tbf (this kernel has no
netem); delay, loss and UDP blocking are the forwarder's, changed at run time with
`lab.set(...)`. Every namespace of a lab is deleted when it closes, and leftovers of a killed
run (their creator no longer alive) when the next lab opens. Needs root, iproute2 and ethtool.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PREFIX = "nl"
ROOT = Path(__file__).resolve().parents[2]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def _in(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *args]


def remove_leftovers() -> None:
    """Namespaces of labs whose process is gone (a killed run)."""
    for line in _ip("netns", "list").stdout.splitlines():
        match = re.match(rf"({PREFIX}(\d+)x[0-9a-f]+[cm])\b", line)
        if match and not Path(f"/proc/{match.group(2)}").exists():
            _ip("netns", "del", match.group(1), check=False)


class NetLab:
    def __init__(self) -> None:
        self.name = f"{PREFIX}{os.getpid()}x{secrets.token_hex(2)}"  # <= 15 chars with "c0"
        if len(self.name) > 13:
            self.name = f"{PREFIX}{os.getpid() % 100000}x{secrets.token_hex(1)}"
        a, b = 100 + secrets.randbelow(100), secrets.randbelow(250) + 1
        self.host_ip, self.client_ip = f"10.{a}.{b}.1", f"10.{a}.{b}.2"
        self.client_ns, self.middle_ns = f"{self.name}c", f"{self.name}m"
        self._forwarder: subprocess.Popen | None = None
        self._dir = tempfile.mkdtemp(prefix="netlab-")
        self._control = os.path.join(self._dir, "control.sock")

    # ---- lifecycle ----------------------------------------------------------------------

    def open(self) -> NetLab:
        remove_leftovers()
        n, c, m = self.name, self.client_ns, self.middle_ns
        try:
            _ip("netns", "add", c)
            _ip("netns", "add", m)
            # IPv4 only: an IPv6 link-local address finishing its duplicate detection a second
            # after the link came up is a network change to the client's Chromium, which then
            # aborts the page it is loading (net::ERR_NETWORK_CHANGED, seen in CI)
            for ns in (c, m):
                subprocess.run(_in(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                                   "net.ipv6.conf.default.disable_ipv6=1"),
                               check=True, capture_output=True)
            _ip("link", "add", f"{n}c0", "type", "veth", "peer", "name", f"{n}m0")
            _ip("link", "add", f"{n}h0", "type", "veth", "peer", "name", f"{n}m1")
            _ip("link", "set", f"{n}c0", "netns", c)
            _ip("link", "set", f"{n}m0", "netns", m)
            _ip("link", "set", f"{n}m1", "netns", m)
            _ip("addr", "add", f"{self.host_ip}/24", "dev", f"{n}h0")
            _ip("link", "set", f"{n}h0", "up")
            _ip("-n", c, "addr", "add", f"{self.client_ip}/24", "dev", f"{n}c0")
            for ns, dev in ((c, f"{n}c0"), (c, "lo"), (m, f"{n}m0"), (m, f"{n}m1")):
                _ip("-n", ns, "link", "set", dev, "up")
            # Frames pass a userspace forwarder: checksums must be real, not left to offload
            # (TCP through it breaks otherwise).
            for ns, dev in ((None, f"{n}h0"), (c, f"{n}c0"), (m, f"{n}m0"), (m, f"{n}m1")):
                command = ["ethtool", "-K", dev, "tx", "off", "rx", "off", "tso", "off",
                           "gso", "off", "gro", "off"]
                subprocess.run(_in(ns, *command) if ns else command, check=True,
                               capture_output=True)
            self._forwarder = subprocess.Popen(
                _in(m, sys.executable, "-m", "tests.support.netfwd", f"{n}m0", f"{n}m1",
                    self._control), cwd=ROOT, stdout=subprocess.PIPE, text=True)
            assert self._forwarder.stdout is not None
            if self._forwarder.stdout.readline().strip() != "ready":
                raise RuntimeError("the link forwarder did not start")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._forwarder is not None:
            self._forwarder.kill()
            self._forwarder.wait()
            self._forwarder = None
        for ns in (self.client_ns, self.middle_ns):
            _ip("netns", "del", ns, check=False)  # their veths go with them (h0 with m1)
        _ip("link", "del", f"{self.name}h0", check=False)
        with contextlib.suppress(OSError):
            os.unlink(self._control)
            os.rmdir(self._dir)

    def __enter__(self) -> NetLab:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the link -----------------------------------------------------------------------

    def set(self, **settings: Any) -> dict[str, Any]:
        """Delay, loss, UDP blocking, TCP blocking by port (`block_tcp_ports=[40000]`), both
        ways or one ("down_loss": towards the client);
        returns the forwarder's counters (forwarded, dropped, blocked, max lateness)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        reply_path = os.path.join(self._dir, f"reply-{secrets.token_hex(3)}.sock")
        sock.bind(reply_path)
        try:
            sock.settimeout(5)
            sock.sendto(json.dumps(settings).encode(), self._control)
            return json.loads(sock.recv(65536))
        finally:
            sock.close()
            os.unlink(reply_path)

    def counters(self) -> dict[str, Any]:
        return self.set()

    def rate(self, down_kbit: int | None = None, up_kbit: int | None = None,
             queue_bytes: int = 20_000) -> None:
        """tbf on the middle's interfaces; None removes the limit of that direction."""
        for dev, kbit in ((f"{self.name}m0", down_kbit), (f"{self.name}m1", up_kbit)):
            if kbit is None:
                subprocess.run(_in(self.middle_ns, "tc", "qdisc", "del", "dev", dev, "root"),
                               capture_output=True)
                continue
            burst = max(1600, kbit * 1000 // 8 // 100)  # ~10 ms of the rate
            subprocess.run(_in(self.middle_ns, "tc", "qdisc", "replace", "dev", dev, "root",
                               "tbf", "rate", f"{kbit}kbit", "burst", str(burst),
                               "limit", str(queue_bytes)), check=True, capture_output=True)

    # ---- programs in the client's namespace ---------------------------------------------

    def command(self, argv: list[str]) -> list[str]:
        return _in(self.client_ns, *argv)

    def run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(argv), capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)

    def python(self, code: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.run([sys.executable, "-c", code], timeout=timeout)

