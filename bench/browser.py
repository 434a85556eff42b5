"""A fresh dashboard in Chromium at 10,000 and at 1,000,000 tasks (the views issue's first
target: live within 1 s, at most 300 KB received, a JS heap of at most 30 MB).

    .venv/bin/python bench/browser.py                     # embedded and pg-redis, 10,000 and 1,000,000
    .venv/bin/python bench/browser.py --configs embedded --sizes 10000 --loads 3

Per configuration and table size, one daphne process on the benchmark's big-table template
(bench/scenarios/__init__.py) and Debian's Chromium (/usr/bin/chromium), headless. Each load is
a new browser context signed in as the bench user (its session cookie), and measures:

- live: from the navigation's start to the page holding its view's sync, drawn, on an open
  socket (the condition the browser tests wait on);
- the HTML document's size, every HTTP response's (a new context: nothing cached), and the
  WebSocket bytes and frames received until live, counted by Chromium itself (CDP Network.webSocketFrameReceived);
- the JS heap once live, after a forced collection (CDP HeapProfiler.collectGarbage, then
  Runtime.getHeapUsage's usedSize).

Printed as a table; the numbers go to bench/findings.md by hand. Not part of bench/run.py:
it needs a browser, which the load scenarios do not.
"""
import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cleanup_all  # noqa: E402
from bench.scenarios import EMBEDDED, SCALEOUT, Context, Project  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
QUIET = {"REALTIME_HEARTBEAT_INTERVAL": 600, "REALTIME_HEARTBEAT_TIMEOUT": 60, "TASK_RETENTION_DAYS": 0}
LIVE = ("() => window.dashboard && document.body.dataset.connection === 'open' && window.dashboard.model.hydrated"
        " && !window.dashboard.connection.status.viewPending && window.dashboard.store.view === window.dashboard.model.view")


async def load(browser, port, cookie):
    name, value = cookie.split("=", 1)
    context = await browser.new_context()
    await context.add_cookies([{"name": name, "value": value, "url": f"http://127.0.0.1:{port}"}])
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    received = {"frames": 0, "bytes": 0}
    finished = {}  # request id -> bytes on the wire
    await cdp.send("Network.enable")

    def frame(event):
        received["frames"] += 1
        received["bytes"] += len(event["response"]["payloadData"].encode())

    def response(event):
        if event.get("type") == "Document":
            received["document"] = event["requestId"]

    cdp.on("Network.webSocketFrameReceived", frame)
    cdp.on("Network.responseReceived", response)
    cdp.on("Network.loadingFinished", lambda e: finished.__setitem__(e["requestId"], e["encodedDataLength"]))
    t0 = time.monotonic()
    await page.goto(f"http://127.0.0.1:{port}/", wait_until="commit")
    await page.wait_for_function(LIVE, timeout=60_000)
    live = time.monotonic() - t0
    got = dict(received)
    await cdp.send("HeapProfiler.enable")
    await cdp.send("HeapProfiler.collectGarbage")
    heap = await cdp.send("Runtime.getHeapUsage")
    rows = await page.evaluate("window.dashboard.store.tasks.size")
    total = await page.text_content('[data-count="total"]')
    await context.close()
    return {"live_s": live, "ws_bytes": got["bytes"], "ws_frames": got["frames"], "html_bytes": finished.get(got.get("document"), 0),
            "http_bytes": sum(finished.values()),
            "heap_mb": heap["usedSize"] / 1e6, "rows": rows, "total": total}


async def measure(ctx, config, tasks, loads):
    from playwright.async_api import async_playwright

    with Project(ctx, config, tasks=tasks, **QUIET) as project:
        server = project.start()
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            await load(browser, server.port, project.cookie)  # warms the server's caches and the browser
            results = [await load(browser, server.port, project.cookie) for _ in range(loads)]
            await browser.close()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=[EMBEDDED, SCALEOUT], choices=[EMBEDDED, SCALEOUT])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 1_000_000])
    parser.add_argument("--loads", type=int, default=5, help="measured page loads per variant (after one warm-up)")
    args = parser.parse_args()
    ctx = Context(configs=args.configs, servers=["daphne"])
    print("| configuration | tasks in the table | live s (median, max) | HTML KB | WebSocket KB until live (frames) "
          "| every HTTP response KB (uncached: scripts, styles) | JS heap MB | rows held | total shown |")
    print("|---|---|---|---|---|---|---|---|---|")
    try:
        for config in ctx.configs:
            for tasks in args.sizes:
                r = asyncio.run(measure(ctx, config, tasks, args.loads))
                med = lambda key: statistics.median(x[key] for x in r)  # noqa: E731
                print(f"| {config} | {tasks:,} | {med('live_s'):.2f}, {max(x['live_s'] for x in r):.2f} | "
                      f"{med('html_bytes') / 1e3:.0f} | {med('ws_bytes') / 1e3:.0f} ({med('ws_frames'):.0f}) | "
                      f"{med('http_bytes') / 1e3:.0f} | {med('heap_mb'):.1f} | {r[0]['rows']} | {r[0]['total']} |", flush=True)
    finally:
        cleanup_all()  # the template databases


if __name__ == "__main__":
    main()
