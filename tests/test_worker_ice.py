"""The Worker's ICE-lite side over real UDP sockets: checks, nomination, address change,
consent freshness (RFC 7675)."""

from __future__ import annotations

import asyncio
import socket

from aioice import stun

from mediaserver.config import MediaConfig
from mediaserver.params import RemoteParams
from mediaserver.worker import Worker


class Peer:
    """A bare STUN client on its own UDP socket, acting as the controlling agent."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.addr = self.sock.getsockname()

    async def check(self, worker: Worker, ufrag: str, pwd: str, nominate: bool,
                    remote_ufrag: str = "peer") -> stun.Message:
        request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        request.attributes["USERNAME"] = f"{ufrag}:{remote_ufrag}"
        request.attributes["PRIORITY"] = 1853824767
        request.attributes["ICE-CONTROLLING"] = 1
        if nominate:
            request.attributes["USE-CANDIDATE"] = None
        request.add_message_integrity(pwd.encode())
        self.sock.sendto(bytes(request), ("127.0.0.1", worker.port))
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 2048), 5)
        response = stun.parse_message(data)
        assert response.transaction_id == request.transaction_id
        return response

    def close(self) -> None:
        self.sock.close()


async def started_worker(**config) -> Worker:
    worker = Worker(MediaConfig(host="127.0.0.1", port=0, **config))
    await worker.start()
    return worker


async def test_checks_answered_and_nomination_moves_address() -> None:
    worker = await started_worker()
    a, b = Peer(), Peer()
    try:
        info = worker.create_transport(worker.create_router())
        transport = worker.transports[info.id]
        worker.connect_transport(info.id, RemoteParams("peer", "x" * 22, [("sha-256", "AA")],
                                                       "server"))
        ok = await a.check(worker, info.ice_ufrag, info.ice_pwd, nominate=False)
        assert ok.message_class == stun.Class.RESPONSE
        assert ok.attributes["XOR-MAPPED-ADDRESS"] == a.addr
        assert ok.check_message_integrity(info.ice_pwd.encode())
        assert transport.addr == a.addr  # the only validated address so far

        await b.check(worker, info.ice_ufrag, info.ice_pwd, nominate=False)
        assert transport.addr == a.addr  # not nominated: media stays where it was
        await b.check(worker, info.ice_ufrag, info.ice_pwd, nominate=True)
        assert transport.addr == b.addr  # a new nominated pair (network change)

        bad = await a.check(worker, info.ice_ufrag, "wrong-password-xxxxxxxx", nominate=True)
        assert bad.message_class == stun.Class.ERROR
        assert bad.attributes["ERROR-CODE"][0] == 401
        assert transport.addr == b.addr
        wrong_peer = await a.check(worker, info.ice_ufrag, info.ice_pwd, nominate=True,
                                   remote_ufrag="someone-else")
        assert wrong_peer.message_class == stun.Class.ERROR
    finally:
        a.close()
        b.close()
        await worker.stop()


async def test_ice_restart_changes_credentials() -> None:
    worker = await started_worker()
    peer = Peer()
    try:
        info = worker.create_transport(worker.create_router())
        await peer.check(worker, info.ice_ufrag, info.ice_pwd, nominate=True)
        new = worker.restart_ice(info.id)
        assert (new.ice_ufrag, new.ice_pwd) != (info.ice_ufrag, info.ice_pwd)
        ok = await peer.check(worker, new.ice_ufrag, new.ice_pwd, nominate=True)
        assert ok.message_class == stun.Class.RESPONSE
        dropped = worker.dropped
        request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        request.attributes["USERNAME"] = f"{info.ice_ufrag}:peer"
        request.add_message_integrity(info.ice_pwd.encode())
        peer.sock.sendto(bytes(request), ("127.0.0.1", worker.port))
        await asyncio.wait_for(_until(lambda: worker.dropped > dropped), 5)
    finally:
        peer.close()
        await worker.stop()


async def _until(predicate) -> None:
    """Yield to the loop until the worker has handled what was sent (loopback is immediate)."""
    while not predicate():
        await asyncio.sleep(0.01)


async def test_consent_expiry_closes_silent_transport() -> None:
    worker = await started_worker(consent_timeout=1.0)
    peer = Peer()
    closed: asyncio.Future = asyncio.get_running_loop().create_future()
    worker.transport_closed_listeners.append(
        lambda tid, reason: closed.done() or closed.set_result((tid, reason)))
    try:
        router = worker.create_router()
        silent = worker.create_transport(router)
        await peer.check(worker, silent.ice_ufrag, silent.ice_pwd, nominate=True)
        tid, reason = await asyncio.wait_for(closed, 5)
        assert tid == silent.id and "consent" in reason
        assert silent.id not in worker.transports
    finally:
        peer.close()
        await worker.stop()


async def test_transport_that_never_connected_outlives_consent_periods() -> None:
    """Consent freshness is for connections that were up: a transport nobody has checked yet
    (a subscriber with nothing to receive, a client still setting up) is never expired."""
    worker = await started_worker(consent_timeout=0.5)
    peer = Peer()
    closed: asyncio.Queue = asyncio.Queue()
    worker.transport_closed_listeners.append(lambda tid, reason: closed.put_nowait((tid, reason)))
    try:
        router = worker.create_router()
        waiting = worker.create_transport(router)
        for _ in range(4):  # four consent periods, each ended by a checked transport expiring
            checked = worker.create_transport(router)
            await peer.check(worker, checked.ice_ufrag, checked.ice_pwd, nominate=True)
            assert await asyncio.wait_for(closed.get(), 5) == (checked.id, "ice consent expired")
            assert waiting.id in worker.transports
        # and once its peer does connect, the ordinary rule applies to it too
        await peer.check(worker, waiting.ice_ufrag, waiting.ice_pwd, nominate=True)
        assert await asyncio.wait_for(closed.get(), 5) == (waiting.id, "ice consent expired")
    finally:
        peer.close()
        await worker.stop()
