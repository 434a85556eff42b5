"""Reference 2: the Channels tutorial design, served by daphne with the in-memory layer.

Every consumer joins one group; a change is one `group_send`; every consumer's handler
`send_json`s it (one deep copy and one JSON encoding per socket). No auth, no database, no
sequencing: only the fan-out path, which is what the hub replaces.

The layer's capacity is raised from the stock 100 so a burst of 100 changes is delivered in
full (the stock layer would drop the excess silently) and the CPU per delivered frame is
measured on complete deliveries.

    daphne bench.reference_tutorial:application
    GET /bench/write?n=100&rate=0   ->  {"stamps": [[seq, t], ...]}   (t: time.monotonic())
"""
import json
import sys
from pathlib import Path
from urllib.parse import parse_qs

import django
from django.conf import settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-tutorial",
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer",
                                    "CONFIG": {"capacity": 100_000, "expiry": 60}}},
        USE_TZ=True,
    )
    django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402

from bench.rows import sync, write as write_events  # noqa: E402

GROUP = "dashboard"
EPOCH = "tutorial"
head = 0


class TutorialConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def receive_json(self, content):
        if content.get("type") == "subscribe":
            await self.send_json(sync(head, EPOCH))
        elif content.get("type") == "ping":
            await self.send_json({"type": "pong", "id": content.get("id")})

    async def stream_event(self, message):
        await self.send_json(message["event"])


async def write(n, rate, rows):
    layer = get_channel_layer()

    async def send(frame):
        global head
        head = frame["seq"]
        await layer.group_send(GROUP, {"type": "stream.event", "event": frame})

    return await write_events(head + 1, n, rate, rows, send)


async def http(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
    if scope["path"] == "/bench/write":
        status, result = 200, await write(int(query.get("n", 1)), float(query.get("rate", 0)), int(query.get("rows", 50)))
    else:
        status, result = 404, {}
    body = json.dumps(result).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


application = ProtocolTypeRouter({"http": http, "websocket": TutorialConsumer.as_asgi()})
