"""A coturn (Debian package `coturn`) of one test: TURN with the REST API's shared secret.

`turn_server(host)` writes a temporary turnserver.conf (use-auth-secret, a random
static-auth-secret, listening and relaying on `host` only, a free port, no TLS, DTLS, CLI or
user database outside the temporary directory), starts `turnserver` under `timeout` (so a
killed test run leaves no relay behind for long), waits until its TCP listener answers and
stops it by its PID at the end. `host` is 127.0.0.1 or a NetLab's host address. With
`tls=True` also TURN over TLS with a self-signed certificate (needs the `openssl` command).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import free_port

TURNSERVER = "turnserver"
LIFETIME_S = 600  # the relay exits by itself after this, whatever happens to the test
START_WAIT_S = 10.0


@dataclass
class TurnServer:
    host: str
    port: int
    secret: str
    realm: str
    log: Path

    tls_port: int | None = None
    cert: Path | None = None  # the self-signed certificate of tls_port (subjectAltName: host)

    def url(self, transport: str = "tcp") -> str:
        return f"turn:{self.host}:{self.port}?transport={transport}"

    def tls_url(self) -> str:
        return f"turns:{self.host}:{self.tls_port}?transport=tcp"

    def trust_flag(self) -> str:
        """A Chromium flag that accepts this server's self-signed TLS certificate, and only it
        (by the SHA-256 of its public key)."""
        assert self.cert is not None, "a TurnServer started with tls=True"
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-pubkey", "-noout"],
                             check=True, capture_output=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=der,
                             check=True, capture_output=True).stdout
        spki = base64.b64encode(hashlib.sha256(der).digest()).decode()
        return f"--ignore-certificate-errors-spki-list={spki}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _config(host: str, port: int, secret: str, realm: str, work: Path,
            tls_port: int | None) -> str:
    tls = ([f"tls-listening-port={tls_port}", f"cert={work / 'cert.pem'}",
            f"pkey={work / 'key.pem'}"] if tls_port else ["no-tls"])
    return "\n".join([
        f"listening-ip={host}",
        f"listening-port={port}",
        *tls,
        f"relay-ip={host}",
        f"external-ip={host}",
        "min-port=49152", "max-port=65535",
        "use-auth-secret",
        f"static-auth-secret={secret}",
        f"realm={realm}",
        "fingerprint",
        "no-dtls", "no-cli", "no-rfc5780", "no-stun-backward-compatibility",
        "allow-loopback-peers",  # the media server may be on 127.0.0.1 in a test
        "no-multicast-peers",
        f"userdb={work / 'turndb'}",
        f"pidfile={work / 'turnserver.pid'}",
        f"log-file={work / 'turn.log'}", "simple-log", "no-stdout-log",
        "max-allocate-lifetime=600",
        "",
    ])


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _self_signed(host: str, work: Path) -> Path:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-keyout", str(work / "key.pem"), "-out", str(work / "cert.pem"),
                    "-subj", "/CN=turn.test", "-addext", f"subjectAltName=IP:{host}"],
                   check=True, capture_output=True)
    return work / "cert.pem"


@contextmanager
def turn_server(host: str = "127.0.0.1", tls: bool = False) -> Iterator[TurnServer]:
    """`tls`: also TURN over TLS (turns:) on a port of its own, with a self-signed certificate
    for `host` (TurnServer.cert)."""
    binary = shutil.which(TURNSERVER)
    assert binary, "coturn is not installed (Debian package coturn: make test-setup)"
    work = Path(tempfile.mkdtemp(prefix="turn-"))
    port = free_port()
    tls_port = free_port() if tls else None
    secret = secrets.token_urlsafe(24)
    realm = "mediaserver.test"
    cert = _self_signed(host, work) if tls else None
    conf = work / "turnserver.conf"
    conf.write_text(_config(host, port, secret, realm, work, tls_port))
    server = TurnServer(host, port, secret, realm, work / "turn.log", tls_port, cert)
    process = subprocess.Popen(["timeout", "--signal=KILL", str(LIFETIME_S), binary,
                                "-c", str(conf)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + START_WAIT_S
        while not all(_listening(host, p) for p in (port, tls_port) if p):
            if process.poll() is not None:
                stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise AssertionError(f"turnserver exited ({process.returncode}): {stderr}\n"
                                     f"{server.log_text()}")
            assert time.monotonic() < deadline, f"turnserver not listening:\n{server.log_text()}"
            time.sleep(0.05)
        yield server
    finally:
        if process.poll() is None:
            # its own session (start_new_session): timeout and turnserver, by the group's id,
            # which is timeout's PID
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(work, ignore_errors=True)
