"""Prototypes of changes not (yet) in the project, to measure them before anyone writes them
for real. Off unless asked: `python bench/run.py --patches all ...` sets BENCH_PATCHES.
Nothing in realtime/ changes.

- connecttimeout: daphne --websocket_connect_timeout 30 (default 5 s): under a reconnect
  storm daphne answers 403 to handshakes the application has not accepted within 5 s,
  throwing away the work already done for them (bench/common.py adds the flag).
- asynccommit: PostgreSQL writers commit with synchronous_commit=off (set through
  DATABASE_URL options). NOT durable as is: a crash of PostgreSQL can lose the last
  ~0.6 s of commits that clients already saw; it is only safe together with an epoch change
  whenever the database restarts (see docs/performance.md). It shows what the one-fsync-per-
  change rule costs.

The earlier prototypes (headfix, publisher, sqliteconn, leanauth, redistimeout) were merged
into the project or made moot by it; re-measure them by checking out an older revision.
"""
import os

ALL = ("connecttimeout", "asynccommit")


def enabled():
    names = set(filter(None, os.environ.get("BENCH_PATCHES", "").split(",")))
    return set(ALL) if "all" in names else names


def database_url(url):
    """The writer's DATABASE_URL, with asynchronous commit if that prototype is on."""
    if "asynccommit" in enabled() and url.startswith("postgres"):
        return url + ("&" if "?" in url else "?") + "options=-c%20synchronous_commit%3Doff"
    return url
