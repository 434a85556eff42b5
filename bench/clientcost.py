"""The load client's cost per applied frame, in process: no server, no sockets.

    .venv/bin/python bench/clientcost.py [--clients 500] [--frames 400] [--repeat 5]

A fleet of apply-mode clients (bench/loadclient.py) takes a sync and then the same frames a
fan-out sends: protocol v1 single events, and a view's ranges (with counts and an agent
change now and then). Every client gets its own copy of each frame, as each socket does.
Two paths are timed: `Client.on_text` (decoding, once per fleet, and applying: what a
frame costs after the WebSocket parser) and the whole way from the socket's bytes
(`WSProtocol.data_received`: the parser too). Prints microseconds per applied frame per
client (the best of the repeats), with and without arrival tracking (the sustained scenario
tracks).
"""
import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadclient import Client, Fleet, WSProtocol  # noqa: E402

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
STAMP = "2026-11-28T19:40:02.004000+00:00"


def task(i, version):
    return {"id": i, "title": f"Build ledger {i} on main", "status": STATUSES[i % 5], "progress": version % 100,
            "agent": None, "error": "", "version": version, "created_at": STAMP, "updated_at": STAMP,
            "started_at": None, "finished_at": None}


def agent(i, version):
    return {"id": i, "name": f"agent-{i}", "status": "busy", "hostname": f"agent-{i}.internal",
            "last_heartbeat": STAMP, "version": version, "updated_at": STAMP}


def frames(view, count, tasks=50, agents=5):
    """The sync and the `count` frames after it, encoded as the server sends them."""
    head = tasks + agents
    sync = {"type": "sync", "epoch": "e1", "seq": head, "reset": True, "heartbeat_interval": 25.0,
            "tasks": [task(i, i) for i in range(1, tasks + 1)],
            "agents": [agent(i, tasks + i) for i in range(1, agents + 1)],
            "deleted": {"tasks": [], "agents": []}}
    counts = {s: 10 for s in STATUSES}
    if view is not None:
        sync.update(view=view, counts=dict(counts, matched=tasks), current=[], fp="f0")
    out = [sync]
    for k in range(count):
        seq = head + 1 + k
        if view is None:
            out.append({"type": "event", "seq": seq, "entity": "task", "op": "upsert", "data": task(k % tasks + 1, seq),
                        "fp": f"f{seq}"})
            continue
        if k % 10 == 9:
            item = {"type": "event", "seq": seq, "entity": "agent", "op": "upsert", "data": agent(k % agents + 1, seq)}
        else:
            item = {"type": "event", "seq": seq, "entity": "task", "op": "upsert", "data": task(k % tasks + 1, seq)}
        frame = {"type": "events", "from": seq, "to": seq, "fp": f"f{seq}", "items": [item]}
        if k % 4 == 0:
            counts["queued"] += 1
            frame["counts"] = dict(counts, matched=tasks)
        out.append(frame)
    return [json.dumps(f, separators=(",", ":")).encode() for f in out]


def server_frame(payload):
    """An unmasked text frame, as a server sends it."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


class Sink:
    """A transport that takes what a client writes (pongs) and drops it."""

    def write(self, data):
        pass

    def is_closing(self):
        return False


def measure(view, clients, count, repeat, track, wire):
    """Best microseconds per applied frame per client over `repeat` fleets."""
    payloads = frames(view, count)
    best = None
    for _ in range(repeat):
        fleet = Fleet(0, mode="apply", view=view)
        if track:
            fleet.track(1, count + 100)
        fleet.clients = [Client(fleet, i) for i in range(clients)]
        protos = []
        for client in fleet.clients:
            client.on_text(bytes(bytearray(payloads[0])), 0.0)
            proto = WSProtocol(client, b"")
            proto.open, proto.transport = True, Sink()
            protos.append(proto)
        encode = server_frame if wire else bytes
        copies = [[encode(bytearray(p)) for _ in range(clients)] for p in payloads[1:]]
        started = time.perf_counter()
        if wire:
            for per_client in copies:
                for proto, data in zip(protos, per_client):
                    proto.data_received(data)
        else:
            for k, per_client in enumerate(copies):
                for client, payload in zip(fleet.clients, per_client):
                    client.on_text(payload, float(k))
        elapsed = time.perf_counter() - started
        last = fleet.clients[0].last
        assert all(c.last == last for c in fleet.clients) and not any(c.gaps for c in fleet.clients), "not applied"
        per_frame = elapsed / (count * clients) * 1e6
        best = per_frame if best is None else min(best, per_frame)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(report(args))


async def report(args):
    """Runs inside an event loop: a WSProtocol makes a future for its handshake."""
    for name, view in (("v1 events", None), ("v2 ranges", {"limit": 200, "current": True})):
        for track in (False, True):
            costs = [measure(view, args.clients, args.frames, args.repeat, track, wire) for wire in (False, True)]
            print(f"{name:10} {'tracked' if track else 'untracked':9} on_text {costs[0]:5.2f} us, "
                  f"from the socket {costs[1]:5.2f} us per applied frame per client")


if __name__ == "__main__":
    main()
