"""The REALTIME_* settings: what each one means, its default, and which values it takes.

This app owns its settings, as Channels and DRF own theirs: `SETTINGS` below is the one
table. The site's settings module takes each from the environment variable of the same name
(dashboard_site/settings.py, through dashboard_site/env.py, which refuses a bad value with
the rule's words), and code reads them as `django.conf.settings.REALTIME_*`. A value set in
Python (another settings module, a test) is checked by `check_settings`, a system check run by
`manage.py check`, `migrate` and `runserver`.
"""
import math
from dataclasses import dataclass

from django.conf import settings
from django.core.checks import Error, Tags, register

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Number:
    """A number of `unit` (decimals allowed) greater than 0; also 0 when `zero` says what 0 means."""

    default: float
    unit: str = "seconds"
    zero: str = ""

    @property
    def expected(self):
        bound = "0 or more" if self.zero else "greater than 0"
        return f"a number of {self.unit}, {bound}" + (f" (0: {self.zero})" if self.zero else "")

    def parse(self, value):
        if isinstance(value, bool):
            raise ValueError(value)
        number = float(value.strip() if isinstance(value, str) else value)
        if not math.isfinite(number) or number < 0 or (number == 0 and not self.zero):
            raise ValueError(value)
        return number


@dataclass(frozen=True)
class Whole:
    """A whole number of `unit`, at least `minimum`."""

    default: int
    unit: str
    minimum: int = 1

    @property
    def expected(self):
        return f"a whole number of {self.unit}, at least {self.minimum}"

    def parse(self, value):
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(value)
        number = int(value.strip() if isinstance(value, str) else value)
        if number < self.minimum:
            raise ValueError(value)
        return number


@dataclass(frozen=True)
class LogLevel:
    """A logging level name, in any case."""

    default: str
    expected: str = "a log level: " + ", ".join(LOG_LEVELS)

    def parse(self, value):
        level = str(value).strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(value)
        return level


MiB = 1024 * 1024

SETTINGS = {
    # Heartbeat (docs/protocol.md): the server pings every INTERVAL and closes a socket with
    # 4008 whose pong is TIMEOUT late.
    "REALTIME_HEARTBEAT_INTERVAL": Number(25.0),
    "REALTIME_HEARTBEAT_TIMEOUT": Number(10.0),
    # Deletions are remembered this long; a client that last synced before that gets a reset.
    "REALTIME_TOMBSTONE_RETENTION": Number(7 * 24 * 3600.0),
    # Task and agent history (timelines, the throughput chart) is kept this many days and at
    # most this many rows, whichever is less (realtime/changes.py).
    "REALTIME_HISTORY_DAYS": Number(7.0, "days"),
    "REALTIME_HISTORY_MAX_ROWS": Whole(2_000_000, "rows", minimum=1000),
    # A larger client frame closes the socket with 1009.
    "REALTIME_MAX_FRAME_BYTES": Whole(65536, "bytes"),
    # No frame the server sends is larger: `events` batches and `sync` parts are cut to fit
    # (daphne refuses to send a message over 1 MiB; proxies and browsers have limits too).
    "REALTIME_MAX_SEND_BYTES": Whole(262144, "bytes", minimum=16384),
    # Frames queued for one socket whose server makes sends wait (uvicorn's backpressure;
    # daphne buffers): past this the reader is closed with 4008 (realtime/outbox.py).
    "REALTIME_MAX_OUTBOX_BYTES": Whole(64 * MiB, "bytes", minimum=MiB),
    # Bytes queued for all of one user's sockets in one process; the socket whose frame
    # passes it is closed with a retry code.
    "REALTIME_MAX_USER_OUTBOX_BYTES": Whole(128 * MiB, "bytes"),
    # Long text (a task's error) travels as an excerpt this long, named in the row's
    # `truncated`; the full text is in the admin and the API.
    "REALTIME_WIRE_TEXT_CHARS": Whole(2000, "characters", minimum=100),
    # Every open socket's access is checked again this often (sign-out, deactivation and
    # permission changes are pushed at once; this catches expiry and the rest).
    "REALTIME_AUTH_RECHECK_INTERVAL": Number(5.0),
    # Syncs built at once per process, each in a database thread of its own; others wait.
    "REALTIME_MAX_CONCURRENT_SYNCS": Whole(4, "syncs"),
    # A socket's subscribes closer together than this are answered once, at the end of the gap.
    "REALTIME_MIN_SUBSCRIBE_INTERVAL": Number(1.0, zero="every subscribe is answered at once"),
    # A subscribe without a view on a task table larger than this is answered with an error
    # frame telling the client to use a view.
    "REALTIME_MAX_STREAM_ROWS": Whole(50000, "rows"),
    # Open sockets per user in one process; the next one is closed with 4030 (retry later).
    "REALTIME_MAX_SOCKETS_PER_USER": Whole(30, "sockets"),
    # A writer waits this long for the stream lock, then fails with a clear error (API: 503).
    "REALTIME_STREAM_LOCK_TIMEOUT": Number(10.0),
    # Client frames per second per socket, sustained and in a burst; beyond that 4029.
    "REALTIME_RATE_LIMIT": Number(20.0, "frames per second"),
    "REALTIME_RATE_BURST": Number(60.0, "frames"),
    # How long a process waits for a missing sequence number before letting clients heal the gap.
    "REALTIME_REORDER_WINDOW": Number(0.25),
    # Time given to the 1012 close frames on SIGTERM before the process stops.
    "REALTIME_SHUTDOWN_GRACE": Number(0.5),
    # Connect, disconnect (with reason and code) and resync logs.
    "REALTIME_LOG_LEVEL": LogLevel("INFO"),
}

# Sync functions every server process runs periodically (realtime/jobs.py), as (dotted path,
# seconds); a site adds its own (the agents' liveness sweep). Not from the environment.
REALTIME_PERIODIC_JOBS = []


@register(Tags.compatibility)
def check_settings(app_configs, **kwargs):
    """realtime.E100 for each REALTIME_* setting outside its rule, however it was set."""
    errors = []
    for name, rule in SETTINGS.items():
        value = getattr(settings, name, rule.default)
        try:
            rule.parse(value)
        except (TypeError, ValueError):
            errors.append(Error(f"{name}={value!r} is not {rule.expected}.", hint=f"The default is {rule.default!r}.",
                                id="realtime.E100"))
    for job in getattr(settings, "REALTIME_PERIODIC_JOBS", REALTIME_PERIODIC_JOBS):
        if not (isinstance(job, (list, tuple)) and len(job) == 2 and isinstance(job[0], str)
                and isinstance(job[1], (int, float)) and job[1] > 0):
            errors.append(Error(f"REALTIME_PERIODIC_JOBS entry {job!r} is not (dotted path, seconds > 0).",
                                id="realtime.E100"))
    return errors
