"""One reader at a time: sockets that want the same database read wait for the one reading.

A reconnect storm brings hundreds of sockets at once that all want the same thing: the
window of one view, the sync of one position. The first to ask reads; the others wait for it
(bounded) and then take what it left (the view's live window, a sync shared by claim), so
the database is read once, not once per socket. What a key names is up to the caller
(realtime/consumers.py)."""
import asyncio


class Reads:
    def __init__(self):
        self._reading = {}  # key -> Event set when the socket reading it is done

    async def wait(self, key, timeout):
        """Wait (at most `timeout` s) while another socket reads what `key` names."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (reading := self._reading.get(key)) is not None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(reading.wait(), remaining)
            except asyncio.TimeoutError:
                return

    def begin(self, key):
        """The caller reads what `key` names: others asking for it wait."""
        reading = self._reading[key] = asyncio.Event()
        return reading

    def end(self, key, reading):
        if self._reading.get(key) is reading:
            del self._reading[key]
        reading.set()
