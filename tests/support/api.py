"""Clients of the API (tasks/api/) for tests: an agent's, with a bearer token, and an
operator's; and throttles that start empty. A test module imports the fixtures it uses."""
import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tasks import tokens
from tests.conftest import signed_in


def bearer_client(agent, token=None):
    """An API client that authenticates as `agent` with `token` (a new one when not given);
    `client.agent` is the agent."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token or tokens.issue(agent)[1]}")
    client.agent = agent
    return client


@pytest.fixture
def op(staff_user):
    """An API client logged in as a staff superuser."""
    return signed_in(APIClient(), staff_user)


@pytest.fixture(autouse=True)
def fresh_throttles():
    """Throttle counters live in the cache: each test starts without any."""
    cache.clear()
    yield
    cache.clear()
