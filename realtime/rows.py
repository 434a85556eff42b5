"""How rows look on the wire: the helpers every entity's serializer uses, and `serialize()`.

Each entity's row function is declared with the entity (realtime/registry.py; the tasks app's
are in tasks/rows.py). A row is bounded in size whatever the database holds: text fields
travel as an excerpt (`bounded`), and `truncated` names the fields that were cut. That is
what lets every frame fit (realtime/frames.py).
"""
from . import registry


def iso(value):
    return value.isoformat() if value is not None else None


def bounded(row, limits):
    """Cut the text fields of `row` to their limits ((name, characters) pairs); list the cut
    ones in `truncated`. The full text stays in the database, the admin and the API."""
    cut = []
    for name, size in limits:
        value = row[name]
        if value is not None and len(value) > size:
            row[name] = value[:size]
            cut.append(name)
    if cut:
        row["truncated"] = cut
    return row


def serialize(instance):
    """The row of a streamed instance, as its entity's serializer makes it."""
    return registry.serialize(instance)
