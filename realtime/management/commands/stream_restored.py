"""manage.py stream_restored: run it after restoring the database from a backup.

A restore takes the stream's history back to the moment of the backup, and the numbers after
it are then issued again for other changes. Dashboards that resume with a fingerprint find
that out by themselves (docs/protocol.md, "Fingerprints"); this command makes sure of it for
every client, as etcd's `snapshot restore --bump-revision --mark-compacted` does for its
watchers: the stream gets a new epoch and a head past every number stored, so every open
dashboard and every client of any version resets on its next contact. docs/operations.md,
"Restoring a backup".
"""
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from realtime.epochs import rotate_epoch


class Command(BaseCommand):
    help = "Run after restoring the database from a backup: every open dashboard resets instead of resuming."

    def handle(self, *args, **options):
        try:
            epoch, head = rotate_epoch("the database was restored from a backup (manage.py stream_restored)")
        except DatabaseError as exc:
            raise CommandError(f"could not reach the database to start a new epoch: {exc}. Check DATABASE_URL "
                               "(the restored database) and run the command again.") from exc
        self.stdout.write(f"The stream starts over at epoch {epoch}, head {head}: every dashboard resets on "
                          "its next contact.")
