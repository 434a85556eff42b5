"""Agent tokens are trusted for API_TOKEN_CACHE_SECONDS after a check (tasks/tokens.py): a report
costs no token read, and a revoked token still stops working within seconds everywhere."""
import time

import pytest
import requests
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tasks import tokens
from tasks.models import Agent, AgentToken


@pytest.fixture(autouse=True)
def fresh_cache():
    tokens.checked.forget()
    yield
    tokens.checked.forget()


@pytest.mark.django_db
def test_a_checked_token_is_not_read_again_until_its_time_is_up(settings):
    settings.API_TOKEN_CACHE_SECONDS = 0.5
    agent = Agent.objects.create(name="a")
    row, secret = tokens.issue(agent)
    assert tokens.authenticate(secret).pk == row.pk
    with CaptureQueriesContext(connection) as queries:
        assert tokens.authenticate(secret).pk == row.pk
    assert len(queries) == 0
    AgentToken.objects.filter(pk=row.pk).update(revoked_at=timezone.now())  # another process revokes it
    assert tokens.authenticate(secret) is not None  # still trusted here, for at most 0.5 s
    time.sleep(0.6)
    assert tokens.authenticate(secret) is None
    assert tokens.authenticate(secret + "x") is None  # a wrong secret is never taken from the cache


@pytest.mark.django_db
def test_revoking_forgets_the_token_in_this_process_at_once(settings):
    settings.API_TOKEN_CACHE_SECONDS = 60
    row, secret = tokens.issue(Agent.objects.create(name="a"))
    assert tokens.authenticate(secret) is not None
    assert tokens.revoke(AgentToken.objects.filter(pk=row.pk)) == 1
    assert tokens.authenticate(secret) is None


@pytest.mark.django_db
def test_zero_checks_every_request(settings):
    settings.API_TOKEN_CACHE_SECONDS = 0
    _, secret = tokens.issue(Agent.objects.create(name="a"))
    tokens.authenticate(secret)
    with CaptureQueriesContext(connection) as queries:
        tokens.authenticate(secret)
    assert len(queries) == 1


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_a_token_revoked_elsewhere_stops_working_on_a_server_within_its_cache_time(daphne, kind):
    def issue():
        return tokens.issue(Agent.objects.create(name="revoked-soon"))

    row, secret = await sync_to_async(issue)()
    server = daphne(kind=kind, API_TOKEN_CACHE_SECONDS=1)
    headers = {"Authorization": f"Bearer {secret}"}
    get = lambda: requests.get(f"{server.http}/api/agent/me/", headers=headers, timeout=5).status_code  # noqa: E731
    assert await sync_to_async(get)() == 200
    revoked_at = time.monotonic()
    await sync_to_async(lambda: AgentToken.objects.filter(pk=row.pk).update(revoked_at=timezone.now()))()
    while await sync_to_async(get)() != 401:
        assert time.monotonic() - revoked_at < 3, "the revoked token kept working past its cache time"
        time.sleep(0.1)
