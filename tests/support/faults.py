"""Fault injection and measuring for tests/test_faults.py and tests/test_scaleout.py.

- `TcpProxy`: a loopback TCP proxy (and round-robin balancer over several daphne ports)
  whose connections can be made to silently stop forwarding, like a NAT box that forgot
  the mapping: neither side sees a FIN or RST, bytes just stop arriving.
- `Writer`: changes tasks and agents through the ORM (so every write is sequenced and
  published after commit), from a worker thread of the test process.
- `settle`, `catch_up`: wait until clients equal the database / have reached a head.
- `scrape_metrics`, `process_rss`, `percentile`, `crash_lines`: what the tests report.

Everything binds to 127.0.0.1 and stops with the test.
"""
import asyncio
import collections
import random
import re
import time
import urllib.request

from asgiref.sync import sync_to_async

# TCP proxy ---------------------------------------------------------------------------------


class Link:
    """One proxied connection: client <-> proxy <-> upstream."""

    def __init__(self, upstream_port, down_reader, down_writer, up_reader, up_writer):
        self.upstream_port = upstream_port
        self.down_reader, self.down_writer = down_reader, down_writer
        self.up_reader, self.up_writer = up_reader, up_writer
        self.silent = False
        self.silenced_at = None
        self.flowing = asyncio.Event()  # cleared: bytes wait in the proxy (a stalled peer)
        self.flowing.set()
        self.server_closed_at = None  # the upstream (daphne) closed its side
        self.client_closed_at = None
        self.opened_at = time.monotonic()
        self.tasks = []

    def start(self):
        self.tasks = [
            asyncio.ensure_future(self._pump(self.up_reader, self.down_writer, "server")),
            asyncio.ensure_future(self._pump(self.down_reader, self.up_writer, "client")),
        ]

    @property
    def open(self):
        return self.server_closed_at is None and self.client_closed_at is None

    async def _pump(self, src, dst, side):
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                await self.flowing.wait()
                if not self.silent:  # silent: read and drop, so the sender never notices
                    dst.write(data)
                    await dst.drain()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            now = time.monotonic()
            if side == "server":
                self.server_closed_at = now
            else:
                self.client_closed_at = now
            if not self.silent:
                dst.close()

    def abort(self):
        for task in self.tasks:
            task.cancel()
        for writer in (self.down_writer, self.up_writer):
            if writer.transport is not None:
                writer.transport.abort()


class TcpProxy:
    """Listens on a free loopback port and forwards each connection to the next upstream
    port that accepts (round robin), like a load balancer in front of several daphnes."""

    def __init__(self, *upstream_ports, host="127.0.0.1"):
        self.upstreams, self.host = list(upstream_ports), host
        self.links = []
        self.port = None
        self._server = None
        self._next = 0

    async def start(self):
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def ws(self, path="/ws/dashboard/"):
        return f"ws://{self.host}:{self.port}{path}"

    @property
    def http(self):
        return f"http://{self.host}:{self.port}"

    refusing = False  # True: new connections are dropped at once, like a stopped server

    async def _accept(self, down_reader, down_writer):
        if self.refusing:
            down_writer.transport.abort()
            return
        for _ in range(len(self.upstreams)):
            port = self.upstreams[self._next % len(self.upstreams)]
            self._next += 1
            try:
                up_reader, up_writer = await asyncio.open_connection(self.host, port)
            except OSError:
                continue
            link = Link(port, down_reader, down_writer, up_reader, up_writer)
            if self.stalled:
                link.flowing.clear()
            self.links.append(link)
            link.start()
            return
        down_writer.transport.abort()  # no upstream answers: like a balancer with none healthy

    def open_links(self, upstream_port=None):
        return [l for l in self.links if l.open and (upstream_port is None or l.upstream_port == upstream_port)]

    def silence(self, links):
        """Stop forwarding on these connections, in both directions, without closing them."""
        now = time.monotonic()
        for link in links:
            link.silent, link.silenced_at = True, now

    def stop_upstream(self):
        """Like the upstream stopping: every connection is cut and new ones are refused."""
        self.refusing = True
        for link in self.links:
            link.abort()

    def start_upstream(self):
        self.refusing = False

    def stall(self, stalled=True):
        """Hold every byte in both directions (a stalled peer) until called with False."""
        for link in self.links:
            if stalled:
                link.flowing.clear()
            else:
                link.flowing.set()
        self.stalled = stalled

    stalled = False

    async def close(self):
        if self._server is not None:
            self._server.close()
        for link in self.links:
            link.abort()
        if self._server is not None:
            await asyncio.wait_for(self._server.wait_closed(), 10)


# Writing ------------------------------------------------------------------------------------


class Writer:
    """Random sequenced changes to tasks and agents: saves, creates, deletes, bulk updates.

    `step()` is synchronous (ORM); `run()` calls it from a worker thread at `rate` per second
    until `stop` is set. Publishing happens in on_commit through the test process's channel
    layer, so the test must point CHANNEL_LAYERS at the servers' Redis."""

    def __init__(self, seed=1, max_tasks=60, agents=4):
        self.rng = random.Random(seed)
        self.max_tasks, self.agent_count = max_tasks, agents
        self.ops = collections.Counter()
        self.failures = collections.Counter()
        self.head_at_start = None

    def setup(self):
        from realtime.snapshot import stream_position
        from tasks.models import Agent, Task

        for i in range(self.agent_count):
            Agent.objects.get_or_create(name=f"fault-agent-{i}")
        Task.objects.bulk_create([Task(title=f"fault task {i}") for i in range(self.max_tasks // 2)])
        self.head_at_start = stream_position()[1]

    def step(self):
        from django.utils import timezone

        from tasks.models import Agent, Task

        rng = self.rng
        ids = list(Task.objects.values_list("id", flat=True))
        agents = list(Agent.objects.all())
        roll = rng.random()
        if roll < 0.15 or len(ids) < 5:
            Task.objects.create(title=f"task {rng.randrange(10**6)}")
            self.ops["create"] += 1
        elif roll < 0.25 and len(ids) > self.max_tasks // 3:
            Task.objects.filter(pk=rng.choice(ids)).delete()
            self.ops["delete"] += 1
        elif roll < 0.33:
            chosen = rng.sample(ids, min(len(ids), rng.randint(2, 6)))
            Task.objects.filter(pk__in=chosen).update(progress=rng.randint(0, 100))
            self.ops["bulk_update"] += 1
        elif roll < 0.45 and agents:
            agent = rng.choice(agents)
            agent.status = rng.choice(["idle", "busy", "offline"])
            agent.last_heartbeat = timezone.now()
            agent.save()
            self.ops["agent"] += 1
        else:
            task = Task.objects.filter(pk=rng.choice(ids)).first()
            if task is None:
                return
            task.status = rng.choice(["queued", "running", "running", "succeeded", "failed"])
            task.progress = 100 if task.status == "succeeded" else rng.randint(0, 99)
            task.agent = None if task.status == "queued" or not agents else rng.choice(agents)
            task.save()
            self.ops["save"] += 1

    async def run(self, stop, rate=20.0):
        step = sync_to_async(self.step)
        while not stop.is_set():
            try:
                await step()
            except Exception as exc:  # e.g. SQLite busy under load: count it, keep writing
                self.failures[type(exc).__name__] += 1
            try:
                await asyncio.wait_for(stop.wait(), 1.0 / rate)
            except asyncio.TimeoutError:
                pass

    @property
    def count(self):
        return sum(self.ops.values())


def database_head():
    from realtime.snapshot import stream_position

    return stream_position()


# Waiting and checking -------------------------------------------------------------------------


async def catch_up(clients, head, timeout=30.0):
    """Seconds until every client has applied at least `head` (None when it timed out)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if all(c.last is not None and c.last >= head for c in clients):
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    return None


async def settle(clients, timeout=30.0):
    """Wait until every client equals the database (rows and versions); return the
    clients that do not, and the database rows."""
    from .stream import database_rows, database_versions

    expected = await sync_to_async(database_versions)()
    results = await asyncio.gather(*(c.wait_for(lambda c: c.versions() == expected, timeout) for c in clients))
    tasks, agents = await sync_to_async(database_rows)()
    bad = [c for c, ok in zip(clients, results) if not ok or c.tasks != tasks or c.agents != agents]
    return bad, expected


def describe_difference(client, expected):
    tasks, agents = client.versions()
    want_tasks, want_agents = expected
    missing = sorted(set(want_tasks) - set(tasks))[:5]
    extra = sorted(set(tasks) - set(want_tasks))[:5]
    stale = sorted(i for i in set(tasks) & set(want_tasks) if tasks[i] != want_tasks[i])[:5]
    return (f"client last={client.last} connects={client.connects} syncs={client.syncs} gaps={client.gaps} "
            f"codes={client.close_codes[-5:]} missing={missing} extra={extra} stale={stale} "
            f"agents_equal={agents == want_agents}")


def scrape_metrics(http_base, timeout=5):
    """{(name, labels): value} from a server's /metrics."""
    text = urllib.request.urlopen(f"{http_base}/metrics", timeout=timeout).read().decode()
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if match:
            values[(match.group(1), match.group(2) or "")] = float(match.group(3))
    return values


def metric(values, name, labels=""):
    return values.get((name, labels), 0.0)


def process_rss(pid):
    """Resident memory of a process in bytes (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def percentile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[index]


CRASH_MARKERS = (
    "Exception inside application",  # daphne: a consumer raised (the client got 1011)
    "took too long to shut down",  # daphne: an application instance had to be killed
    "Task exception was never retrieved",  # asyncio: a background task died silently
    "Unhandled error in Deferred",  # twisted
    "ERROR realtime", "CRITICAL", "Fatal Python error",
)


def crash_lines(log_text):
    """Lines of a daphne log that show a crash. (Library tracebacks logged on purpose, such
    as channels_redis.pubsub's "Unexpected exception in receive task" while Redis is down,
    are not crashes.)"""
    return [line for line in log_text.splitlines() if any(marker in line for marker in CRASH_MARKERS)]


def report(name, **numbers):
    """Print one line per fault test (visible with -s) and keep it for the session summary."""
    parts = " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in numbers.items())
    line = f"[fault] {name}: {parts}"
    print(line, flush=True)
    REPORTS.append(line)
    return line


REPORTS = []


# A flooding client, run in its own process (python -m tests.support.faults flood ...) so
# its CPU does not distort the latencies the test process measures ----------------------------

BAD_FRAMES = [
    "not json", "{", "[]", "42", '"text"', "null",
    '{"type":"nope"}', '{"no":"type"}',
    '{"type":"subscribe","since":-1}', '{"type":"subscribe","since":"x"}',
    '{"type":"subscribe","since":true}', '{"type":"subscribe","epoch":5}',
    '{"type":"pong","id":"x"}', '{"type":"ping","id":[1]}',
    b"\x00\x01binary",
]


async def flood(url, cookie, origin, seconds):
    """Send bad frames as fast as possible; reconnect whenever closed, even on terminal codes."""
    import websockets

    stats = {"sent": 0, "errors": 0, "connections": 0, "closes": collections.Counter()}
    headers = {"Cookie": cookie, "Origin": origin}
    end = time.monotonic() + seconds
    i = 0

    async def count(ws):
        try:
            async for message in ws:
                if isinstance(message, str) and '"error"' in message:
                    stats["errors"] += 1
        except Exception:
            pass

    while time.monotonic() < end:
        try:
            async with websockets.connect(url, additional_headers=headers, ping_interval=None,
                                          close_timeout=1, open_timeout=5) as ws:
                stats["connections"] += 1
                reader = asyncio.ensure_future(count(ws))
                try:
                    while time.monotonic() < end:
                        await ws.send(BAD_FRAMES[i % len(BAD_FRAMES)])
                        i += 1
                        stats["sent"] += 1
                        if i % 20 == 0:
                            await asyncio.sleep(0)
                finally:
                    await asyncio.wait([reader], timeout=2)
                    reader.cancel()
        except websockets.ConnectionClosed as exc:
            stats["closes"][str(exc.rcvd.code if exc.rcvd else 1006)] += 1
        except OSError:
            stats["closes"]["oserror"] += 1
        await asyncio.sleep(0.02)
    stats["closes"] = dict(stats["closes"])
    return stats


if __name__ == "__main__":
    import json
    import sys

    if sys.argv[1] == "flood":
        url, cookie, origin, seconds = sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
        print(json.dumps(asyncio.run(flood(url, cookie, origin, seconds))), flush=True)
