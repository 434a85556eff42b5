"""The demo fleet against a real daphne process: its changes reach a WebSocket client, which
ends equal to the database."""
import asyncio
import subprocess

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.core.management.base import CommandError

from tasks.models import Agent, AgentToken, Task
from tests.conftest import PYTHON, ROOT
from tests.support.stream import StreamClient, database_versions

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fast_logins(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", "django.contrib.auth.hashers.PBKDF2PasswordHasher"]


def fleet_summary():
    return {
        "agents": Agent.objects.filter(name__startswith="demo-").count(),
        "worked": Task.objects.exclude(status="queued").count(),
        "succeeded": Task.objects.filter(status="succeeded").count(),
        "tokens": AgentToken.objects.filter(revoked_at__isnull=True).count(),
    }


async def test_demo_fleet_changes_reach_a_websocket_client(daphne, fast_logins, session_cookie):
    # Long enough that every agent finishes something on a loaded machine (the fleet reports
    # progress every 1-3 s, scaled by --rate), short enough that silences are noticed.
    server = daphne(AGENT_OFFLINE_AFTER="4", AGENT_SWEEP_INTERVAL="0.5")
    client = StreamClient(server.ws, session_cookie, server.http).start()
    try:
        assert await client.wait_for(lambda c: c.last is not None), server.log()[-2000:]
        fleet = await asyncio.create_subprocess_exec(
            PYTHON, "manage.py", "demo_fleet", "--agents", "4", "--rate", "5", "--duration", "10",
            "--silence-chance", "0.05", "--seed", "7", "--url", server.http,
            cwd=ROOT, env=server.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        output = (await asyncio.wait_for(fleet.communicate(), 90))[0].decode(errors="replace")
        assert fleet.returncode == 0, output[-3000:]
        assert "errors 0" in output.splitlines()[-1], output[-3000:]

        # The database may still move (the server's own sweep); compare until both agree.
        for _ in range(10):
            expected = await sync_to_async(database_versions)()
            if await client.wait_for(lambda c: c.versions() == expected, timeout=3):
                break
        assert client.versions() == expected, server.log()[-3000:]
        summary = await sync_to_async(fleet_summary)()
        assert summary["agents"] == 4 and summary["tokens"] == 4
        assert summary["worked"] >= 4 and summary["succeeded"] >= 1, (summary, output[-2000:])
        # Provisioning (and the fleet's own sweep) write from the fleet's process, which the
        # server learns from the stream head, so a client may resync; it must still converge.
        assert client.events >= 20
    finally:
        await client.stop()


def test_demo_fleet_explains_bad_options_and_a_missing_server():
    with pytest.raises(CommandError, match="--rate"):
        call_command("demo_fleet", "--rate", "0")
    with pytest.raises(CommandError, match="--agents"):
        call_command("demo_fleet", "--agents", "0")
    with pytest.raises(CommandError, match="No server at"):
        call_command("demo_fleet", "--agents", "1", "--url", "http://127.0.0.1:9", "--wait", "0.5")
