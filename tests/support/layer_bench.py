"""Measure the two channels_redis layers the way this project uses them (docs/operations.md).

    .venv/bin/python -m tests.support.layer_bench [--messages 2000] [--hubs 4]

Starts its own redis-server on a free loopback port. One "hub" per simulated server process
(each with its own layer instance, as separate processes would have) is the only member of
the stream group; a publisher layer sends `stream.changes` messages to the group. Reports,
per layer: publish rate, delivery latency, Redis commands per publish, concurrent publishes
against the connection pool, sync publishes from a plain thread (the management-command
path), what a Redis restart does to a receiver, and what a receiver that stops reading costs.
"""
import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard_site.settings")

GROUP = "dashboard.stream"
EVENT = {"type": "event", "seq": 0, "entity": "task", "op": "upsert",
         "data": {"id": 1, "title": "x" * 60, "status": "running", "progress": 50, "agent": 3, "error": "",
                  "version": 0, "created_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00",
                  "started_at": None, "finished_at": None}}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self):
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        self.proc.kill()
        self.proc.wait(10)

    def commands(self):
        import redis

        stats = redis.Redis(port=self.port).info("commandstats")
        return sum(v["calls"] for k, v in stats.items())

    def clients(self):
        import redis

        return redis.Redis(port=self.port).info("clients")["connected_clients"]


def make_layer(kind, url, **config):
    if kind == "core":
        from channels_redis.core import RedisChannelLayer

        return RedisChannelLayer(hosts=[url], prefix="bench", **config)
    from channels_redis.pubsub import RedisPubSubChannelLayer

    return RedisPubSubChannelLayer(hosts=[url], prefix="bench")


def message(seq):
    event = dict(EVENT, seq=seq, data=dict(EVENT["data"], version=seq))
    return {"type": "stream.changes", "epoch": "e", "events": [event], "sent": time.time()}


class Hub:
    """A receiver like realtime/hub.py: one channel in the group, a receive loop."""

    def __init__(self, layer, rejoin=True):
        self.layer, self.rejoin = layer, rejoin
        self.latencies, self.received, self.errors = [], 0, 0
        self.paused = asyncio.Event()
        self.paused.set()
        self.last_at = None

    async def start(self):
        self.channel = await self.layer.new_channel("hub.")
        await self.layer.group_add(GROUP, self.channel)
        self.task = asyncio.ensure_future(self.loop())

    async def loop(self):
        while True:
            await self.paused.wait()
            try:
                msg = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors += 1
                await asyncio.sleep(0.2)
                if self.rejoin:
                    try:
                        await self.layer.group_add(GROUP, self.channel)
                    except Exception:
                        pass
                continue
            self.received += 1
            self.last_at = time.monotonic()
            self.latencies.append(time.time() - msg["sent"])

    async def stop(self):
        self.task.cancel()
        try:
            await self.task
        except BaseException:
            pass


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))] if values else None


async def throughput(kind, redis, n, hubs_count):
    hubs = [Hub(make_layer(kind, redis.url, capacity=5000, expiry=30, group_expiry=300) if kind == "core" else make_layer(kind, redis.url)) for _ in range(hubs_count)]
    for hub in hubs:
        await hub.start()
    publisher = make_layer(kind, redis.url, capacity=5000, expiry=30, group_expiry=300) if kind == "core" else make_layer(kind, redis.url)
    await publisher.group_send(GROUP, message(0))  # warm up the connection
    await asyncio.sleep(0.2)
    for hub in hubs:
        hub.latencies.clear()
        hub.received = 0
    before = redis.commands()
    start = time.perf_counter()
    for seq in range(1, n + 1):
        await publisher.group_send(GROUP, message(seq))
    elapsed = time.perf_counter() - start
    commands = redis.commands() - before
    deadline = time.monotonic() + 10
    while any(h.received < n for h in hubs) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    latencies = [lat for h in hubs for lat in h.latencies]
    # Receive-side commands are included: (publish + every hub's receive) per message.
    result = {
        "publish_per_s": n / elapsed, "publish_us": elapsed / n * 1e6,
        "latency_p50_ms": pct(latencies, 50) * 1000, "latency_p99_ms": pct(latencies, 99) * 1000,
        "delivered": f"{sum(h.received for h in hubs)}/{n * hubs_count}",
        "redis_commands_per_publish": commands / n, "redis_clients": redis.clients(),
    }
    for hub in hubs:
        await hub.stop()
    return result


async def concurrent_publishes(kind, redis, concurrency):
    layer = make_layer(kind, redis.url)
    hub = Hub(make_layer(kind, redis.url))
    await hub.start()
    start = time.perf_counter()
    results = await asyncio.gather(*(layer.group_send(GROUP, message(i)) for i in range(concurrency)),
                                   return_exceptions=True)
    elapsed = time.perf_counter() - start
    errors = sorted({type(r).__name__ for r in results if isinstance(r, BaseException)})
    await hub.stop()
    return {"concurrency": concurrency, "failed": sum(isinstance(r, BaseException) for r in results),
            "errors": errors, "ms": elapsed * 1000}


def sync_publishes(kind, redis, n):
    """async_to_sync(group_send) from a plain thread: each call runs its own event loop."""
    from asgiref.sync import async_to_sync

    layer = make_layer(kind, redis.url)
    result = {}

    def run():
        start = time.perf_counter()
        for i in range(n):
            async_to_sync(layer.group_send)(GROUP, message(i))
        result["per_call_ms"] = (time.perf_counter() - start) / n * 1000

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), f"{n} publishes from a thread did not finish in 120 s"
    return result


async def redis_restart(kind, redis, rejoin):
    """Stop Redis for 3 s while a hub listens; how long until it receives again?"""
    hub = Hub(make_layer(kind, redis.url), rejoin=rejoin)
    await hub.start()
    publisher = make_layer(kind, redis.url)
    await publisher.group_send(GROUP, message(0))
    await asyncio.sleep(0.3)
    redis.stop()
    await asyncio.sleep(3)
    redis.start()
    back = time.monotonic()
    before = hub.received
    recovered_after = None
    publish_errors = 0
    while time.monotonic() - back < 15:
        try:
            await publisher.group_send(GROUP, message(1))
        except Exception:
            publish_errors += 1
        await asyncio.sleep(0.1)
        if hub.received > before:
            recovered_after = time.monotonic() - back
            break
    await hub.stop()
    return {"rejoin_on_error": rejoin, "receive_errors": hub.errors, "publish_errors_after_restart": publish_errors,
            "receiving_again_after_s": recovered_after if recovered_after is not None else "never (15 s)"}


async def stuck_receiver(kind, redis, n):
    """A hub stops reading while n messages are sent: what is kept, where, and what is lost."""
    import psutil

    layer = make_layer(kind, redis.url, capacity=1000, expiry=30) if kind == "core" else make_layer(kind, redis.url)
    hub = Hub(layer)
    await hub.start()
    await asyncio.sleep(0.2)
    hub.paused.clear()
    await asyncio.sleep(0.3)  # the loop is parked on paused.wait() (or in one receive)
    before_rss = psutil.Process().memory_info().rss
    publisher = make_layer(kind, redis.url, capacity=1000, expiry=30) if kind == "core" else make_layer(kind, redis.url)
    big = message(0)
    big["events"] = [dict(EVENT, seq=i) for i in range(20)]  # ~8 KB
    for i in range(n):
        big["sent"] = time.time()
        await publisher.group_send(GROUP, big)
    await asyncio.sleep(0.5)
    grown = psutil.Process().memory_info().rss - before_rss
    import redis as redis_py

    used = redis_py.Redis(port=redis.port).info("memory")["used_memory"]
    received_before = hub.received
    hub.paused.set()
    await asyncio.sleep(2)
    await hub.stop()
    return {"sent": n, "delivered_after_resume": hub.received - received_before,
            "receiver_process_rss_growth_mb": round(grown / 2**20, 1), "redis_used_memory_mb": round(used / 2**20, 1)}


async def main_async(args):
    redis = Redis()
    redis.start()
    report = {}
    try:
        for kind in ("core", "pubsub"):
            r = report[kind] = {}
            r["throughput"] = await throughput(kind, redis, args.messages, args.hubs)
            r["concurrent_150"] = await concurrent_publishes(kind, redis, 150)
            r["sync_publish_from_thread"] = await asyncio.to_thread(sync_publishes, kind, redis, 200)
            r["redis_restart_with_rejoin"] = await redis_restart(kind, redis, rejoin=True)
            r["redis_restart_without_rejoin"] = await redis_restart(kind, redis, rejoin=False)
            r["stuck_receiver_5000x8KB"] = await stuck_receiver(kind, redis, 5000)
            print(kind, json.dumps(r, indent=1, default=str), flush=True)
    finally:
        redis.stop()
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--hubs", type=int, default=4)
    args = parser.parse_args()
    sys.path.insert(0, os.getcwd())
    asyncio.run(main_async(args))
