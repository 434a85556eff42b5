"""Schemathesis against the served OpenAPI schema: no 5xx, every answer matches the schema,
what the schema allows is accepted and what it forbids is refused.

Two runs. In-process through the WSGI app (same code as under daphne, minus the socket), with
a real agent token and a staff session, steering most generated ids to rows that exist so the
success paths are exercised as well as the 404s. And Schemathesis' own CLI against a real
daphne process, every check, positive and negative data, as docs/api.md shows.

Then what docs/api.md says about the schema, its pages, the status changes and the error
shapes, each checked against the server."""
import itertools
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

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

from tasks import domain, tokens
from tasks.models import Agent, Task
from tests.browser_support import browser, server_env  # noqa: F401 (fixtures)
from tests.conftest import PYTHON, ROOT, require

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
def world(in_process_requests, session_cookie):
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


# What docs/api.md says --------------------------------------------------------------------------

API_DOC = (ROOT / "docs" / "api.md").read_text()
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def documented_transitions():
    """{(from, to): {actors}} from the table under "Task status changes" (actors in bold)."""
    section = API_DOC.split("## Task status changes", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 3 and cells[0] not in ("from", "---"):
            table[(cells[0], cells[1])] = set(re.findall(r"\*\*(\w+)\*\*", cells[2]))
    return table


def test_the_documented_status_changes_are_the_transitions_table():
    assert documented_transitions() == {key: set(actors) for key, actors in domain.TRANSITIONS.items()}


def test_the_docs_page_loads_nothing_from_another_host(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    urls = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert len(urls) == 5 and all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in urls
    assert not re.search(r"https?://", html)
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert '"/api/schema/"' in script.content.decode()
    for url in urls:  # every asset is served by the site
        if url.startswith("/static/"):
            assert client.get(url).status_code == 200, url


def test_the_schema_opens_in_a_browser_and_keeps_its_type_for_clients(client):
    yaml = client.get("/api/schema/", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert yaml.status_code == 200 and yaml["Content-Type"] == "text/plain; charset=utf-8"
    assert yaml["Content-Disposition"].startswith("inline") and yaml.content.startswith(b"openapi: 3.")
    as_json = client.get("/api/schema/?format=json", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert as_json["Content-Type"] == "application/json" and as_json.json()["openapi"].startswith("3.")
    assert client.get("/api/schema/")["Content-Type"] == "application/vnd.oai.openapi; charset=utf-8"
    assert client.get("/api/schema/?format=json")["Content-Type"] == "application/vnd.oai.openapi+json"


@pytest.mark.parametrize("debug", [True, False])
def test_a_refused_host_is_answered_in_json_under_api_with_debug_on_or_off(client, settings, debug):
    settings.DEBUG = debug
    response = client.get("/api/tasks/", HTTP_HOST="evil.example.net")
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert "evil.example.net" in response.json()["detail"] and "ALLOWED_HOSTS" in response.json()["detail"]
    page = client.get("/accounts/login/", HTTP_HOST="evil.example.net")
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")  # Django's own page elsewhere


def test_an_anonymous_operator_request_is_told_how_to_sign_in(client):
    response = client.get("/api/tasks/")
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert detail.startswith("Not signed in.") and "/accounts/login/" in detail and "Bearer" in detail


def test_an_empty_patch_answers_non_field_errors(client, staff_user, db):
    client.force_login(staff_user)
    task = Task.objects.create(title="t")
    response = client.patch(f"/api/tasks/{task.pk}/", {}, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Send at least one of: title, description."]}


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_swagger_ui_runs_from_this_site_alone_under_its_policy(daphne, browser):  # noqa: F811
    server = daphne()
    context = browser.new_context()
    hosts, refused = set(), []
    context.on("request", lambda request: hosts.add(urlsplit(request.url).netloc)
               if request.url.startswith("http") else None)
    page = context.new_page()
    page.on("console", lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.goto(f"{server.http}/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title:has-text('Fleet dashboard API')", timeout=20_000)
    page.wait_for_selector(".opblock-summary-path[data-path='/api/agent/claim/']", timeout=20_000)
    context.close()
    assert hosts == {f"127.0.0.1:{server.port}"}
    assert refused == []


def test_every_operation_has_a_summary_and_a_description_of_its_own(client):
    """Before: the seven agent operations all said "Base for agent endpoints: bearer token,
    per-agent throttle." (their base class's docstring), and the operator ones their base's."""
    document = client.get("/api/schema/?format=json").json()
    operations = {f"{method.upper()} {path}": operation
                  for path, methods in document["paths"].items() for method, operation in methods.items()}
    assert len(operations) >= 16
    by_description = {}
    for name, operation in operations.items():
        assert operation.get("summary"), f"{name} has no summary"
        description = operation.get("description", "")
        assert len(description) > len(operation["summary"]), f"{name} has no description beyond its summary"
        assert "Base for" not in description, f"{name} describes its base class: {description!r}"
        by_description.setdefault(description, []).append(name)
    shared = {text[:60]: names for text, names in by_description.items() if len(names) > 1}
    assert not shared, f"operations sharing a description: {shared}"
    assert "POST /api/tasks/{id}/fail/" in operations
