"""realtime/reads.py: one reader at a time, and the answers kept for the sockets after it."""
import asyncio

from realtime.reads import Reads, Shared


async def test_an_answer_is_kept_for_its_number_and_epoch_only():
    shared = Shared()
    shared.put("claim", 5, "epoch-a", "texts")
    assert shared.get("claim", 5, "epoch-a", within=1.0) == "texts"
    assert shared.get("claim", 5, "epoch-b", within=1.0) is None  # another epoch began
    assert shared.get("other", 5, "epoch-a", within=1.0) is None
    assert shared.get("claim", 5, "epoch-a", within=0.0) is None  # older than asked for
    shared.put("next", 6, "epoch-a", "newer")  # the stream moved: the old answers go
    assert shared.get("claim", 5, "epoch-a", within=1.0) is None
    assert shared.get("claim", 6, "epoch-a", within=1.0) is None
    assert shared.get("next", 6, "epoch-a", within=1.0) == "newer"


async def test_those_that_want_the_same_read_wait_for_the_reader_with_a_bound():
    reads = Reads()
    reading = reads.begin("window")
    waiter = asyncio.ensure_future(reads.wait("window", 5))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    await reads.wait("other", 5)  # another read: no wait
    reads.end("window", reading)
    await asyncio.wait_for(waiter, 1)
    stuck = reads.begin("stuck")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await reads.wait("stuck", 0.05)  # a reader that never ends holds nobody past the bound
    assert loop.time() - started < 1
    reads.end("stuck", stuck)
