"""The worker RPC client after the worker hung up: calls fail at once, none waits for ever
(seen in shutdown: a call on a dead worker's socket held the server)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mediaserver.api import MediaError
from mediaserver.remote_control import RemoteMediaControl


async def test_calls_fail_once_the_worker_hung_up(tmp_path: Path) -> None:
    hung_up = asyncio.Event()

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()  # one request, never answered: the worker goes away
        writer.close()
        hung_up.set()

    server = await asyncio.start_unix_server(worker, str(tmp_path / "w.sock"))
    control = RemoteMediaControl(lambda transport_id, reason: None)
    try:
        await control.rpc.connect(str(tmp_path / "w.sock"))
        with pytest.raises(MediaError, match="connection lost"):
            await asyncio.wait_for(control.stats(), 5)  # pending when it hung up
        await hung_up.wait()
        with pytest.raises(MediaError, match="not connected"):
            await asyncio.wait_for(control.stats(), 5)  # after: refused at once
    finally:
        await control.rpc.close()
        server.close()
