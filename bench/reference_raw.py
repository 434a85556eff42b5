"""Reference 1, the floor: a raw `websockets` broadcast server sending the same JSON frames.

No Django, no channel layer, no database: a set of connections, and per change one
`json.dumps` and one `websockets.broadcast()` (the frame is encoded once, written to every
socket). Whatever the project costs above this is the price of Django, Channels, the ASGI
server and the sequencing path.

    python bench/reference_raw.py --port 8765
    GET /bench/write?n=100&rate=0   ->  {"stamps": [[seq, t], ...]}   (t: time.monotonic())
"""
import argparse
import asyncio
import json
import sys
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import broadcast, serve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.rows import sync, write as write_events  # noqa: E402

EPOCH = "raw-floor"
connections = set()
head = 0


def dumps(frame):
    return json.dumps(frame, separators=(",", ":"))


async def handler(ws):
    """One socket: answer subscribe with an (empty) sync and ping with pong."""
    connections.add(ws)
    try:
        async for message in ws:
            frame = json.loads(message)
            kind = frame.get("type")
            if kind == "subscribe":
                await ws.send(dumps(sync(head, EPOCH)))
            elif kind == "ping":
                await ws.send(dumps({"type": "pong", "id": frame.get("id")}))
    finally:
        connections.discard(ws)


async def write(n, rate, rows):
    async def send(frame):
        global head
        head = frame["seq"]
        broadcast(connections, dumps(frame))
        await asyncio.sleep(0)

    return await write_events(head + 1, n, rate, rows, send)


async def process_request(connection, request):
    url = urlsplit(request.path)
    if not url.path.startswith("/bench/"):
        return None
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    if url.path == "/bench/write":
        result = await write(int(query.get("n", 1)), float(query.get("rate", 0)), int(query.get("rows", 50)))
        return connection.respond(HTTPStatus.OK, json.dumps(result))
    return connection.respond(HTTPStatus.NOT_FOUND, "{}")


async def main(port):
    async with serve(handler, "127.0.0.1", port, process_request=process_request,
                     ping_interval=None, compression=None, max_size=None, max_queue=None):
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
