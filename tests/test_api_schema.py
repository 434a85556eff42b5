"""Schemathesis against the served OpenAPI schema: no 5xx, and every answer matches the schema.

Runs in-process through the WSGI app (same code as under daphne, minus the socket), with a
real agent token and a staff session, and steers most generated ids to rows that exist so
the success paths are exercised as well as the 404s."""
import itertools

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_schema_conformance, status_code_conformance,
)

from tasks import tokens
from tasks.models import Agent, Task

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
CSRF = "a" * 32  # any 32-character secret, sent as both the cookie and the header


@pytest.fixture
def in_process_requests(db):
    """Let WSGI requests run inside the test's transaction, as Django's test client does:
    the end-of-request handler would otherwise close the connection (and the transaction)."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


# Loaded once at collection: serving the schema needs no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@pytest.fixture
def fast_logins(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", "django.contrib.auth.hashers.PBKDF2PasswordHasher"]


@pytest.fixture
def world(in_process_requests, fast_logins, session_cookie):
    """Credentials and a few rows in every state, for generated requests to land on."""
    cache.clear()
    agent, other = Agent(name="fuzz-agent"), Agent(name="other-agent")
    agent.save()
    other.save()
    token = tokens.issue(agent)[1]
    # The fuzzing agent runs nothing yet, so its first claim succeeds; a task running on
    # another agent gives the 403 paths something to hit.
    tasks = [Task(title=f"t{i}", status=s, agent=None if s == "queued" else other,
                  progress=100 if s == "succeeded" else 10)
             for i, s in enumerate(["queued", "queued", "queued", "running", "succeeded", "failed", "cancelled"])]
    for task in tasks:
        task.save()
    session_id = session_cookie.split("=", 1)[1]
    return {
        "headers": {"Authorization": f"Bearer {token}", "X-CSRFToken": CSRF},
        "cookies": {"sessionid": session_id, "csrftoken": CSRF},
        "task_ids": [t.pk for t in tasks],
        "agent_ids": [agent.pk, other.pk],
        "counter": itertools.count(),
    }


@schema.parametrize()
@hypothesis_settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_schema(case, world, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"agent": "100000/min", "operator": "100000/min"}}
    ids = world["agent_ids"] if case.path.startswith("/api/agents/") else world["task_ids"]
    if "id" in (case.path_parameters or {}) and next(world["counter"]) % 4:
        # Three in four requests hit a real row; the rest keep the generated (mostly unknown) id.
        case.path_parameters["id"] = ids[case.path_parameters["id"] % len(ids)] if isinstance(case.path_parameters["id"], int) else case.path_parameters["id"]
    case.call_and_validate(headers=world["headers"], cookies=world["cookies"], checks=CHECKS)
