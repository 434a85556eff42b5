"""The rows of one view that a process holds, kept exact change by change, in memory.

A Window holds a prefix of the view's matching rows in id order: every matching row with an
id at or above `floor`. The clients see the newest `limit` of them; the rest (up to
`reserve` more) wait below, so that a row leaving the clients' window is replaced from
memory. Each change is applied with the values the row had before and has after it
(realtime/events.py `Event.before`): a row that starts to match above the floor is taken in,
one that stops matching is let go, and `matched` counts every matching row, held or not.

Only when the reserve runs low does the window ask the database for more (`refill_request`),
and the answer, read at some number H, is merged with the changes it missed after H, which
the window logs meanwhile (`refill`). While the clients' window is short of rows that exist,
nothing is sent (`short`): a client never holds a window the database does not have.

No asyncio, no database: realtime/live.py drives it, tests/test_windows.py checks it.
"""
from bisect import bisect_left, insort


class Held:
    """A held row: its version, its encoded wire row, and the watched values it matches with."""

    __slots__ = ("version", "text", "values")

    def __init__(self, version, text, values):
        self.version, self.text, self.values = version, text, values


class Refill:
    """An outstanding request for rows below `floor`, and the changes below it since."""

    __slots__ = ("floor", "want", "log")

    def __init__(self, floor, want):
        self.floor, self.want, self.log = floor, want, []


def reserve_for(limit):
    return max(10, limit // 4)


class Window:
    def __init__(self, limit, matcher, reserve=None):
        self.limit = limit
        self.reserve = reserve_for(limit) if reserve is None else reserve
        self.capacity = limit + self.reserve
        self.matcher = matcher
        self.ids = []  # held ids, ascending
        self.rows = {}  # id -> Held
        self.floor = 0  # every matching row with an id >= floor is held
        self.matched = 0  # matching rows in all, held or not
        self.pending = None  # a Refill on its way
        # Since the last diff(): ids that may need an item, deleted ids, and whether rows were
        # taken in or let go (then the clients' window may have new members).
        self.dirty = set()
        self.deleted = set()
        self.reshaped = False
        self.sent = {}  # id -> version of the clients' window as last sent

    # Seeding and reading -----------------------------------------------------------------

    def seed(self, rows, matched):
        """Start from the database: `rows` the newest matching rows (id descending, as many as
        `capacity` asked for), `matched` how many match in all."""
        self.ids = sorted(row_id for row_id, _ in rows)
        self.rows = dict(rows)
        self.floor = self.ids[0] if len(self.ids) >= self.capacity else 0
        self.matched = matched
        self.dirty, self.deleted, self.reshaped = set(), set(), False
        self.sent = {row_id: self.rows[row_id].version for row_id in self.window_ids()}

    def window_ids(self):
        """The clients' window: the newest `limit` held ids, ascending."""
        return self.ids[-self.limit:]

    def window_rows(self):
        """The clients' window, newest first."""
        return [self.rows[row_id] for row_id in reversed(self.window_ids())]

    @property
    def short(self):
        """True while the clients' window lacks rows that exist below the held ones."""
        return len(self.ids) < self.limit and self.matched > len(self.ids)

    @property
    def wants_refill(self):
        return self.pending is None and self.matched > len(self.ids) and len(self.ids) < self.limit + self.reserve // 2

    # Changes ------------------------------------------------------------------------------

    def apply(self, seq, row_id, before, after, held):
        """One change: `before`/`after` are the watched values (None: the row did not exist /
        was deleted); `held` is the row after it (None for a deletion)."""
        matcher = self.matcher
        was = before is not None and matcher(row_id, before)
        now = after is not None and matcher(row_id, after)
        if was != now:
            self.matched += 1 if now else -1
        if self.pending is not None and row_id < self.pending.floor:
            self.pending.log.append((seq, row_id, now, held))
        if after is None:
            self.deleted.add(row_id)
        if now:
            if row_id in self.rows:
                self.rows[row_id] = held
                self.dirty.add(row_id)
            elif row_id >= self.floor:
                self._take(row_id, held)
                self._trim()
        elif row_id in self.rows:
            self._let_go(row_id)

    def _take(self, row_id, held):
        insort(self.ids, row_id)
        self.rows[row_id] = held
        self.dirty.add(row_id)
        self.reshaped = True

    def _let_go(self, row_id):
        del self.ids[bisect_left(self.ids, row_id)]
        del self.rows[row_id]
        self.dirty.add(row_id)
        self.reshaped = True

    def _trim(self):
        while len(self.ids) > self.capacity:
            lowest = self.ids.pop(0)
            del self.rows[lowest]
            self.floor = lowest + 1
            self.dirty.add(lowest)
            self.reshaped = True

    # More rows from the database ----------------------------------------------------------

    def refill_request(self):
        """(below, how many): what to read, newest first. The window logs the changes below
        `below` until `refill()` takes the answer."""
        self.pending = Refill(self.floor, self.capacity - len(self.ids))
        return self.pending.floor, self.pending.want

    def refill(self, rows, head):
        """Merge `rows` (the newest matching rows below the requested floor, read at number
        `head`, id descending) with the changes logged after `head`. The window must have
        applied every change up to `head` first."""
        pending, self.pending = self.pending, None
        if pending is None or self.floor != pending.floor:
            return  # rows were trimmed meanwhile: the window is full again
        floor = rows[-1][0] if len(rows) >= pending.want else 0
        found = dict(rows)
        for seq, row_id, matches, held in pending.log:
            if seq <= head:
                continue  # already in what was read
            if matches and row_id >= floor:
                found[row_id] = held
            else:
                found.pop(row_id, None)
        for row_id, held in found.items():
            if row_id not in self.rows:
                self._take(row_id, held)
        self.floor = floor
        self._trim()

    def abandon_refill(self):
        """The read failed: ask again later."""
        self.pending = None

    # What the clients are sent ------------------------------------------------------------

    def diff(self):
        """([(id, Held)] to upsert, [(id, left)] to delete) since the last diff, and remember
        the clients' window as sent. `left`: the row still exists but left the window."""
        upserts, leaving = [], []
        sent = self.sent
        if self.reshaped:
            members = self.window_ids()
            current = set(members)
            for row_id in sent:
                if row_id not in current:
                    leaving.append((row_id, row_id not in self.deleted))
            for row_id in members:
                held = self.rows[row_id]
                if sent.get(row_id) != held.version or (row_id in self.dirty and row_id not in sent):
                    upserts.append((row_id, held))
            self.sent = {row_id: self.rows[row_id].version for row_id in members}
        else:
            for row_id in self.dirty:
                held = self.rows.get(row_id)
                if held is not None and row_id in sent and sent[row_id] != held.version:
                    upserts.append((row_id, held))
                    sent[row_id] = held.version
        self.dirty, self.deleted, self.reshaped = set(), set(), False
        return upserts, leaving
