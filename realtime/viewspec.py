"""Views (docs/protocol.md, "Views"): how clients ask for a window of an entity, never all of it.

A client subscribes with a `view` (filters and a limit); its window is the matching rows,
newest first (id descending), at most `limit` of them. The entity registered with `views`
(realtime/registry.py) brings a ViewSpec that says what its filters mean, in three forms
that must agree: as a check of a row's values (`matcher`, run in memory on every change),
as a database query (`query`), and as a count (`count`). The tasks app's spec is
tasks/windows.py; realtime/ knows nothing of its filters.
"""
from dataclasses import dataclass, field
from typing import Callable


class ViewError(ValueError):
    """A malformed view: the message names the key and what it expects."""


@dataclass(frozen=True, eq=False)
class View:
    """A view as the server understood it. Views with the same `key` share one window per
    process (realtime/live.py)."""

    key: tuple  # hashable: the filters, the limit and the side sets
    limit: int
    echo: dict  # the view with defaults filled in, as the sync repeats it
    matcher: Callable  # (id, the entity's watched values) -> does the row match?
    filters: object = None  # the spec's own form of the filters, for query() and count()
    sides: tuple = ()  # names of the side sets asked for (ViewSpec.sides)
    side: bool = False  # this is a side set itself, not a client's view
    spec: object = field(default=None, repr=False)


class ViewSpec:
    """What a view of one entity means. Subclass it for the entity (tasks/windows.py)."""

    # The model fields (attnames) the matcher reads. Sequencing reads their values before
    # every change (registry Entity.watched, which starts with the status field), so a
    # process decides in memory whether a change touches a window.
    fields: tuple = ()
    # The row's key for each field, where it differs from the attname: {"agent_id": "agent"}.
    row_keys: dict = {}
    default_limit = 200
    max_limit = 1000
    # Side sets a view may ask for beside its window (each a view of its own, see `side()`);
    # their rows travel under their own key, never as the entity's rows.
    sides: tuple = ()

    def parse(self, raw, layout):
        """The View for a client's `view` object; raises ViewError. `layout` is the order of
        the watched values the matcher receives (registry Entity.watched)."""
        raise NotImplementedError

    def side(self, name, layout):
        """The View of the side set `name`."""
        raise NotImplementedError

    def query(self, view, below=None):
        """The matching rows (a QuerySet, any order) with an id below `below` when given."""
        raise NotImplementedError

    def count(self, view, counts):
        """How many rows match the view, in the caller's transaction. `counts` are the rows per
        status at the same moment (realtime/counts.py), for views that need no query."""
        raise NotImplementedError

    def newest(self, view, n, below=None):
        """The `n` newest matching rows (id descending) with an id below `below`."""
        return list(self.query(view, below).order_by("-pk")[:n])

    def values_of_row(self, row, layout):
        """The watched values of a row as the wire shows it, in `layout` order."""
        keys = self.row_keys
        return tuple(row.get(keys.get(name, name)) for name in layout)
