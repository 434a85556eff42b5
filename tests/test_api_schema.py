"""Schemathesis against the served OpenAPI schema: no 5xx, every answer matches the schema,
what the schema allows is accepted and what it forbids is refused.

Two runs. In-process through the WSGI app (same code as under daphne, minus the socket), with
a real agent token and a staff session, steering most generated ids to rows that exist so the
success paths are exercised as well as the 404s. And Schemathesis' own CLI against a real
daphne process, every check, positive and negative data, as docs/api.md shows."""
import itertools
import re
import subprocess
from pathlib import Path

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, negative_data_rejection, positive_data_acceptance, response_schema_conformance,
    status_code_conformance,
)

from tasks import tokens
from tasks.models import Agent, Task
from tests.conftest import PYTHON, require

# Generated data is positive (valid by the schema) and negative (invalid); the last two checks
# say the API accepts the first (no 400) and refuses the second.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection, positive_data_acceptance]
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
# The test sends the credentials itself (a token and a session on every request), so
# Schemathesis must not generate, or leave out, the security parameters: a request it
# believes has no session cookie carries one.
schema.config.generation.update(with_security_parameters=False)


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
    # The fuzzing agent runs one task, so its reports land (and, once it is done, its claims
    # succeed); a task running on another agent gives the 403 paths something to hit.
    tasks = [Task(title=f"t{i}", status=s, agent=None if s == "queued" else other,
                  progress=100 if s == "succeeded" else 10)
             for i, s in enumerate(["queued", "queued", "queued", "running", "succeeded", "failed", "cancelled"])]
    tasks.append(Task(title="mine", status="running", agent=agent, progress=10))
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


def schemathesis_cli():
    exe = Path(PYTHON).parent / "schemathesis"
    require(exe.exists() and int(schemathesis.__version__.split(".")[0]) >= 4, "the schemathesis 4 CLI in the virtualenv")
    return str(exe)


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_schemathesis_cli_passes_against_a_live_server(daphne, session_cookie, tmp_path):
    """The command docs/api.md records, bounded: few examples per operation, a fixed seed,
    and a timeout. Every check, positive and negative data, coverage, fuzzing and stateful."""
    exe = schemathesis_cli()
    agent = Agent(name="cli-agent")
    agent.save()
    mine = Task(title="mine", status="running", agent=agent, progress=5)
    mine.save()
    for i in range(3):
        Task(title=f"queued {i}").save()
    token = tokens.issue(agent)[1]
    server = daphne(API_AGENT_RATE="100000/min", API_OPERATOR_RATE="100000/min")
    command = [
        exe, "run", f"{server.http}/api/schema/?format=json",
        "-H", f"Authorization: Bearer {token}", "-H", f"Cookie: {session_cookie}; csrftoken={CSRF}", "-H", f"X-CSRFToken: {CSRF}",
        # The credentials are sent as headers, so Schemathesis must not also generate (or
        # drop) the security parameters itself.
        "--generation-with-security-parameters", "false",
        "--checks", "all", "--mode", "all", "--max-examples", "5", "--seed", "1", "-w", "1",
        "--generation-database", "none", "--no-color", "--request-timeout", "10",
    ]
    # cwd: Schemathesis keeps a cache directory in the working directory.
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:] + server.log()[-2000:]
    summary = re.search(r"(\d+) generated, (\d+) passed", output)
    assert summary and summary.group(1) == summary.group(2) and int(summary.group(1)) > 100, output[-3000:]
