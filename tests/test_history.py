"""History that moves backwards or is rewritten changes the epoch, so every client resets
(realtime/epochs.py): a database head lower than a process has seen (a restore), fixtures
loaded with `loaddata`, data migrations."""
import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from realtime.epochs import after_migrate
from realtime.models import Stream
from realtime.snapshot import stream_position
from tasks.models import Task
from tests.support.faults import settle
from tests.support.stream import ResilientStreamClient

ORIGIN = "http://127.0.0.1"


@pytest.mark.django_db(transaction=True)
def test_loaddata_rotates_the_epoch_and_moves_the_head_past_every_loaded_version(tmp_path):
    task = Task.objects.create(title="from a fixture")
    fixture = tmp_path / "tasks.json"
    call_command("dumpdata", "tasks.task", output=str(fixture))
    before = Stream.objects.get()
    Task.objects.all().delete()
    Stream.objects.filter(pk=1).update(head=1)  # as if the fixture came from a longer history
    call_command("loaddata", str(fixture), verbosity=0)
    after = Stream.objects.get()
    assert after.epoch != before.epoch
    assert after.head >= Task.objects.get(pk=task.pk).version
    later = Task.objects.create(title="after the fixture")
    assert later.version > Task.objects.get(pk=task.pk).version, "new numbers are above every loaded row"


@pytest.mark.django_db(transaction=True)
def test_a_data_migration_rotates_the_epoch_and_a_schema_one_does_not():
    loader = MigrationLoader(connection)
    data_migration = loader.get_migration("realtime", "0002_stream_row")  # RunPython
    schema_migration = loader.get_migration("tasks", "0004_text_limits")  # AlterField only
    epoch, _ = stream_position()
    after_migrate(None, plan=[(schema_migration, False)])
    assert Stream.objects.get().epoch == epoch
    after_migrate(None, plan=[(data_migration, False)])
    assert Stream.objects.get().epoch != epoch


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
async def test_a_database_restored_to_an_earlier_head_makes_every_client_reset(daphne, session_cookie):
    server = daphne()
    await sync_to_async(lambda: [Task.objects.create(title=f"t{i}") for i in range(10)])()
    client = ResilientStreamClient(server.ws, session_cookie, ORIGIN).start()
    try:
        assert await client.wait_for(lambda c: c.last is not None and len(c.tasks) == 10, 20)
        epoch = client.epoch

        def restore():
            """What a restore from an older backup looks like: fewer rows, a lower head, the
            same epoch (the backup has the stream row too)."""
            newest = list(Task.objects.order_by("-version").values_list("pk", flat=True)[:4])
            with connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM tasks_task WHERE id IN ({','.join(map(str, newest))})")
                cursor.execute("UPDATE realtime_stream SET head = head - 4")

        await sync_to_async(restore)()
        assert await client.wait_for(lambda c: c.epoch != epoch, 15), "the epoch did not change"
        bad, _ = await settle([client], 15)
        assert not bad and len(client.tasks) == 6 and client.resets >= 2
        # Numbering goes on above anything a client has seen.
        stream = await sync_to_async(Stream.objects.get)()
        assert stream.epoch == client.epoch
        made = await sync_to_async(Task.objects.create)(title="after the restore")
        assert await client.wait_for(lambda c: made.pk in c.tasks, 10)
        await asyncio.sleep(0)
    finally:
        await client.stop()
