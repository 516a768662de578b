"""A lossy UDP relay on loopback: drops a share of datagrams in each direction.

The client is pointed at the relay (its copy of the server's SDP names the relay's port); the
relay opens one upstream socket per client address so the server still sees distinct peers.
"""

from __future__ import annotations

import asyncio
import random


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, relay: LossyRelay, client_addr: tuple) -> None:
        self.relay = relay
        self.client_addr = client_addr
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if self.relay.drop():
            self.relay.dropped_down += 1
            return
        self.relay.forwarded_down += 1
        assert self.relay.transport is not None
        self.relay.transport.sendto(data, self.client_addr)


class LossyRelay(asyncio.DatagramProtocol):
    def __init__(self, server_addr: tuple[str, int], loss: float, seed: int = 7) -> None:
        self.server_addr = server_addr
        self.loss = loss
        self.random = random.Random(seed)
        self.transport: asyncio.DatagramTransport | None = None
        self.upstreams: dict[tuple, _Upstream] = {}
        self.pending: dict[tuple, list[bytes]] = {}
        self.dropped_up = self.dropped_down = 0
        self.forwarded_up = self.forwarded_down = 0

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0))
        return self.transport.get_extra_info("sockname")[1]

    def drop(self) -> bool:
        return self.random.random() < self.loss

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if self.drop():
            self.dropped_up += 1
            return
        upstream = self.upstreams.get(addr)
        if upstream is not None and upstream.transport is not None:
            self.forwarded_up += 1
            upstream.transport.sendto(data, self.server_addr)
            return
        if addr not in self.pending:
            self.pending[addr] = []
            asyncio.ensure_future(self._open(addr))
        self.pending[addr].append(data)

    async def _open(self, addr: tuple) -> None:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(
            lambda: _Upstream(self, addr), local_addr=("127.0.0.1", 0))
        self.upstreams[addr] = proto
        for data in self.pending.pop(addr, []):
            self.forwarded_up += 1
            proto.transport.sendto(data, self.server_addr)

    def close(self) -> None:
        for upstream in self.upstreams.values():
            if upstream.transport is not None:
                upstream.transport.close()
        if self.transport is not None:
            self.transport.close()
