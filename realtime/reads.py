"""One reader at a time: sockets that want the same database read wait for the one reading.

A reconnect storm brings hundreds of sockets at once that all want the same thing: the
window of one view, the sync of one position. The first to ask reads; the others wait for it
(bounded) and then take what it left (the view's live window, a sync shared by claim), so
the database is read once, not once per socket. What a key names is up to the caller
(realtime/consumers.py). `Shared` keeps those answers for the sockets that come after."""
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


class Shared:
    """Answers built for one socket, kept for the next that claims the same position: each
    answer is for the hub's current number and epoch, and a new number forgets them all."""

    def __init__(self):
        self._number = None
        self._answers = {}  # key -> (loop time built, epoch, answer)

    def put(self, key, number, epoch, answer):
        if number != self._number:
            self._number, self._answers = number, {}
        self._answers[key] = (asyncio.get_running_loop().time(), epoch, answer)

    def get(self, key, number, epoch, within):
        """The answer kept under `key` at `number` in `epoch`, built at most `within` s ago."""
        if number != self._number:
            return None
        found = self._answers.get(key)
        if found is None or found[1] != epoch or asyncio.get_running_loop().time() - found[0] > within:
            return None
        return found[2]
