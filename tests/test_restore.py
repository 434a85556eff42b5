"""A restore from a backup never leaves a dashboard stale (docs/operations.md, "Restoring a
backup"): the database goes back to the backup while a dashboard is away, the server restarts
on it, writes push the head past the number the dashboard last saw. The dashboard resumes
with its fingerprint and gets a reset, not a delta on top of a history that no longer exists.
A client that sends no fingerprint is reset by `manage.py stream_restored`. On SQLite (a file
copy) and on PostgreSQL (pg_dump and pg_restore)."""
import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
import uuid

import pytest

from tests.conftest import ROOT, DaphneServer, require
from tests.support.stream import StreamClient

pytestmark = [pytest.mark.server]


class Site:
    """A database of its own (not the test's), and the manage.py commands that use it."""

    def __init__(self, url, env):
        self.url = url
        self.env = dict(env, DATABASE_URL=url)

    def manage(self, *args, timeout=120):
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                                text=True, timeout=timeout)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    def shell(self, code):
        return self.manage("shell", "-c", code).strip().splitlines()[-1:] or [""]

    def setup(self):
        self.manage("migrate", "--noinput", "-v", "0")
        code = ("from django.contrib.auth import get_user_model\nfrom django.test import Client\n"
                "u=get_user_model().objects.create_superuser('op','op@example.com','op-pass-123456')\n"
                "c=Client(); c.force_login(u); print(c.cookies['sessionid'].value)")
        return "sessionid=" + self.shell(code)[0]

    def write(self, code):
        self.shell("from tasks.models import Task\n" + code)

    def window(self, limit):
        code = ("import json\nfrom tasks.models import Agent, Task\nfrom realtime.models import Stream\n"
                f"print(json.dumps({{'head': Stream.objects.get(pk=1).head, 'tasks': {{t.pk: t.version for t in Task.objects.order_by('-id')[:{limit}]}},"
                " 'agents': dict(Agent.objects.values_list('name', 'version'))}))")
        found = json.loads(self.shell(code)[0])
        self.agents = found["agents"]
        return found["head"], {int(k): v for k, v in found["tasks"].items()}


class OldClient(StreamClient):
    """A client from before fingerprints: it resumes with `since` and `epoch` only."""

    def subscribe_frame(self):
        frame = super().subscribe_frame()
        del frame["fp"]
        return frame


def env_for(server_env):
    env = dict(server_env)
    env.pop("DATABASE_URL", None)
    return dict(env, DJANGO_SECRET_KEY="restore-" + "k" * 40, REALTIME_HEARTBEAT_INTERVAL="1",
                REALTIME_HEARTBEAT_TIMEOUT="3")


async def away_and_back(site, backup, restore, tmp_path):
    cookie = site.setup()
    site.write("[Task.objects.create(title=f'before {i}') for i in range(5)]")
    server = DaphneServer(site.env).start()
    view = {"limit": 50}
    fresh = StreamClient(server.ws, cookie, server.http, view=view).start()
    old = OldClient(server.ws, cookie, server.http).start()
    try:
        assert await fresh.wait_for(lambda c: c.last is not None, 15)
        assert await old.wait_for(lambda c: c.last is not None, 15)
        backup()  # the backup: five tasks
        site.write("t=Task.objects.order_by('pk').first(); t.title='renamed after the backup'; t.save()\n"
                   "[Task.objects.create(title=f'lost {i}') for i in range(3)]\nTask.objects.order_by('pk').last().delete()\n"
                   "from tasks.models import Agent\nAgent.objects.create(name='lost agent')")
        head, _ = await asyncio.to_thread(site.window, 50)
        assert await fresh.wait_for(lambda c: c.last == head, 15) and await old.wait_for(lambda c: c.last == head, 15)
        await fresh.stop()  # away: the laptop sleeps
        await old.stop()
        seen, fp = fresh.last, fresh.fp
        assert fp, "a view's range carries the fingerprint of its position"
        server.stop()
        restore()  # the database goes back to the backup
        server = DaphneServer(site.env, port=server.port).start()
        site.write("[Task.objects.create(title=f'after the restore {i}') for i in range(9)]")  # the head passes `seen`
        head, window = await asyncio.to_thread(site.window, 50)
        assert head > seen
        resets = fresh.resets
        fresh.stopped = False
        fresh.start()
        assert await fresh.wait_for(lambda c: c.last == head and not c.subscribing, 15)
        assert {i: r["version"] for i, r in fresh.tasks.items()} == window
        assert not any(r["title"].startswith("lost") or r["title"] == "renamed after the backup" for r in fresh.tasks.values())
        assert {r["name"]: r["version"] for r in fresh.agents.values()} == site.agents, "an agent of the lost history stayed"
        assert fresh.resets == resets + 1, "the resume after the restore was a reset"
        # The client without a fingerprint: after `stream_restored` it resets too.
        await asyncio.to_thread(site.manage, "stream_restored")
        head, window = await asyncio.to_thread(site.window, 10_000)
        old.stopped = False
        old.start()
        assert await old.wait_for(lambda c: c.last == head and not c.subscribing, 15)
        assert {i: r["version"] for i, r in old.tasks.items()} == window
        assert await fresh.wait_for(lambda c: c.last == head, 15)  # the open dashboard follows the new epoch
        assert {i: r["version"] for i, r in fresh.tasks.items()} == window
    finally:
        await fresh.stop()
        await old.stop()
        server.kill()


async def test_a_sqlite_restore_from_a_file_copy(server_env, tmp_path):
    path = tmp_path / "site.sqlite3"
    site = Site(f"sqlite:///{path}", env_for(server_env))
    saved = tmp_path / "backup.sqlite3"

    def backup():
        source, target = sqlite3.connect(path), sqlite3.connect(saved)
        source.backup(target)  # a consistent copy of a database in use (WAL included)
        source.close()
        target.close()

    def restore():
        for suffix in ("-wal", "-shm"):
            (tmp_path / f"site.sqlite3{suffix}").unlink(missing_ok=True)
        shutil.copyfile(saved, path)

    await away_and_back(site, backup, restore, tmp_path)


async def test_a_postgresql_restore_with_pg_dump_and_pg_restore(server_env, postgres_url, tmp_path):
    require(shutil.which("pg_dump") and shutil.which("pg_restore"), "pg_dump and pg_restore (apt-get install postgresql-client)")
    name = f"restore_{uuid.uuid4().hex[:8]}"
    admin = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q", "-c"]
    subprocess.run([*admin, f'CREATE DATABASE "{name}"'], check=True, timeout=60)
    site = Site(f"postgresql://postgres@127.0.0.1:5432/{name}", env_for(server_env))
    dump = tmp_path / "backup.dump"
    try:
        await away_and_back(
            site,
            lambda: subprocess.run(["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "-Fc", "-f", str(dump), name],
                                   check=True, timeout=120),
            lambda: subprocess.run(["pg_restore", "-h", "127.0.0.1", "-U", "postgres", "--clean", "--if-exists",
                                    "-d", name, str(dump)], check=True, timeout=120),
            tmp_path)
    finally:
        subprocess.run([*admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], timeout=60)
