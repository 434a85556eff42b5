"""Every answer under /api/ is JSON in the API's error shape, whatever fails and wherever
(DRF, Django's CSRF middleware, the URL resolver, an unexpected exception); and the schema
says what the input validation enforces, checked body by body against the serializers."""
import json

import jsonschema
import pytest
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from dashboard_site import api_errors
from tasks import selectors
from tasks.api import serializers as api_serializers
from tasks.models import Agent, Task
from tests.support.api import bearer_client, fresh_throttles  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent():
    a = Agent(name="worker-1")
    a.save()
    return a


@pytest.fixture
def bot(agent):
    return bearer_client(agent)


@pytest.fixture
def browser(staff_user):
    """A logged-in browser session that enforces CSRF, as a real browser's does."""
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(staff_user)
    return client


def assert_json_error(response, status):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    body = json.loads(response.content)
    assert isinstance(body, dict) and body, body
    return body


# JSON everywhere under /api/ --------------------------------------------------------------

@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "get"])
def test_an_unknown_api_url_is_a_json_404_even_for_a_form_post_with_a_session(browser, method):
    # Before: a session cookie without a CSRF token made CsrfViewMiddleware answer an HTML 403.
    response = getattr(browser, method)("/api/no-such-thing/", {"a": "1"})
    body = assert_json_error(response, 404)
    assert body["detail"].startswith("No API endpoint at /api/no-such-thing/")


def test_a_session_write_without_csrf_is_a_json_403(browser):
    body = assert_json_error(browser.post("/api/tasks/", {"title": "x"}, content_type="application/json"), 403)
    assert "CSRF" in body["detail"]


def test_the_csrf_failure_view_answers_json_under_api_and_the_usual_page_elsewhere(browser):
    request = RequestFactory().post("/api/tasks/")
    body = assert_json_error(api_errors.csrf_failure(request, "CSRF cookie not set."), 403)
    assert body["detail"].startswith("CSRF Failed: CSRF cookie not set.") and "X-CSRFToken" in body["detail"]
    # The login form is not the API: Django's own page, through the configured view.
    response = Client(enforce_csrf_checks=True).post("/accounts/login/", {"username": "a", "password": "b"})
    assert response.status_code == 403 and response["Content-Type"].startswith("text/html")


def test_methods_an_endpoint_does_not_offer_are_a_json_405(bot, agent):
    body = assert_json_error(bot.delete("/api/agent/me/"), 405)
    assert "DELETE" in body["detail"]


def test_malformed_json_is_a_json_400_with_detail(bot):
    body = assert_json_error(bot.generic("POST", "/api/agent/heartbeat/", "{oops", content_type="application/json"), 400)
    assert "JSON parse error" in body["detail"]


def test_a_form_body_is_a_json_415(browser):
    csrf = "a" * 32
    browser.cookies["csrftoken"] = csrf
    response = browser.post("/api/tasks/", {"title": "x"}, HTTP_X_CSRFTOKEN=csrf)  # multipart, not JSON
    assert_json_error(response, 415)


def test_a_body_too_large_is_a_json_400_not_a_500(bot, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"hostname": "x" * 2000})
    response = bot.generic("POST", "/api/agent/heartbeat/", body, content_type="application/json")
    assert "could not be read" in assert_json_error(response, 400)["detail"]


def test_an_unexpected_exception_is_a_json_500_logged_once(bot, agent, monkeypatch, caplog):
    def broken(task_id):
        raise RuntimeError("the disk caught fire")

    monkeypatch.setattr(selectors, "get_task", broken)
    client = APIClient(raise_request_exception=False)
    client.credentials(**bot._credentials)
    body = assert_json_error(client.get("/api/agent/tasks/1/"), 500)
    assert body["detail"].startswith("Internal server error")
    errors = [r for r in caplog.records if r.name == "django.request" and r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].exc_info[0] is RuntimeError


def test_the_api_answers_json_even_when_a_browser_asks_for_html(bot):
    response = bot.get("/api/agent/me/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"


@pytest.mark.parametrize("view,args,status", [
    (api_errors.bad_request, (Exception("Request body too large."),), 400),
    (api_errors.permission_denied, (Exception("nope"),), 403),
    (api_errors.page_not_found, (Exception(),), 404),
    (api_errors.server_error, (), 500),
])
def test_djangos_own_error_pages_are_json_under_api_only(view, args, status):
    assert_json_error(view(RequestFactory().get("/api/tasks/"), *args), status)
    assert_json_error(view(RequestFactory().get("/api"), *args), status)
    page = view(RequestFactory().get("/somewhere/"), *args)
    assert page.status_code == status and page["Content-Type"].startswith("text/html")


def test_the_error_handlers_are_installed(settings):
    from dashboard_site import urls

    assert settings.CSRF_FAILURE_VIEW == "dashboard_site.api_errors.csrf_failure"
    assert (urls.handler400, urls.handler403, urls.handler404, urls.handler500) == (
        "dashboard_site.api_errors.bad_request", "dashboard_site.api_errors.permission_denied",
        "dashboard_site.api_errors.page_not_found", "dashboard_site.api_errors.server_error",
    )


def test_with_debug_off_unknown_api_urls_are_still_json(settings):
    settings.DEBUG = False
    response = Client().get("/api", follow=True)  # CommonMiddleware adds the slash
    assert response.redirect_chain == [("/api/", 301)]
    assert_json_error(response, 404)
    assert_json_error(Client().get("/api/tasks/abc/"), 404)
    assert Client().get("/no-such-page/")["Content-Type"].startswith("text/html")


# The schema says what the API enforces -----------------------------------------------------

@pytest.fixture(scope="module")
def openapi():
    from drf_spectacular.generators import SchemaGenerator

    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))


def schema_accepts(openapi, component, body):
    validator = jsonschema.Draft4Validator({"$ref": f"#/components/schemas/{component}", "components": openapi["components"]})
    return validator.is_valid(body)


BODIES = {
    ("AgentHello", api_serializers.AgentHelloSerializer): [
        {}, {"hostname": "box-1"}, {"hostname": ""}, {"hostname": 0}, {"hostname": None}, {"hostname": True},
        {"hostname": ["a"]}, {"hostname": "a\x00b"}, {"hostname": "x" * 255}, {"hostname": "x" * 256},
    ],
    ("TaskCreate", api_serializers.TaskCreateSerializer): [
        {"title": "ok"}, {}, {"title": ""}, {"title": "   "}, {"title": 0}, {"title": "a\x00"}, {"title": "x" * 200},
        {"title": "x" * 201}, {"title": " " + "x" * 199 + " "}, {"title": "ok", "description": ""},
        {"title": "ok", "description": 5}, {"title": "ok", "description": "  "}, {"title": "ok", "extra": 1},
    ],
    ("PatchedTaskEdit", api_serializers.TaskEditSerializer): [
        {}, {"title": "new"}, {"description": ""}, {"title": ""}, {"title": 1}, {"other": "x"}, {"description": "d", "title": "t"},
    ],
    ("PatchedTaskReport", api_serializers.TaskReportSerializer): [
        {}, {"progress": 0}, {"progress": 100}, {"progress": 101}, {"progress": -1}, {"progress": "5"}, {"progress": 5.0},
        {"progress": True}, {"progress": None}, {"status": "running"}, {"status": "running", "progress": 3},
        {"status": "succeeded"}, {"status": "succeeded", "progress": 100}, {"status": "succeeded", "progress": 99},
        {"status": "failed"}, {"status": "failed", "error": "boom"}, {"status": "failed", "error": "boom", "progress": 40},
        {"status": "failed", "error": ""}, {"status": "failed", "error": "  "}, {"error": "boom"},
        {"status": "running", "error": "boom"}, {"status": "succeeded", "error": "boom"}, {"status": "cancelled"},
        {"status": "exploded"}, {"status": 1}, {"other": 1},
    ],
}


@pytest.mark.parametrize("component,serializer,body", [
    (component, serializer, body) for (component, serializer), bodies in BODIES.items() for body in bodies
])
def test_the_schema_accepts_exactly_what_the_serializer_accepts(openapi, component, serializer, body):
    assert schema_accepts(openapi, component, body) == serializer(data=body).is_valid()


def test_empty_patches_are_described_as_invalid(openapi):
    for path in ("/api/tasks/{id}/", "/api/agent/tasks/{id}/"):
        assert openapi["paths"][path]["patch"]["requestBody"]["required"] is True


@pytest.mark.parametrize("query,status", [
    ("status=", 400), ("status=queued", 200), ("search=", 200), ("search=job", 200), ("agent=1", 200),
    ("agent=1.0", 400), ("agent=%201", 400), ("limit=abc", 400), ("limit=0", 400), ("limit=", 400),
    ("limit=100000", 200), ("offset=-1", 400), ("offset=" + "9" * 5000, 200),
])
def test_list_query_parameters_are_strict(staff_user, query, status):
    client = APIClient()
    client.force_login(staff_user)
    assert client.get(f"/api/tasks/?{query}").status_code == status


def test_a_hostname_must_be_a_string(bot):
    assert "hostname" in assert_json_error(bot.post("/api/agent/register/", {"hostname": 0}, format="json"), 400)
    assert bot.post("/api/agent/register/", {"hostname": "box-1"}, format="json").json()["hostname"] == "box-1"


def test_a_title_must_be_a_string_and_not_blank(staff_user):
    client = APIClient()
    client.force_login(staff_user)
    assert client.post("/api/tasks/", {"title": 0}, format="json").status_code == 400
    assert client.post("/api/tasks/", {"title": "   "}, format="json").status_code == 400
    assert Task.objects.count() == 0
