"""Prometheus metrics of this process, served at /metrics (docs/operations.md)."""
from prometheus_client import Counter, Gauge, Histogram

OPEN_CONNECTIONS = Gauge("dashboard_ws_open_connections", "WebSocket connections open in this process")
CONNECTIONS = Counter("dashboard_ws_connections_total", "WebSocket connections accepted")
REFUSED = Counter("dashboard_ws_refused_total", "Connections closed at once, by close code", ["code"])
CLOSED = Counter("dashboard_ws_closed_total", "Connections closed by the server, by close code", ["code"])
FRAMES_SENT = Counter("dashboard_ws_frames_sent_total", "Frames sent to clients", ["type"])
# Bound once: the fan-out and the heartbeat count on every frame, a label lookup each time is waste.
EVENT_FRAMES_SENT = FRAMES_SENT.labels(type="event")
PING_FRAMES_SENT = FRAMES_SENT.labels(type="ping")
RANGE_FRAMES_SENT = FRAMES_SENT.labels(type="range")
PINGS_SKIPPED = Counter("dashboard_ws_pings_skipped_total", "Routine pings not sent: the socket had sent something within the interval")
SYNCS = Counter("dashboard_ws_syncs_total", "sync answers, by kind", ["kind"])
HEARTBEAT_TIMEOUTS = Counter("dashboard_ws_heartbeat_timeouts_total", "Connections closed for a late pong")
BAD_FRAMES = Counter("dashboard_ws_bad_frames_total", "Frames answered with an error", ["code"])
PUBLISHED = Counter("dashboard_changes_published_total", "Changes handed to the channel layer")
PUBLISH_FAILURES = Counter("dashboard_publish_failures_total", "Publishes the channel layer refused")
GAPS = Counter("dashboard_stream_gaps_total", "Missing sequence numbers the hub noticed")
HEAD = Gauge("dashboard_stream_head", "Newest sequence number this process knows")
STREAM_LOCK_TIMEOUTS = Counter("dashboard_stream_lock_timeouts_total", "Writers that gave up waiting for the stream lock")
DATABASE_UP = Gauge("dashboard_database_up", "1 while this process's last stream-head read succeeded, else 0")
ACCESS_ENDED = Counter("dashboard_ws_access_ended_total", "Sockets closed because access ended, by reason", ["reason"])
SYNC_WAITS = Counter("dashboard_ws_sync_retries_total", "Sync builds retried because the database did not answer")
EPOCH_ROTATIONS = Counter("dashboard_stream_epoch_rotations_total", "Times this process saw the stream epoch change")
DATABASE_CONNECTIONS = Counter("dashboard_database_connections_opened_total", "Database connections this process opened")
REPORT_BATCH = Histogram("dashboard_agent_report_batch_size", "Agents' progress reports written in one transaction",
                         buckets=(1, 2, 4, 8, 16, 32, 64, 100))
LIVE_VIEWS = Gauge("dashboard_views_live", "Distinct views whose windows this process keeps")
VIEW_REFILLS = Counter("dashboard_view_refills_total", "Windows that read more rows from the database")
SHARED_SYNCS = Counter("dashboard_ws_shared_syncs_total",
                       "Syncs answered from another socket's read of the same position, with no read of their own")
VIEW_SEEDS = Counter("dashboard_view_seeds_total", "Windows read whole from the database (a view's first socket)")
POSITIONS_REFUSED = Counter("dashboard_ws_positions_refused_total",
                            "Resumes answered with a reset because the client's position was not this database's", ["reason"])
TASKS_RETIRED = Counter("dashboard_tasks_retired_total", "Finished tasks deleted by the retention job")
OUTBOX_CLOSES = Counter("dashboard_ws_outbox_closes_total",
                        "Sockets closed with 4008 for holding too many unsent bytes, by bound", ["bound"])
