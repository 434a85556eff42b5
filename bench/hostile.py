"""A hostile viewer for bench/scenarios/hostile.py, run as its own process (on the client
core): for `--seconds`, keeps `--sockets` sockets flooding `subscribe` with `since: 0`,
reconnecting whenever closed, and sends a 200 KB frame on one more socket every second.
Prints the close codes it saw as JSON. Loopback only; stops by itself."""
import argparse
import asyncio
import collections
import json
import time

import websockets


async def flooder(url, headers, end, codes, oversized=False):
    while time.monotonic() < end:
        try:
            async with websockets.connect(url, additional_headers=headers, ping_interval=None, max_size=None,
                                          open_timeout=5) as ws:
                if oversized:
                    await ws.send(json.dumps({"type": "subscribe", "since": 0, "epoch": None, "pad": "x" * 200_000}))
                    await asyncio.wait_for(ws.wait_closed(), 5)
                while time.monotonic() < end:
                    await ws.send('{"type":"subscribe","since":0,"epoch":null}')
                    await asyncio.sleep(0)
        except websockets.ConnectionClosed as exc:
            codes[exc.rcvd.code if exc.rcvd else 1006] += 1
        except (OSError, asyncio.TimeoutError) as exc:
            codes[type(exc).__name__] += 1
        await asyncio.sleep(1.0 if oversized else 0.05)


async def main(args):
    headers = {"Cookie": args.cookie, "Origin": "http://127.0.0.1"}
    url = f"ws://127.0.0.1:{args.port}/ws/dashboard/"
    end = time.monotonic() + args.seconds
    codes = collections.Counter()
    await asyncio.gather(*(flooder(url, headers, end, codes) for _ in range(args.sockets)),
                         flooder(url, headers, end, codes, oversized=True))
    print(json.dumps({str(k): v for k, v in codes.items()}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cookie", required=True)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--sockets", type=int, default=20)
    asyncio.run(main(parser.parse_args()))
