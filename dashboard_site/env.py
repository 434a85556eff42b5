"""Every environment variable the site reads is parsed and checked here.

dashboard_site/settings.py reads each variable of README.md's "Configuration" table through
one of these helpers (the REALTIME_* ones through `setting()`, with realtime/conf.py's rules).
Unset or blank means the documented default. Anything else is parsed when the settings load,
so a bad value stops the server, `manage.py check` and every other command before they start,
with an ImproperlyConfigured that names the variable, the value, what it expects and the
default:

    REALTIME_MAX_FRAME_BYTES='64k': expected a whole number of bytes, at least 1. Unset, it
    defaults to 65536.

`VARIABLES` lists every variable read, with its default as README.md shows it; the tests hold
README.md and deploy/dashboard.env to it.
"""
import ipaddress
import math
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

VARIABLES = {}  # name -> its default, as shown in README.md and in error messages

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Throttle periods: DRF reads only the first letter, so "600/min" and "600/m" both work.
PERIODS = {"s": "second", "sec": "second", "second": "second", "m": "minute", "min": "minute",
           "minute": "minute", "h": "hour", "hour": "hour", "d": "day", "day": "day"}
DATABASE_SCHEMES = ("sqlite", "postgres", "postgresql", "pgsql")
REDIS_SCHEMES = ("redis", "rediss", "unix")


class Refused(ValueError):
    """A value a converter refuses, with a word on which part is wrong."""


def show(value):
    """A default the way README.md writes it: 25 not 25.0, 1 or 0 for a boolean, a list joined."""
    if value is None or value == [] or value == "":
        return "none"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def read(name, default, convert, expected, shown=None):
    """`convert(value)` of the variable `name`, or `default` when it is unset or blank.

    `convert` raises ValueError (Refused to say which part is wrong) for a value it refuses;
    the error then names the variable, the value, `expected` and the default."""
    shown = show(default) if shown is None else shown
    VARIABLES[name] = shown
    value = os.environ.get(name, "")
    if not value.strip():
        return default
    try:
        return convert(value)
    except ValueError as exc:
        detail = f" ({exc})" if isinstance(exc, Refused) else ""
        raise ImproperlyConfigured(
            f"{name}={value!r}: expected {expected}{detail}. Unset, it defaults to {shown}."
        ) from None


def setting(name, rule):
    """A setting whose `rule` (realtime/conf.py) has its default, what it expects and a parse()."""
    return read(name, rule.default, rule.parse, rule.expected)


def renamed(old, new):
    """Refuse a variable that was renamed, rather than ignore it."""
    if os.environ.get(old, "").strip():
        raise ImproperlyConfigured(f"{old} was renamed: set {new} instead.")


# Kinds of value ---------------------------------------------------------------------------------


def boolean(name, default, shown=None):
    """1/0, true/false, yes/no or on/off."""
    def convert(value):
        value = value.strip().lower()
        if value not in TRUE + FALSE:
            raise ValueError(value)
        return value in TRUE
    return read(name, default, convert, "1 or 0 (or true/false, yes/no, on/off)", shown)


def whole(name, default, unit, minimum=1, zero=None):
    """A whole number of `unit`, at least `minimum`; 0 too when `zero` says what 0 means."""
    minimum = 0 if zero else minimum
    def convert(value):
        number = int(value.strip())
        if number < minimum:
            raise ValueError(value)
        return number
    bound = "0 or more" if zero else f"at least {minimum}"
    return read(name, default, convert, f"a whole number of {unit}, {bound}" + _zero(zero))


def number(name, default, unit, zero=None):
    """A number of `unit` (decimals allowed) greater than 0; 0 too when `zero` says what 0 means."""
    def convert(value):
        result = float(value.strip())
        if not math.isfinite(result) or result < 0 or (result == 0 and not zero):
            raise ValueError(value)
        return result
    bound = "0 or more" if zero else "greater than 0"
    return read(name, default, convert, f"a number of {unit}, {bound}" + _zero(zero))


def seconds(name, default, zero=None):
    return number(name, default, "seconds", zero)


def minutes(name, default, zero=None):
    return number(name, default, "minutes", zero)


def _zero(zero):
    return f" (0: {zero})" if zero else ""


def choice(name, default, choices):
    """One of `choices`, in any case."""
    def convert(value):
        if value.strip().lower() not in choices:
            raise ValueError(value)
        return value.strip().lower()
    return read(name, default, convert, " or ".join(choices))


def log_level(name, default, shown=None):
    """A logging level name, in any case."""
    def convert(value):
        if value.strip().upper() not in LOG_LEVELS:
            raise ValueError(value)
        return value.strip().upper()
    return read(name, default, convert, "a log level: " + ", ".join(LOG_LEVELS), shown)


def text(name, default="", pattern=None, expected="any text", shown=None):
    """The value as it is (a secret is not stripped); with `pattern`, it must match it whole."""
    def convert(value):
        if pattern and not re.fullmatch(pattern, value):
            raise ValueError(value)
        return value
    return read(name, default, convert, expected, shown)


def absolute_path(name, default, shown=None):
    def convert(value):
        path = Path(value.strip()).expanduser()
        if not path.is_absolute():
            raise ValueError(value)
        return path
    return read(name, default, convert, "an absolute path, e.g. /srv/dashboard/staticfiles", shown)


def items(name, default, each, expected, shown=None):
    """A comma-separated list; `each(item)` raises Refused naming an item it refuses."""
    def convert(value):
        entries = [item.strip() for item in value.split(",") if item.strip()]
        for entry in entries:
            each(entry)
        return entries
    return read(name, default, convert, expected, shown)


def hosts(name, default, shown=None):
    """Host names for ALLOWED_HOSTS: no scheme, path or space (an entry with one never matches)."""
    def each(host):
        if "://" in host or "/" in host or " " in host:
            raise Refused(f"{host!r} is not a host name")
    return items(name, default, each, "comma-separated host names, e.g. dash.example.com,.example.com", shown)


def origins(name, default):
    """Origins for CSRF_TRUSTED_ORIGINS: a scheme, a host, maybe a port, no path."""
    def each(origin):
        if not re.fullmatch(r"https?://[^/\s]+", origin):
            raise Refused(f"{origin!r} is not an origin")
    return items(name, default, each, "comma-separated origins with their scheme, e.g. https://dash.example.com")


def networks(name, default):
    """IP addresses or networks; returned as written, for dashboard_site/proxy.py to parse."""
    def each(entry):
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise Refused(f"{entry!r} is not an IP address or network") from None
    return items(name, default, each, "comma-separated IP addresses or networks, e.g. 127.0.0.1,::1,10.0.0.0/8")


def rate(name, default):
    """A throttle rate for DRF: N/second, N/minute, N/hour or N/day (also s, sec, m, min, h, d)."""
    def convert(value):
        match = re.fullmatch(r"\s*(\d+)\s*/\s*([a-z]+?)s?\s*", value.lower())
        if not match or int(match.group(1)) < 1 or match.group(2) not in PERIODS:
            raise ValueError(value)
        return f"{int(match.group(1))}/{match.group(2)}"
    return read(name, default, convert, "a rate: a whole number of requests (at least 1), '/', and second, "
                "minute, hour or day (also s, sec, m, min, h, d), e.g. 600/min")


def database_url(name, default, shown=None):
    """A PostgreSQL URL with a database name, or an SQLite URL with a file path."""
    def convert(value):
        url = urlsplit(value.strip())
        if url.scheme not in DATABASE_SCHEMES:
            raise Refused(f"the scheme must be one of {', '.join(DATABASE_SCHEMES)}")
        if url.path.strip("/") in ("", ":memory:"):
            raise Refused("a database name (PostgreSQL) or a file path (SQLite) is missing")
        return value.strip()
    return read(name, default, convert, "postgresql://user:password@host:5432/name or sqlite:////absolute/path.sqlite3",
                shown)


def redis_url(name, default):
    """redis://host:port/db, rediss://... (TLS) or unix:///path/to/socket."""
    def convert(value):
        url = urlsplit(value.strip())
        if url.scheme not in REDIS_SCHEMES:
            raise Refused(f"the scheme must be one of {', '.join(REDIS_SCHEMES)}")
        if url.scheme != "unix" and not url.hostname:
            raise Refused("the host is missing")
        if url.scheme == "unix" and not url.path:
            raise Refused("the socket path is missing")
        url.port  # noqa: B018 (raises ValueError for a port that is not a number)
        return value.strip()
    return read(name, default, convert, "a Redis URL, e.g. redis://127.0.0.1:6379/0", "none (the in-process channel layer)")
