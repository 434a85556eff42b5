"""The views of one process: one window per distinct view, shared by every socket that has it.

The hub hands every contiguous run of events to `LiveViews.advance()`. Each change of the
windowed entity updates the counts (rows per status) and every live view's Window
(realtime/windows.py); then each view sends its subscribers one range frame,
`{"type":"events","from":A,"to":B,"items":[...],"counts":{...}}`, encoded once for all of them.
Changes of the other entities (agents) are items of every range. A change to a row outside
every window costs each socket an empty range, with the counts when they changed.

A view is seeded from the database when its first socket subscribes (realtime/snapshot.py
reads the window, `matched` and the counts in one snapshot at some number H); the socket's
consumer then replays the events after H that the hub fanned out meanwhile (`attach`). Later
sockets with the same view get the live window as it is, without reading the database.

When the process misses events (a gap it gave up on, a new epoch), every window is dropped
(`drop_all`); their sockets are told by a ping with the head and subscribe again.
"""
import asyncio
import logging

from django.conf import settings

from . import dbwork, metrics, registry
from .frames import dumps, limit as send_limit, sync_frames
from .protocol import DELETE, EVENTS
from .windows import Held, Window

log = logging.getLogger("realtime.views")

REFILL_RETRY_SECONDS = 1.0


def held_of(spec, layout, row, text=None):
    """A Held from a wire row (its text encoded here unless given)."""
    return Held(row["version"], text if text is not None else dumps(row), spec.values_of_row(row, layout))


class LiveView:
    """One distinct view in this process: its window, its sockets, and what they were sent."""

    def __init__(self, view, seq):
        self.view = view
        self.window = Window(view.limit, view.matcher)
        self.subscribers = set()
        self.seq = seq  # every change up to here is applied
        self.sent_seq = seq  # the sockets hold the window as of here (behind seq while short)
        self.others = []  # other entities' Events since sent_seq
        self.extra = []  # side-set items since sent_seq
        self.counts_sent = None  # the counts as last sent
        self.answer = None  # (rows, head) of a refill read ahead of seq
        self.ready = asyncio.Event()  # set while not short: sockets may join
        self.syncs = {}  # (seq, since or "reset") -> encoded sync frames, shared by a storm

    def __repr__(self):
        return f"<LiveView {self.view.echo} at {self.seq}>"


class LiveViews:
    def __init__(self, hub):
        self.hub = hub
        self.entity = registry.windowed()
        self.layout = self.entity.watched if self.entity else ()
        self.views = {}  # key -> LiveView with subscribers
        self.sides = {}  # name -> LiveView of a side set (no subscribers of its own)
        self.counts = None  # rows per status at `self.seq`, or None while unknown
        self.seq = None

    # Events ------------------------------------------------------------------------------

    def advance(self, events):
        """Apply a contiguous run of events to the counts and every window; send the ranges."""
        if not self.views:
            self.counts, self.seq = None, None  # nobody holds a view: nothing to keep exact
            self.sides.clear()
            return
        name = self.entity.name
        changes, others = [], []
        for event in events:
            if event.entity == name:
                changes.append(self._change(event))
            else:
                others.append(event)
        self._count(changes)
        last = events[-1].seq
        for view in (*self.sides.values(), *self.views.values()):
            window = view.window
            for change in changes:
                window.apply(*change)
            view.seq = last
        self.seq = last
        side_items = {name: self._side_items(side) for name, side in self.sides.items()}
        for view in tuple(self.views.values()):
            view.others.extend(others)
            for side in view.view.sides:
                view.extra.extend(side_items.get(side, ()))
            if view.window.short:
                view.ready.clear()  # the range waits for the rows it lacks
            else:
                self._emit(view)
        for view in (*self.sides.values(), *self.views.values()):
            self._settle(view)

    def _change(self, event):
        """(seq, id, before, after, held) of an Event of the windowed entity."""
        if event.op == DELETE:
            return event.seq, event.id, event.before, None, None
        held = held_of(self.entity.views, self.layout, event.data)
        return event.seq, event.id, event.before, held.values, held

    def _count(self, changes):
        counts = self.counts
        if counts is None:
            return
        for _, _, before, after, _ in changes:
            if before is not None:
                counts[before[0]] = counts.get(before[0], 0) - 1
            if after is not None:
                counts[after[0]] = counts.get(after[0], 0) + 1

    def counts_of(self, view):
        return {**self.counts, "matched": view.window.matched}

    # Ranges ------------------------------------------------------------------------------

    def _emit(self, view):
        """Send `view`'s sockets one range: from what they were last sent to `view.seq`."""
        upserts, leaving = view.window.diff()
        name = self.entity.name
        items = [event.text for event in view.others]
        items += [_upsert(name, held) for _, held in upserts]
        items += [_delete(name, row_id, left) for row_id, left in leaving]
        items += view.extra
        counts = self.counts_of(view)
        text = f'{{"type":"{EVENTS}","from":{view.sent_seq + 1},"to":{view.seq},"items":[{",".join(items)}]'
        if counts != view.counts_sent:
            text += ',"counts":' + dumps(counts)
        fp = self.hub.fp_of(view.seq)
        text += (f',"fp":"{fp}"' if fp else "") + "}"
        texts = [text] if len(text) <= send_limit() else self.sync_texts(view, agents="range")
        view.others, view.extra = [], []
        view.sent_seq, view.counts_sent = view.seq, counts
        view.syncs.clear()
        view.ready.set()
        metrics.RANGE_FRAMES_SENT.inc(len(view.subscribers) * len(texts))
        for consumer in tuple(view.subscribers):
            for frame in texts:
                consumer.send_range(frame)

    def _side_items(self, side):
        if side.window.short:
            return ()  # its rows follow once it has them
        upserts, leaving = side.window.diff()
        name = side.view.echo["side"]
        return [_upsert(name, held) for _, held in upserts] + [_delete(name, row_id, False) for row_id, _ in leaving]

    def _settle(self, view):
        """After a run (or a read): merge a refill that the window has caught up with, send a
        range that waited for it, and ask for more rows when the reserve runs low."""
        window = view.window
        if view.answer is not None and view.seq >= view.answer[1]:
            rows, head = view.answer
            view.answer = None
            window.refill(rows, head)
            if not view.view.side and view.sent_seq < view.seq and not window.short and self._alive(view):
                self._emit(view)
        if window.wants_refill:
            below, want = window.refill_request()
            asyncio.ensure_future(self._refill(view, below, want))
        if not window.short:
            view.ready.set()

    async def _refill(self, view, below, want):
        from .snapshot import read_window

        try:
            head, rows = await dbwork.run("views", read_window, view.view, below, want)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("could not read more rows for the view %s (%s); retrying", view.view.echo, exc)
            view.window.abandon_refill()
            await asyncio.sleep(REFILL_RETRY_SECONDS)
            if self._alive(view):
                self._settle(view)
            return
        if not self._alive(view):
            return
        rows = [(row["id"], held_of(self.entity.views, self.layout, row)) for row in rows]
        metrics.VIEW_REFILLS.inc()
        view.answer = (rows, head)
        self._settle(view)

    def _alive(self, view):
        key = view.view.key
        return (self.sides.get(key[1]) if view.view.side else self.views.get(key)) is view

    # Sockets -----------------------------------------------------------------------------

    def find(self, view):
        """The live view for `view`, or None."""
        return self.views.get(view.key)

    def attach(self, consumer, view, seed, buffered):
        """Subscribe `consumer` to `view` at the hub's current number. `seed` is what the
        database held at seed.head (realtime/snapshot.py ViewSeed), `buffered` the events
        fanned out since the consumer started syncing. Returns the LiveView, or None when
        the view must be seeded first, or when its window is short (wait for `ready`)."""
        hub_seq = self.hub.sent
        live = self.views.get(view.key)
        if live is None:
            if seed is None or seed.window is None:
                return None
            live = self._seeded(view, seed, buffered, hub_seq)
            if live is None:
                return None
        for name in view.sides:
            if name not in self.sides:
                if seed is None or name not in seed.sides:
                    return None
                self._seed_side(name, seed, buffered, hub_seq)
        if live.window.short or live.sent_seq != hub_seq:
            return None
        live.subscribers.add(consumer)
        return live

    def _seeded(self, view, seed, buffered, hub_seq):
        after = [e for e in buffered if e.seq > seed.head]
        if (after and after[0].seq != seed.head + 1) or (after and after[-1].seq != hub_seq) or (not after and seed.head != hub_seq):
            return None  # the buffer does not join the seed to the hub: read again
        if self.counts is None:
            self.counts = dict(seed.counts)
            self.seq = seed.head
            self._count([self._change(e) for e in after if e.entity == self.entity.name])
            self.seq = hub_seq
        live = LiveView(view, seed.head)
        live.window.seed([(row["id"], held_of(self.entity.views, self.layout, row, text)) for row, text in seed.window], seed.matched)
        for event in after:
            if event.entity == self.entity.name:
                live.window.apply(*self._change(event))
        live.window.diff()  # nobody holds it yet: start tracking from here
        live.seq = live.sent_seq = hub_seq
        live.counts_sent = self.counts_of(live)
        self.views[view.key] = live
        metrics.LIVE_VIEWS.set(len(self.views))
        self._settle(live)
        if not live.window.short:
            live.ready.set()
        return live

    def _seed_side(self, name, seed, buffered, hub_seq):
        view, rows, matched = seed.sides[name]
        side = LiveView(view, seed.head)
        side.window.seed([(row["id"], held_of(self.entity.views, self.layout, row)) for row in rows], matched)
        for event in buffered:
            if event.seq > seed.head and event.entity == self.entity.name:
                side.window.apply(*self._change(event))
        side.window.diff()
        side.seq = side.sent_seq = hub_seq
        self.sides[name] = side
        self._settle(side)

    def detach(self, consumer, live):
        live.subscribers.discard(consumer)
        if not live.subscribers and self.views.get(live.view.key) is live:
            del self.views[live.view.key]
            metrics.LIVE_VIEWS.set(len(self.views))
            wanted = {name for other in self.views.values() for name in other.view.sides}
            for name in list(self.sides):
                if name not in wanted:
                    del self.sides[name]

    def drop_all(self, why):
        """Forget every window (events were missed): each socket must subscribe again."""
        if self.views:
            log.info("dropping %d views: %s", len(self.views), why)
        for live in self.views.values():
            for consumer in tuple(live.subscribers):
                consumer.view_lost()
        self.views.clear()
        self.sides.clear()
        self.counts, self.seq = None, None
        metrics.LIVE_VIEWS.set(0)

    # The sync a socket gets --------------------------------------------------------------

    def side_rows(self, view):
        return {name: self.sides[name].window.window_rows() for name in view.sides if name in self.sides}

    def sync_texts(self, live, agents, epoch=None, reset=False, deleted=None, fp=None):
        """The sync of `live` at its number: the window, the counts, the side sets, and
        `agents` ({entity key: [encoded rows]}), or "range" for the rows of the other
        entities' changes since the last range (a range too large for one frame goes as a
        sync instead)."""
        if agents == "range":
            agents, deleted = _others_as_rows(live.others)
        keys = [e.key for e in registry.entities()]
        rows = {key: list(agents.get(key, ())) for key in keys}
        rows[self.entity.key] = [held.text for held in live.window.window_rows()]
        for name, held_rows in self.side_rows(live.view).items():
            rows[name] = [held.text for held in held_rows]
        extras = {"heartbeat_interval": settings.REALTIME_HEARTBEAT_INTERVAL, "view": live.view.echo,
                  "counts": self.counts_of(live)}
        fp = self.hub.fp_of(live.seq) or fp
        if fp:
            extras["fp"] = fp
        return sync_frames(epoch=epoch or self.hub.epoch, seq=live.seq, reset=reset, rows=rows,
                           deleted={key: list((deleted or {}).get(key, ())) for key in keys}, extras=extras)


def _upsert(name, held):
    return f'{{"type":"event","seq":{held.version},"entity":"{name}","op":"upsert","data":{held.text}}}'


LEFT = ',"left":true'


def _delete(name, row_id, left):
    return f'{{"type":"event","entity":"{name}","op":"delete","data":{{"id":{row_id}}}{LEFT if left else ""}}}'


def _others_as_rows(events):
    """({key: [encoded rows]}, {key: [deleted ids]}) of other entities' events, last one wins."""
    latest = {}
    for event in events:
        latest[(event.entity, event.id)] = event
    rows, deleted = {}, {}
    for (name, row_id), event in latest.items():
        key = name + "s"
        if event.op == DELETE:
            deleted.setdefault(key, []).append(row_id)
        else:
            rows.setdefault(key, []).append(dumps(event.data))
    return rows, deleted
