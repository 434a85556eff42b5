"""A task's title as a view's `q` searches it: case-insensitive for the letters A to Z, every
other character as it is (docs/protocol.md, "Views").

Why only A-Z: SQLite folds exactly those (its LIKE and lower()), and the same fold in Python
and in PostgreSQL is then cheap and certain, so the database and every process's memory agree
on every title in every language. The folded title is stored beside the title
(`Task.title_folded`, kept by every write path) so that PostgreSQL searches it with a plain
LIKE over a trigram index: folding on the fly with translate() cost 3.7 s per million rows.
"""
from django.db.models import CharField, Func

UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER = UPPER.lower()
_FOLD = str.maketrans(UPPER, LOWER)


def fold(text):
    """A to Z in lower case, every other character as it is."""
    return text.translate(_FOLD)


class Folded(Func):
    """fold() in the database, for a title written as an expression (`update(title=F(...))`):
    SQLite's lower() folds only A-Z; PostgreSQL's would fold every letter, so it translates."""

    template = f"translate(%(expressions)s, '{UPPER}', '{LOWER}')"
    output_field = CharField()

    def as_sqlite(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection, template="lower(%(expressions)s)", **extra)
