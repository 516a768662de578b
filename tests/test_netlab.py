"""The emulated link of tests/support/netlab.py does what weak-link and firewall tests rely on:
delay, loss, UDP blocked with TCP open, and a rate limit, each measured through it."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest

from tests.support.netlab import NetLab, _ip


@pytest.fixture
def lab():
    with NetLab() as lab:
        yield lab
    assert lab.client_ns not in _ip("netns", "list").stdout  # nothing left behind


def udp_echo(host: str) -> tuple[socket.socket, threading.Thread]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(0.2)

    def serve() -> None:
        while True:
            try:
                data, addr = sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            if data == b"stop":
                return
            sock.sendto(data, addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return sock, thread


# Runs in the client's namespace: sends `count` numbered datagrams, prints how many came back.
ECHO_CLIENT = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # read only after sending all
s.settimeout(0.5)
target = ("{host}", {port})
for i in range({count}):
    s.sendto(str(i).encode(), target)
    time.sleep(0.002)
seen = set()
try:
    while True:
        seen.add(int(s.recv(100)))
except (TimeoutError, OSError):
    pass
print(len(seen))
"""


def echoed(lab: NetLab, port: int, count: int) -> int:
    result = lab.python(ECHO_CLIENT.format(host=lab.host_ip, port=port, count=count))
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


def test_clean_link_passes_everything(lab: NetLab) -> None:
    sock, thread = udp_echo(lab.host_ip)
    try:
        assert echoed(lab, sock.getsockname()[1], 300) == 300
    finally:
        sock.sendto(b"stop", sock.getsockname())
        thread.join(2)
        sock.close()


RTT_CLIENT = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
for i in range(8):
    start = time.monotonic()
    s.sendto(str(i).encode(), ("{host}", {port}))
    while int(s.recv(100)) != i:
        pass
    print(round((time.monotonic() - start) * 1000, 2))
"""


def test_delay_is_added_each_way(lab: NetLab) -> None:
    lab.set(delay_ms=40)
    sock, thread = udp_echo(lab.host_ip)
    try:
        result = lab.python(RTT_CLIENT.format(host=lab.host_ip, port=sock.getsockname()[1]))
    finally:
        sock.sendto(b"stop", sock.getsockname())
        thread.join(2)
        sock.close()
    assert result.returncode == 0, result.stderr
    first, *rtts = [float(x) for x in result.stdout.split()]
    assert len(rtts) == 7 and first >= 160  # the first also waited for ARP, delayed the same
    # 40 ms each way; the forwarder's own lateness stays small (reported for the record)
    late = lab.counters()["max_late_ms"]
    assert min(rtts) >= 80 and max(rtts) <= 80 + 2 * late + 20, (rtts, late)


def test_loss_drops_about_that_fraction(lab: NetLab) -> None:
    lab.set(loss=0.2)
    sock, thread = udp_echo(lab.host_ip)
    try:
        back = echoed(lab, sock.getsockname()[1], 1000)
    finally:
        sock.sendto(b"stop", sock.getsockname())
        thread.join(2)
        sock.close()
    # a round trip survives with 0.8 * 0.8 = 0.64; 1000 tries: within +-6 percentage points
    assert 580 <= back <= 700, back
    counters = lab.counters()
    assert counters["up_dropped"] > 100 and counters["down_dropped"] > 60


def test_udp_blocked_while_tcp_passes(lab: NetLab) -> None:
    lab.set(block_udp=True)
    sock, thread = udp_echo(lab.host_ip)
    server = socket.create_server((lab.host_ip, 0))
    server.settimeout(10)
    try:
        assert echoed(lab, sock.getsockname()[1], 50) == 0
        code = (f"import socket; s = socket.create_connection(('{lab.host_ip}', "
                f"{server.getsockname()[1]}), timeout=5); s.sendall(b'x' * 100000); s.close()")
        client = subprocess.Popen(lab.command(["python3", "-c", code]))
        conn, _ = server.accept()
        received = 0
        conn.settimeout(10)
        while chunk := conn.recv(65536):
            received += len(chunk)
        conn.close()
        assert client.wait(10) == 0 and received == 100000
        assert lab.counters()["up_blocked"] >= 50
    finally:
        sock.sendto(b"stop", sock.getsockname())
        thread.join(2)
        sock.close()
        server.close()


def test_rate_limit_caps_what_reaches_the_client(lab: NetLab) -> None:
    lab.rate(down_kbit=400)
    port_code = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 0))
print(s.getsockname()[1], flush=True)
s.settimeout(1.0)
total, first, last = 0, None, None
try:
    while True:
        n = len(s.recv(2048))
        last = time.monotonic()
        first = first or last
        total += n
except TimeoutError:
    pass
print(total, (last or 0) - (first or 0), flush=True)
"""
    receiver = subprocess.Popen(lab.command(["python3", "-c", port_code]),
                                stdout=subprocess.PIPE, text=True)
    assert receiver.stdout is not None
    port = int(receiver.stdout.readline())
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = b"\0" * 1000
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < 3.0:  # 2 Mbit/s for 3 s, five times what the link takes
        sender.sendto(payload, (lab.client_ip, port))
        sent += 1
        time.sleep(0.004)
    sender.close()
    total, span = receiver.stdout.readline().split()
    receiver.wait(10)
    kbit = int(total) * 8 / 1000 / float(span)
    assert sent * 1000 > 4 * int(total)  # most of it was dropped at the bottleneck
    assert 300 <= kbit <= 480, kbit
