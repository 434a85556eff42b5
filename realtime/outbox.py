"""Sending to one socket without waiting for it.

The hub fans a frame out to every socket in one loop, and the heartbeat pings every socket in
one loop. Daphne buffers whatever it is given, so an ASGI `send` returns at once. Uvicorn
applies backpressure instead: once a socket's transport buffer passes its high-water mark,
`send` writes the frame and then waits until the reader catches up. Awaited in those loops,
one reader on a slow link would hold up every socket after it, pings included, until its own
heartbeat closed it. (On loopback the tests could not make uvicorn wait: with 10 MB sent to
a client that stopped reading, its transport never paused; tests/test_faults.py
test_a_reader_that_stops_holds_up_no_one passes with and without this module.) Centrifugo
and Phoenix keep a write queue per connection for the same reason.

So a socket's sends start at once and, should the server make one wait, the rest of that
send finishes in the background while the loop moves on; frames sent meanwhile queue behind
it in order. A reader that stops reading is still found by its late pong (4008); what a
socket holds (`pending`: this queue, the send in flight, and on daphne the bytes its
transport still buffers) is also bounded in bytes by the consumer (realtime/consumers.py,
REALTIME_MAX_OUTBOX_BYTES per socket, REALTIME_MAX_USER_OUTBOX_BYTES per user), so that
memory never waits for that.
"""
import asyncio
import collections
import logging

log = logging.getLogger("realtime.outbox")


class _Continue:
    """Awaitable that finishes a coroutine already started by `start_eagerly`: it hands each
    future the coroutine waits on to the running task, as `await` would have."""

    __slots__ = ("coro", "waiting")

    def __init__(self, coro, waiting):
        self.coro, self.waiting = coro, waiting

    def __await__(self):
        waiting = self.waiting
        while True:
            try:
                value = yield waiting
            except BaseException as exc:  # cancelled, or the future failed: pass it on
                try:
                    waiting = self.coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    waiting = self.coro.send(value)
                except StopIteration as stop:
                    return stop.value


async def _finish(awaitable):
    return await awaitable


def start_eagerly(awaitable):
    """Run `awaitable` up to its first wait. None when it finished without waiting (the result
    is dropped; an exception is raised here); else a Task that finishes it.

    An ASGI server's `send` returns an awaitable, not always a coroutine (granian's is a
    future of its own): anything else is driven through a coroutine that awaits it."""
    coro = awaitable if asyncio.iscoroutine(awaitable) else _finish(awaitable)
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    return asyncio.ensure_future(_finish(_Continue(coro, waiting)))


class Outbox:
    """The frames of one socket, sent in order without making the caller wait."""

    def __init__(self, send, on_error):
        self._send, self._on_error = send, on_error
        self._queue = collections.deque()
        self.queued_bytes = 0  # frames waiting behind a send the server made wait
        self.inflight_bytes = 0  # that send
        self._task = None  # finishing a send the server made wait, then the queue

    def put(self, message, size):
        if self._task is not None:
            self._queue.append((message, size))
            self.queued_bytes += size
            return
        try:
            task = start_eagerly(self._send(message))
        except Exception as exc:
            self._on_error(exc)
            return
        if task is not None:
            self._task, self.inflight_bytes = task, size
            task.add_done_callback(self._sent)

    def _sent(self, task):
        self._task, self.inflight_bytes = None, 0
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._queue.clear()
            self.queued_bytes = 0
            self._on_error(exc)
            return
        while self._queue and self._task is None:
            message, size = self._queue.popleft()
            self.queued_bytes -= size
            self.put(message, size)

    @property
    def waiting(self):
        return self._task is not None

    def discard(self):
        """The socket is closing: frames not yet handed to the server are dropped."""
        self._queue.clear()
        self.queued_bytes = 0
