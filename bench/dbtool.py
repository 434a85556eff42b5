"""Django command-line helper for the benchmarks; prints one JSON line.

    DATABASE_URL=... [REDIS_URL=...] python bench/dbtool.py setup --tasks 50 --agents 5
    ... write --n 100 --rate 0 --rows 50        # an external writer (publishes via REDIS_URL)
    ... state                                    # {id: version} of every row, and the head
    ... fill --changes 100000 --rows 50          # what a sleeping dashboard misses
    ... timesync --since S --epoch E             # build_sync() timed in-process
    ... agents --count 8                         # agents with tokens, each running a task
    ... bulk --tasks 1000000 --agents 50         # a large table, inserted in bulk (before the server starts)
    ... timeviews --repeat 20                    # a view's sync read timed in-process, per kind of view
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard_site.settings")


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup")
    p.add_argument("--tasks", type=int, default=50)
    p.add_argument("--agents", type=int, default=5)
    p = sub.add_parser("write")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--rate", type=float, default=0.0)
    p.add_argument("--rows", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--start-at", type=float, default=0.0, help="time.monotonic() to start at")
    p.add_argument("--newest", action="store_true", help="write the newest tasks (in the default window)")
    sub.add_parser("state")
    p = sub.add_parser("fill")
    p.add_argument("--changes", type=int, default=100_000)
    p.add_argument("--rows", type=int, default=50)
    p.add_argument("--deletes", type=int, default=5)
    p = sub.add_parser("timesync")
    p.add_argument("--since", type=int, required=True)
    p.add_argument("--epoch", required=True)
    p.add_argument("--repeat", type=int, default=20)
    p = sub.add_parser("agents")
    p.add_argument("--count", type=int, default=8)
    p = sub.add_parser("bulk")
    p.add_argument("--tasks", type=int, required=True)
    p.add_argument("--agents", type=int, default=50)
    p = sub.add_parser("timeviews")
    p.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    import django

    django.setup()
    from bench import djwork

    if args.command == "setup":
        result = djwork.setup(args.tasks, args.agents)
    elif args.command == "write":
        djwork._rows(args.rows + args.offset, args.newest)  # warm the connections before the clock starts
        from realtime import publish

        publish.connect()
        if args.start_at:
            time.sleep(max(0.0, args.start_at - time.monotonic()))
        t0 = time.monotonic()
        stamps = djwork.write_changes(args.n, args.rate, args.rows, args.offset, args.newest)
        result = {"stamps": stamps, "start": t0, "elapsed": time.monotonic() - t0}
    elif args.command == "state":
        result = djwork.state()
    elif args.command == "agents":
        result = djwork.running_agents(args.count)
    elif args.command == "fill":
        result = djwork.fill(args.changes, args.rows, args.deletes)
    elif args.command == "bulk":
        result = djwork.bulk_tasks(args.tasks, args.agents)
    elif args.command == "timeviews":
        result = djwork.time_views(args.repeat)
    else:
        result = djwork.time_sync(args.since, args.epoch, args.repeat)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
