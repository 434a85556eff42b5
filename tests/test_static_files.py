"""Static files are served without putting WhiteNoise on every request's path."""
import pytest
from django.conf import settings
from django.test import AsyncClient
from django.utils.module_loading import import_string


def test_every_middleware_runs_in_the_event_loop():
    # One synchronous middleware makes Django cross into a worker thread and back for every
    # request under ASGI (the agent API's reports paid for that, bench/findings.md).
    sync_only = [path for path in settings.MIDDLEWARE if not getattr(import_string(path), "async_capable", False)]
    assert sync_only == [], f"synchronous-only middleware: {sync_only}"


@pytest.mark.django_db
async def test_static_files_are_served_under_asgi():
    client = AsyncClient()
    response = await client.get("/static/realtime/connection.js")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"class Connection" in body
    assert "max-age" in response.headers.get("Cache-Control", "") or response.headers.get("Last-Modified")


@pytest.mark.django_db
async def test_other_requests_pass_through_under_asgi():
    client = AsyncClient()
    assert (await client.get("/static/no/such/file.js")).status_code == 404
    assert (await client.get("/healthz")).status_code in (200, 503)
    response = await client.get("/")
    assert response.status_code == 302 and "/accounts/login/" in response.headers["Location"]
