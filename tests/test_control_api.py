"""The control API is declared once (mediaserver/control.py) and every implementation follows
from it: the Worker's methods, the in-process control, the RPC client and server, the pool."""

from __future__ import annotations

import asyncio
import inspect
import json
from pathlib import Path

import pytest

from benchmarks.server_proc import free_udp_range
from mediaserver import wire
from mediaserver.api import (
    Codec,
    ConsumerParams,
    MediaConfig,
    MediaDump,
    MediaError,
    PipeInfo,
    ProducerParams,
    TransportInfo,
    open_media,
)
from mediaserver.control import CALLS, MediaControl, bind_calls, call
from mediaserver.local_control import LocalMediaControl
from mediaserver.pool import WorkerPool
from mediaserver.remote_control import RemoteMediaControl, control_server
from mediaserver.worker import Worker

VP8 = Codec("VP8", 96, 90000, rtx_payload_type=97, nack=True, pli=True)


def test_every_call_is_a_worker_method_with_the_same_parameters() -> None:
    for c in CALLS.values():
        worker_method = getattr(Worker, c.name, None)
        assert worker_method is not None, f"Worker has no {c.name}"
        params = list(inspect.signature(worker_method).parameters)[1:]
        assert params == list(c.params), f"{c.name}: Worker takes {params}"


def test_every_implementation_has_every_call() -> None:
    for cls in (LocalMediaControl, RemoteMediaControl, WorkerPool):
        for name in CALLS:
            method = getattr(cls, name)
            assert method is not getattr(MediaControl, name), f"{cls.__name__}.{name} missing"
            assert inspect.iscoroutinefunction(method)


def test_each_call_routes_by_an_id_it_takes_or_is_placed_by_the_pool() -> None:
    for c in CALLS.values():
        if c.route is None:
            assert c.name in vars(WorkerPool), f"{c.name} has no route and no pool method"
        else:
            assert c.params[c.route] is str


def test_a_new_call_reaches_every_implementation_from_its_declaration() -> None:
    class Declared(MediaControl):
        pass

    made: list[str] = []

    def make(c):  # what the pool or the RPC client does for each call
        async def method(self, *args, **kwargs):
            made.append(c.name)
            return c.bind(args, kwargs)
        return method

    bind_calls(Declared, make)
    bound = asyncio.run(Declared().consume("t", "p", params=None))
    assert made == ["consume"] and bound == {"transport_id": "t", "producer_id": "p",
                                             "params": None}
    with pytest.raises(TypeError):
        asyncio.run(Declared().consume("t"))  # a missing argument fails before any call
    assert call(route="x")(lambda self, x: None).__control__ == ("x", False)


def test_wire_decode_is_strict_by_type() -> None:
    params = ProducerParams("video", "0", VP8, ssrc=5, rtx_ssrc=6, extensions={"urn:x": 3})
    assert wire.decode(ProducerParams, json.loads(json.dumps(wire.encode(params)))) == params
    info = wire.decode(TransportInfo, {"id": "t", "ice_ufrag": "u", "ice_pwd": "p",
                                       "fingerprint": "f", "candidates": [
                                           {"ip": "127.0.0.1", "port": 5}]})
    assert info.candidates[0].port == 5 and info.candidates[0].protocol == "udp"
    assert wire.decode(tuple[str, ...], ["a", "b"]) == ("a", "b")
    assert wire.decode(int | None, None) is None
    for kind, value in ((int, True), (int, "5"), (str, 5), (bool, 1), (list[int], {"a": 1}),
                        (tuple[str, str], ["a"]), (int | None, "x")):
        with pytest.raises(TypeError):
            wire.decode(kind, value)
    with pytest.raises(TypeError, match="no field"):
        wire.decode(PipeInfo, {"id": "p", "ip": "127.0.0.1", "port": 1, "extra": 1})
    with pytest.raises(MediaError):  # the dataclass's own checks run too
        wire.decode(Codec, {"name": "VP8", "payload_type": 300, "clock_rate": 90000})


async def _exercise(media: MediaControl) -> None:
    """The same calls, the same typed results, whichever implementation answers."""
    router = await media.create_router()
    worker = await media.worker_of(router)
    assert router.startswith(worker)
    with pytest.raises(MediaError):
        await media.create_router(exclude=(worker,))  # one worker: nowhere else to go
    info = await media.create_transport(router)
    assert isinstance(info, TransportInfo) and info.candidates[0].port > 0
    producer = await media.produce(info.id, ProducerParams("video", "0", VP8, ssrc=1111,
                                                           rtx_ssrc=2222))
    other = await media.create_transport(router)
    consumer = await media.consume(other.id, producer, ConsumerParams("0", VP8, ssrc=3333,
                                                                     rtx_ssrc=4444))
    assert consumer.producer_id == producer and consumer.ssrc == 3333
    await media.pause_consumer(consumer.id, True)
    pipe = await media.create_pipe_transport(router)
    assert isinstance(pipe, PipeInfo) and pipe.port > 0
    dump = await media.dump()
    assert isinstance(dump, MediaDump)
    assert {t.id for t in dump.transports} == {info.id, other.id}
    (p,) = dump.producers
    assert (p.id, p.codec, p.consumers, p.paused) == (producer, "VP8", 1, False)
    (c,) = dump.consumers
    assert (c.id, c.transport_id, c.paused) == (consumer.id, other.id, True)
    assert (await media.stats())["consumers"] == 1
    with pytest.raises(MediaError):
        await media.pause_producer("nope", True)
    await media.close_producer("nope")  # closing what is gone is no error
    await media.close_router(router)
    assert (await media.dump()).producers == []


async def test_in_process_control() -> None:
    media = open_media(MediaConfig(port=free_udp_range(1)))  # not 40000: maybe a client's
    await media.start()
    try:
        await _exercise(media)
    finally:
        await media.stop()


async def test_rpc_control_answers_like_the_in_process_one(tmp_path: Path) -> None:
    local = LocalMediaControl(Worker(MediaConfig(id_prefix="w7.", port=free_udp_range(1))))
    await local.start()
    unix = await control_server(local).serve(str(tmp_path / "w.sock"))
    closed: list[tuple[str, str]] = []
    remote = RemoteMediaControl(lambda transport_id, reason: closed.append((transport_id,
                                                                            reason)))
    await remote.rpc.connect(str(tmp_path / "w.sock"))
    try:
        await _exercise(remote)
        # the worker's events come across too: closing the router took both transports
        assert [reason for _, reason in closed] == ["router closed"] * 2
    finally:
        await remote.rpc.close()
        unix.close()
        await local.stop()


async def test_pool_places_and_routes_by_id(tmp_path: Path) -> None:
    pool = open_media(MediaConfig(port=free_udp_range(2)), workers=2)
    assert isinstance(pool, WorkerPool)
    await pool.start()
    try:
        first = await pool.create_router()
        w_first = await pool.worker_of(first)
        second = await pool.create_router(exclude=(w_first,))
        assert await pool.worker_of(second) != w_first
        with pytest.raises(MediaError):
            await pool.create_router(exclude=tuple(pool.addresses()))
        t1 = await pool.create_transport(first)
        t2 = await pool.create_transport(second)
        assert {t1.candidates[0].port, t2.candidates[0].port} == {w.port for w in pool.workers}
        dump = await pool.dump()
        assert {t.id for t in dump.transports} == {t1.id, t2.id}
        with pytest.raises(MediaError, match="no worker"):
            await pool.transport_info("x9.tr-nothing")
        await pool.close_transport("x9.tr-nothing")  # gone_ok
        assert (await pool.stats())["workers"] == 2
    finally:
        await pool.stop()
