"""The demo fleet against a real daphne process: its changes reach a WebSocket client, which
ends equal to the database; and on demo data it drives the seeded agents (python3 run.py)."""
import asyncio
import subprocess
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from tasks import tokens
from tasks.management.commands.demo_fleet import provision_agents
from tasks.models import Agent, AgentToken, Task
from tests.conftest import PYTHON, ROOT
from tests.support.stream import StreamClient, database_versions

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]


def fleet_summary():
    return {
        "agents": Agent.objects.filter(name__startswith="demo-").count(),
        "worked": Task.objects.exclude(status="queued").count(),
        "succeeded": Task.objects.filter(status="succeeded").count(),
        "tokens": AgentToken.objects.filter(revoked_at__isnull=True).count(),
    }


async def test_demo_fleet_changes_reach_a_websocket_client(daphne, session_cookie):
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


def test_the_fleet_adopts_the_seeded_agents_on_a_demo_database(daphne):
    """What python3 run.py starts: seed_demo, then demo_fleet --adopt. After a few seconds of
    the fleet, every seeded agent has been heard from, none is offline, no other agent
    exists, and no seeded running task is still running at its seeded progress."""
    server = daphne(AGENT_OFFLINE_AFTER="40", AGENT_SWEEP_INTERVAL="0.5")
    # Seeded after the server is up: the seed's heartbeats (up to 20 s old) are then well
    # inside the liveness limit when the fleet takes over, as on a first launch.
    call_command("seed_demo", "--agents", "6", "--tasks", "40", "--seed", "3", stdout=StringIO())
    names = set(Agent.objects.values_list("name", flat=True))
    offline = set(Agent.objects.filter(status="offline").values_list("name", flat=True))
    seeded_running = dict(Task.objects.filter(status="running").values_list("id", "progress"))
    assert offline and seeded_running  # the seed gives the fleet both kinds to take over
    started = timezone.now()
    fleet = subprocess.run(
        [PYTHON, "manage.py", "demo_fleet", "--adopt", "--rate", "5", "--duration", "12", "--silence-chance", "0",
         "--failure-rate", "0", "--seed", "7", "--url", server.http],
        cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=120,
    )
    output = fleet.stdout + fleet.stderr
    assert fleet.returncode == 0, output[-3000:]
    assert "errors 0" in output.splitlines()[-1], output[-3000:]
    assert f"{len(names)} agents working" in output
    assert all(f"{name} is back" in output for name in offline), output[-3000:]

    agents = {a.name: a for a in Agent.objects.all()}
    assert set(agents) == names  # no demo-<name> agents beside the seeded ones
    for agent in agents.values():
        assert agent.last_heartbeat >= started and agent.status != "offline", (agent.name, agent.status, output[-2000:])
    tasks = {t.pk: t for t in Task.objects.filter(pk__in=seeded_running)}
    stuck = [pk for pk, progress in seeded_running.items() if (tasks[pk].status, tasks[pk].progress) == ("running", progress)]
    assert not stuck, (stuck, output[-2000:])
    # Carried on, not dropped: the agents finished the tasks they were seeded with.
    assert sum(t.status == "succeeded" for t in tasks.values()) >= len(seeded_running) // 2, [(t.status, t.progress) for t in tasks.values()]


@pytest.mark.django_db
def test_adopting_takes_the_existing_agents_first_and_makes_up_the_rest():
    call_command("seed_demo", "--agents", "4", "--tasks", "10", "--seed", "1", stdout=StringIO())
    seeded = sorted(Agent.objects.values_list("name", flat=True))
    members = provision_agents(6, "demo", adopt=True)
    assert [m.name for m in members[:4]] == seeded
    assert [m.name for m in members[4:]] == ["demo-atlas", "demo-borealis"]
    for member in members:
        assert tokens.authenticate(member.token).agent.name == member.name
    # Offline seeded agents come back later; everyone else starts at once.
    assert {m.name for m in members if m.offline} == set(Agent.objects.filter(status="offline", name__in=seeded).values_list("name", flat=True))
    assert [m.hostname for m in members[:4]] == [f"{n}.workers.internal" for n in seeded]  # kept, not renamed
    # A second run revokes the first run's tokens and reuses the agents.
    again = provision_agents(6, "demo", adopt=True)
    assert {m.name for m in again} == {m.name for m in members} and Agent.objects.count() == 6
    assert tokens.authenticate(members[0].token) is None


@pytest.mark.django_db
def test_without_adopt_the_fleet_makes_its_own_agents():
    call_command("seed_demo", "--agents", "3", "--tasks", "5", "--seed", "1", stdout=StringIO())
    members = provision_agents(2, "demo")
    assert [m.name for m in members] == ["demo-atlas", "demo-borealis"] and not any(m.offline for m in members)


@pytest.mark.django_db
def test_when_every_adopted_agent_is_offline_all_start_at_once():
    # A later launch: the last fleet stopped and the sweep took every agent offline.
    call_command("seed_demo", "--agents", "4", "--tasks", "5", "--seed", "1", stdout=StringIO())
    for agent in Agent.objects.all():
        agent.status = "offline"
        agent.save()
    assert not any(m.offline for m in provision_agents(4, "demo", adopt=True))
