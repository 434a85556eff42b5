"""Adjustments to daphne, installed once when the realtime app loads (RealtimeConfig.ready).

Daphne is always installed (it is `manage.py runserver`), so these are installed in every
process; under uvicorn they are simply never called. Six of them:

1. Close codes. Daphne closes sockets through autobahn's `sendClose()`, which accepts only
   1000 and 3000-4999 and raises for every other code, although RFC 6455 and the IANA
   registry define 1009 (message too big), 1011 (server error) and 1012 (service restart)
   for servers to send. Without it the restart notice on SIGTERM is an exception.
2. Floods. Daphne parses every frame into an unbounded per-connection queue, faster than
   the application can refuse them; one flooding client could stall the whole process.
   When a connection has MAX_QUEUED_FRAMES frames waiting, it is not read any further and
   is closed with 4029 (too many messages).
3. Shutdown. The listening ports are recorded so that on SIGTERM the process stops
   accepting connections before it closes the ones it has (realtime/lifecycle.py), and
   those closes get a longer close handshake (allow_slow_close_handshakes).
4. Writes. Twisted buffers every write and registers the socket for writability
   (`epoll_ctl`), writes when the reactor next polls, then unregisters it: two system calls
   and a poll per frame, and in a fan-out every socket's bytes wait until the loop over all
   sockets has finished (bench/findings.md, finding 1). An open WebSocket's transport now
   writes at once when nothing is waiting in its buffer, the way asyncio's transports do,
   and buffers only what the kernel did not take.
5. Idle sockets. Daphne walks every connection once a second to reap finished application
   instances (`Server.application_checker`): at 10,000 idle sockets, a quarter of the
   process's idle time (bench/findings.md, finding 9). The walk now runs on a loop of our
   own every APPLICATION_CHECK_EVERY seconds; what it finds (a connection closed and its
   consumer done) only waits that much longer to be forgotten.
6. Buffered bytes. Daphne hands every frame to its transport, which buffers without limit
   whatever a reader does not take: ten sockets that asked for syncs and never read grew a
   process from 127 MB to 2.2 GB in 30 s. Each WebSocket's scope now carries
   `scope["extensions"]["dashboard.buffered"]`, a function that says how many bytes its
   transport holds, so the consumer bounds them (realtime/consumers.py) as it bounds its own
   queue under uvicorn.

These reach into daphne's, autobahn's and Twisted's internals. Each is installed on its own
(one that cannot be installed does not stop the others), only after checking that what it
touches exists, and the startup log names those installed and those not. They were tested
with the versions in TESTED (major.minor); another version logs an error, and
tests/test_daphne_compat.py fails, so a dependency upgrade is a deliberate step.
pyproject.toml pins daphne, autobahn and twisted to the tested ranges.
"""
import logging

from .protocol import CLOSE_RATE_LIMITED, CLOSE_SERVER_ERROR, CLOSE_SERVICE_RESTART, CLOSE_TOO_LARGE

log = logging.getLogger("realtime.daphne")

SERVER_CODES = frozenset({CLOSE_TOO_LARGE, CLOSE_SERVER_ERROR, CLOSE_SERVICE_RESTART})
MAX_QUEUED_FRAMES = 100
APPLICATION_CHECK_EVERY = 5  # seconds between walks over every connection
SHUTDOWN_CLOSE_HANDSHAKE_TIMEOUT = 5.0  # seconds a peer has to answer a 1012 close on SIGTERM
TESTED = {"daphne": (4, 2), "autobahn": (26, 11), "twisted": (26, 10)}  # major.minor of each

listening_ports = []
servers = []  # daphne's Server objects, for their connections at shutdown
installed = set()  # the adjustments in place, for tests and the startup log
failed = {}  # name -> why an adjustment is not installed


def _version(module):
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return "unknown"


def _major_minor(text):
    parts = text.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def untested_versions():
    """{package: installed version} for each package whose major.minor differs from TESTED."""
    versions = {name: _version(name) for name in TESTED}
    return {name: v for name, v in versions.items() if _major_minor(v) != TESTED[name]}


def patch_daphne():
    """Install the six adjustments (once), each on its own; log what was installed."""
    try:
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError as exc:
        log.error("daphne cannot be imported (%s): none of its adjustments are installed", exc)
        return
    if getattr(WebSocketProtocol, "dashboard_patched", False):
        return
    WebSocketProtocol.dashboard_patched = True
    untested = untested_versions()
    if untested:
        log.error("daphne adjustments were tested with %s (major.minor); installed: %s: check realtime/daphne_compat.py",
                  {k: ".".join(map(str, v)) for k, v in TESTED.items()}, untested)
    adjustments = [
        ("close_codes", WebSocketProtocol, ("serverClose", "sendCloseFrame"), _patch_close),
        ("flood_guard", WebSocketProtocol, ("onMessage", "sendCloseFrame"), _patch_flood),
        ("eager_writes", WebSocketProtocol, ("onOpen",), _patch_eager_writes),
        ("application_checker", Server, ("application_checker",), _patch_application_checker),
        ("buffered_bytes", Server, ("create_application",), _patch_buffered),
        ("listeners", Server, ("listen_success",), _patch_listen),
    ]
    for name, target, needs, install in adjustments:
        missing = [attr for attr in needs if not hasattr(target, attr)]
        if missing:
            failed[name] = f"{target.__name__} has no {', '.join(missing)}"
            continue
        try:
            install(target)
        except Exception as exc:  # one adjustment that cannot be installed leaves the others
            failed[name] = f"{type(exc).__name__}: {exc}"
    if failed:
        log.error("daphne adjustments NOT installed: %s", failed)


def log_installed():
    """Called when a server process starts serving (realtime/hub.py): under daphne, say which
    adjustments are in place."""
    if servers:
        log.info("daphne adjustments installed: %s%s", ", ".join(sorted(installed)),
                 f"; NOT installed: {failed}" if failed else "")


def _patch_close(protocol):
    close = protocol.serverClose

    def serverClose(self, code=None):
        if code in SERVER_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            close(self, code)

    protocol.serverClose = serverClose
    installed.add("close_codes")


def _patch_flood(protocol):
    on_message = protocol.onMessage
    warned = []

    def onMessage(self, payload, isBinary):
        queue = getattr(self, "application_queue", None)
        if queue is None:
            if not warned:
                warned.append(True)
                log.error("daphne connections have no application_queue: the flood guard is off")
        elif queue.qsize() >= MAX_QUEUED_FRAMES:
            if not getattr(self, "flooded", False):
                self.flooded = True
                log.warning("closing a flooding client %s with %s", getattr(self, "client_addr", "?"), CLOSE_RATE_LIMITED)
                self.transport.pauseProducing()  # stop reading it: its frames cost nothing now
                self.sendCloseFrame(code=CLOSE_RATE_LIMITED, isReply=False)
            return
        on_message(self, payload, isBinary)

    protocol.onMessage = onMessage
    installed.add("flood_guard")


TRANSPORT_PARTS = ("writeSomeData", "dataBuffer", "offset", "_tempDataLen", "_writeDisconnected", "connected", "disconnecting")


def eager_writer(transport):
    """`transport.write`, trying the socket first: the kernel takes what it can now and only
    the rest is buffered (in order, behind nothing). None for a transport of another kind
    (TLS terminated in daphne, say), which keeps Twisted's own write."""
    if not all(hasattr(transport, name) for name in TRANSPORT_PARTS):
        return None
    buffered_write = transport.write

    def write(data):
        if (data and transport.connected and not transport.disconnecting and not transport._writeDisconnected
                and transport.offset == len(transport.dataBuffer) and not transport._tempDataLen):
            sent = transport.writeSomeData(data)
            if isinstance(sent, int) and sent > 0:
                if sent >= len(data):
                    return
                data = data[sent:]
            # 0: the kernel's buffer is full; an exception: the connection is gone, which the
            # reactor finds out when it writes the rest, as it would have without this.
        buffered_write(data)

    return write


def _patch_eager_writes(protocol):
    on_open = protocol.onOpen
    warned = []

    def onOpen(self):
        write = eager_writer(self.transport)
        if write is not None:
            self.transport.write = write
        elif not warned:
            warned.append(True)
            log.info("a %s transport keeps Twisted's buffered writes", type(self.transport).__name__)
        return on_open(self)

    protocol.onOpen = onOpen
    installed.add("eager_writes")


BUFFERED = "dashboard.buffered"


def buffered_bytes(transport):
    """Bytes a Twisted TCP transport holds that the kernel has not taken yet."""
    try:
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    except (AttributeError, TypeError):
        return 0


def _patch_buffered(server):
    create_application = server.create_application

    def with_buffered(self, protocol, scope):
        if scope.get("type") == "websocket":
            scope.setdefault("extensions", {})[BUFFERED] = lambda: buffered_bytes(getattr(protocol, "transport", None))
        return create_application(self, protocol, scope)

    server.create_application = with_buffered
    installed.add("buffered_bytes")


def _patch_application_checker(server):
    walk = server.application_checker  # daphne's walk; it ends by scheduling itself 1 s later

    def application_checker(self):
        """Daphne calls this at start and after each walk: the first call starts our loop,
        which walks every APPLICATION_CHECK_EVERY seconds; the others do nothing."""
        if getattr(self, "dashboard_checker", None) is None:
            from twisted.internet import task

            self.dashboard_checker = task.LoopingCall(walk, self)
            self.dashboard_checker.start(APPLICATION_CHECK_EVERY, now=False)

    server.application_checker = application_checker
    installed.add("application_checker")


def _patch_listen(server):
    listen_success = server.listen_success

    def record_listen_success(self, port):
        listening_ports.append(port)
        if self not in servers:
            servers.append(self)
        return listen_success(self, port)

    server.listen_success = record_listen_success
    installed.add("listeners")


def allow_slow_close_handshakes(seconds=SHUTDOWN_CLOSE_HANDSHAKE_TIMEOUT):
    """Before the 1012 closes of a shutdown: give each peer `seconds` to answer its close.

    Autobahn waits 1 s for the reply to a close frame, then aborts the connection, and the
    abort (RST) makes the peer's kernel drop what it had not read yet, the close frame too:
    a client slow to read (2,000 of them in one process, in a test) saw 1006 instead of
    1012. The 1 s stays for every other close, so a dead peer's connection is still released
    within a second of its 4008."""
    for server in servers:
        for protocol in list(getattr(server, "connections", {})):
            if hasattr(protocol, "closeHandshakeTimeout"):
                protocol.closeHandshakeTimeout = seconds


def stop_listening():
    """Refuse new connections (a load balancer sends them to another process)."""
    for port in listening_ports:
        try:
            port.stopListening()
        except Exception as exc:
            log.warning("could not stop listening on %s: %s", port, exc)
