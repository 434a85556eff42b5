"""realtime/outbox.py: sends that never make the caller wait, in order, bounded."""
import asyncio

import pytest

from realtime.outbox import Outbox, start_eagerly


async def test_a_coroutine_that_does_not_wait_finishes_at_once():
    done = []

    async def quick():
        done.append(1)

    assert start_eagerly(quick()) is None
    assert done == [1]


async def test_a_coroutine_that_waits_is_finished_by_a_task():
    gate = asyncio.get_running_loop().create_future()
    steps = []

    async def slow():
        steps.append("written")
        value = await gate
        steps.append(value)
        await asyncio.sleep(0)
        return "sent"

    task = start_eagerly(slow())
    assert steps == ["written"] and not task.done()
    gate.set_result("drained")
    assert await asyncio.wait_for(task, 5) == "sent"
    assert steps == ["written", "drained"]


class ServerFuture:
    """An ASGI server's send that returns an awaitable of its own, not a coroutine (granian)."""

    def __init__(self, future):
        self.future = future

    def __await__(self):
        return self.future.__await__()


async def test_an_awaitable_that_is_not_a_coroutine_is_driven_the_same_way():
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    done.set_result(None)
    assert start_eagerly(ServerFuture(done)) is None
    gate = loop.create_future()
    task = start_eagerly(ServerFuture(gate))
    assert not task.done()
    gate.set_result("sent")
    assert await asyncio.wait_for(task, 5) == "sent"


async def test_a_failure_after_the_wait_reaches_the_task():
    gate = asyncio.get_running_loop().create_future()

    async def failing():
        await gate
        raise ConnectionError("gone")

    task = start_eagerly(failing())
    gate.set_exception(OSError("reset"))
    with pytest.raises(OSError):
        await asyncio.wait_for(task, 5)


class SlowServer:
    """An ASGI send that makes every call wait until released, like uvicorn under backpressure."""

    def __init__(self):
        self.written, self.gates = [], []

    async def send(self, message):
        self.written.append(message["text"])  # written to the transport first, then the wait
        gate = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        await gate

    def release_all(self):
        for gate in self.gates:
            if not gate.done():
                gate.set_result(None)


async def _spin():
    for _ in range(5):
        await asyncio.sleep(0)


async def test_frames_queue_in_order_behind_a_waiting_send_and_put_never_waits():
    server, errors = SlowServer(), []
    outbox = Outbox(server.send, errors.append)
    for i in range(5):
        outbox.put({"type": "websocket.send", "text": f"f{i}"}, 2)  # returns although the server waits
    assert server.written == ["f0"] and outbox.queued_bytes == 8
    for _ in range(5):
        server.release_all()
        await _spin()
    assert server.written == ["f0", "f1", "f2", "f3", "f4"]
    assert not outbox.waiting and outbox.queued_bytes == 0 and errors == []


async def test_what_a_reader_has_not_taken_is_counted_in_flight_and_queued():
    """The consumer bounds a socket by these numbers (REALTIME_MAX_OUTBOX_BYTES)."""
    server = SlowServer()
    outbox = Outbox(server.send, lambda exc: None)
    for i in range(13):  # one in flight, twelve queued behind it
        outbox.put({"type": "websocket.send", "text": "x" * 100}, 100)
    assert outbox.inflight_bytes == 100 and outbox.queued_bytes == 1200
    outbox.discard()
    assert outbox.queued_bytes == 0
    server.release_all()
    await _spin()
    assert outbox.inflight_bytes == 0


async def test_a_refused_send_is_reported_and_the_queue_dropped():
    errors = []

    async def refuse(message):
        await asyncio.sleep(0)
        raise ValueError("message too big")

    outbox = Outbox(refuse, errors.append)
    outbox.put({"type": "websocket.send", "text": "a"}, 1)
    outbox.put({"type": "websocket.send", "text": "b"}, 1)
    await _spin()
    assert [type(e) for e in errors] == [ValueError] and outbox.queued_bytes == 0
