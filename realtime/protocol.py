"""Protocol names and close codes, defined once (docs/protocol.md is the reference).

The browser's copy is static/realtime/constants.js; keep the two in step.
"""

# Channel-layer plumbing (server side only).
STREAM_GROUP = "dashboard.stream"
LAYER_CHANGES = "stream.changes"  # dispatched to the hub, never to a socket
LAYER_ACCESS = "stream.access"  # sessions ended, users to re-check (realtime/access.py)

# Client -> server.
SUBSCRIBE = "subscribe"
PING = "ping"
PONG = "pong"
CLIENT_TYPES = frozenset({SUBSCRIBE, PING, PONG})

# Server -> client.
SYNC = "sync"
EVENT = "event"
EVENTS = "events"
ERROR = "error"

# Event ops. The entities are whatever is registered (realtime/registry.py).
UPSERT = "upsert"
DELETE = "delete"
OPS = (UPSERT, DELETE)

# Error frame codes (the connection stays open).
ERR_BAD_JSON = "bad_json"
ERR_NOT_OBJECT = "not_object"
ERR_UNKNOWN_TYPE = "unknown_type"
ERR_BAD_FIELD = "bad_field"
ERR_BINARY = "binary_frame"
ERR_CLOSING = "closing"  # sent just before a close, with `close` (the code) and the reason
ERR_UNAVAILABLE = "unavailable"  # a sync cannot be built now (database down); it is retried
ERR_BAD_VIEW = "bad_view"  # a subscribe's view is malformed; nothing was built
ERR_VIEW_REQUIRED = "view_required"  # a subscribe without a view, on a table too large for one client

# Close codes. 4000-4499: reconnect with backoff. 4500-4999: terminal, do not reconnect.
CLOSE_TOO_LARGE = 1009
CLOSE_SERVER_ERROR = 1011
CLOSE_SERVICE_RESTART = 1012
CLOSE_HEARTBEAT_TIMEOUT = 4008
CLOSE_TRY_LATER = 4013  # a service the server needs (the database) is not answering
CLOSE_RATE_LIMITED = 4029
CLOSE_TOO_MANY_SOCKETS = 4030  # this user has REALTIME_MAX_SOCKETS_PER_USER open already
CLOSE_NOT_SIGNED_IN = 4501
CLOSE_FORBIDDEN = 4503
CLOSE_PROTOCOL_VIOLATION = 4509
CLOSE_BY_OPERATOR = 4510  # an operator closed this user's dashboards from the admin

# A client that sends this many bad frames in a row is closed with 4509: it is a bug, and
# reconnecting would only repeat it.
MAX_CONSECUTIVE_ERRORS = 10
