"""Input that used to cost the server: a text check whose regular expression backtracked
(quadratic in the text's length when it ends in a NUL), and a body nested so deeply that the
JSON parser ran out of recursion (a logged 500 where a 400 is due)."""
import json
import re
import subprocess

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st
from rest_framework.test import APIClient

from tasks.api import serializers as api_serializers
from tasks.models import TEXT_LIMIT, Agent, Task
from tests.conftest import PYTHON, ROOT
from tests.support.api import bearer_client, fresh_throttles  # noqa: F401 (fixtures)

# The checks as they were first written: what a text field accepts must not change.
FIRST_NOT_BLANK = re.compile(r"^[^\x00]*[^\s\x00][^\x00]*$")
FIRST_NO_NUL = re.compile(r"^[^\x00]+$")
TEXT = st.text(alphabet=st.sampled_from(["a", "Z", " ", "\t", "\n", "\x00", "\u00a0", "\u2003", "é", "\x1c"]), max_size=12)


@hypothesis_settings(max_examples=400, deadline=None)
@given(TEXT)
def test_the_text_checks_accept_exactly_what_they_did(text):
    for validator, first in ((api_serializers.NOT_BLANK, FIRST_NOT_BLANK), (api_serializers.NO_NUL, FIRST_NO_NUL)):
        assert bool(validator.regex.search(text)) == bool(first.search(text)), (validator.regex.pattern, text)


# A million characters and a NUL: linear work is a few milliseconds, the first pattern's
# backtracking would take hours. The check runs in a process of its own so that, should it
# backtrack, it is stopped at the deadline instead of holding this one.
CHECK = """
from django.core.exceptions import ValidationError
from tasks.api.serializers import NOT_BLANK, NO_NUL
for validator in (NOT_BLANK, NO_NUL):
    for text in ("a" * 1_000_000 + "\\x00", " " * 1_000_000 + "\\x00", "a" + " " * 1_000_000 + "\\x00"):
        try:
            validator(text)
        except ValidationError:
            continue
        raise SystemExit(f"accepted a text with a NUL: {validator.regex.pattern}")
print("refused")
"""


def test_a_long_text_ending_in_nul_is_refused_without_backtracking():
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin"}
    try:
        result = subprocess.run([PYTHON, "-c", "import django; django.setup()\n" + CHECK], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the text checks were still running after 60 s on a million characters and a NUL: they backtrack")
    assert result.returncode == 0 and "refused" in result.stdout, result.stdout + result.stderr[-2000:]


@pytest.fixture
def bot(db):
    agent = Agent(name="worker-input", status=Agent.Status.BUSY)
    agent.save()
    return bearer_client(agent)


@pytest.mark.django_db
def test_an_error_text_at_the_limit_ending_in_nul_is_a_400_naming_it(bot):
    task = Task(title="t", status="running", agent=bot.agent, progress=10)
    task.save()
    error = "x" * (TEXT_LIMIT - 1) + "\x00"
    response = bot.patch(f"/api/agent/tasks/{task.pk}/", {"status": "failed", "error": error}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "error" in response.json()
    task.refresh_from_db()
    assert task.status == "running"


@pytest.mark.django_db
@pytest.mark.parametrize("body", ["[" * 100_000, "[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000])
@pytest.mark.parametrize("path, method", [("/api/agent/heartbeat/", "post"), ("/api/agent/tasks/1/", "patch")])
def test_a_body_nested_too_deeply_is_a_400_saying_so(bot, body, path, method):
    response = getattr(bot, method)(path, body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/json"
    detail = response.json()["detail"]
    assert "nested" in detail, detail


@pytest.mark.django_db
def test_an_operator_body_nested_too_deeply_is_a_400(staff_user):
    client = APIClient()
    client.force_login(staff_user)
    response = client.post("/api/tasks/", "[" * 100_000, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert "nested" in response.json()["detail"]


@pytest.mark.django_db
def test_a_body_nested_a_little_is_still_read(bot):
    """Nesting well inside the limit is parsed as before (and refused by the fields)."""
    body = json.dumps({"hostname": [[[["deep"]]]]})
    response = bot.post("/api/agent/heartbeat/", body, content_type="application/json")
    assert response.status_code == 400 and "hostname" in response.json(), response.content[:300]
