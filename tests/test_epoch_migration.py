"""A data migration writes rows without sequencing them, so when `migrate` has run one, the
stream starts a new epoch and numbering goes on above every version stored
(realtime/epochs.py, wired to post_migrate in realtime/apps.py). Otherwise a row the
migration left at version N would be followed by changes numbered below N, and a client that
resumes from N would skip them."""
import pytest
from django.core.management.sql import emit_post_migrate_signal
from django.db import connection, migrations
from django.db.migrations.executor import MigrationExecutor

from realtime.models import Stream
from tasks.models import Task


def _raise_a_version_above_the_head(task_id, version):
    """A migration that writes a version the stream never handed out, with plain SQL."""

    def forwards(apps, schema_editor):
        schema_editor.execute("UPDATE tasks_task SET version = %s WHERE id = %s", [version, task_id])

    class Migration(migrations.Migration):
        operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]

    return Migration("9999_raise_version", "tasks")


@pytest.mark.django_db(transaction=True)
def test_after_a_data_migration_new_changes_are_numbered_above_every_stored_version():
    task = Task.objects.create(title="rewritten by a data migration")
    before = Stream.objects.get()
    raised = before.head + 50
    migration = _raise_a_version_above_the_head(task.pk, raised)

    # What `migrate` does: apply the plan, then send post_migrate with it.
    state = MigrationExecutor(connection).loader.project_state()
    with connection.schema_editor(atomic=True) as editor:
        migration.apply(state, editor)
    assert Task.objects.get(pk=task.pk).version == raised
    emit_post_migrate_signal(0, False, connection.alias, plan=[(migration, False)])

    after = Stream.objects.get()
    assert after.epoch != before.epoch, "a data migration ran: every client must reset"
    assert after.head >= raised, f"the head {after.head} stayed below the migrated version {raised}"
    later = Task.objects.create(title="after the migration")
    assert later.version > raised, f"a new change got {later.version}, not above the migrated row's {raised}"
