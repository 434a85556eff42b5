"""Sign-in lockout (django-axes), the Content-Security-Policy (django-csp) and the site's own
system checks. docs/security.md describes what is enforced and how to operate it.

Every test runs with axes on, as production does; tests that sign in elsewhere use
`Client.force_login`, which never counts as an attempt."""
import re
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.checks import Error, Warning
from django.core.checks.registry import registry
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dashboard_site import checks as site_checks

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
ADMIN_LOGIN = reverse("admin:login")
ATTEMPTS = reverse("admin:axes_accessattempt_changelist")
LOCKED = "Too many failed sign-ins for this account or address; try again in 15 minutes or ask an administrator to unlock it."
PASSWORD = "right-pass-123"


@pytest.fixture
def people(django_user_model):
    """Staff users with a fast hasher (conftest), so a dozen attempts cost milliseconds."""
    return {name: django_user_model.objects.create_user(name, password=PASSWORD, is_staff=True)
            for name in ("alice", "bob", "carol")}


def sign_in(client, username, password, address="10.0.0.1", url=LOGIN, **headers):
    data = {"username": username, "password": password, "next": "/"}
    if url == ADMIN_LOGIN:
        data["next"] = "/admin/"
    return client.post(url, data, REMOTE_ADDR=address, **headers)


def signed_in(response):
    return response.status_code == 302 and "sessionid" in response.cookies


def is_lockout(response):
    return response.status_code == 429 and LOCKED in response.content.decode()


def is_lockout_any(response):
    return response.status_code == 429 and "Too many failed sign-ins" in response.content.decode()


# One user name, one address --------------------------------------------------------------------


def test_the_fifth_wrong_password_locks_and_then_even_the_right_one_is_refused(client, people):
    for attempt in range(1, 5):
        response = sign_in(client, "alice", "wrong")
        assert response.status_code == 200, attempt
        assert "Your username and password didn't match" in response.content.decode()
    fifth, sixth = sign_in(client, "alice", "wrong"), sign_in(client, "alice", "wrong")
    assert is_lockout(fifth) and is_lockout(sixth)
    right = sign_in(client, "alice", PASSWORD)
    assert is_lockout(right) and not signed_in(right)
    assert client.get("/").status_code == 302  # still signed out
    assert AccessAttempt.objects.get(username="alice").failures_since_start == 7  # refused tries count


def test_the_lockout_page_is_a_styled_page_with_the_wait_and_no_inline_code(client, people):
    for _ in range(5):
        response = sign_in(client, "alice", "wrong")
    assert response.status_code == 429
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "<title>Sign-in locked · Fleet dashboard</title>" in html
    assert 'href="/static/dashboard/dashboard.css"' in html and 'class="login-card"' in html
    assert f'<p class="form-error" role="alert" id="lockout-message">{LOCKED}</p>' in html
    assert 'href="/accounts/login/"' in html
    assert "style=" not in html and "<style" not in html
    # Scripts only from files (base.html's theme-boot.js), never inline.
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/dashboard/theme-boot.js">']
    assert "Content-Security-Policy" in response


def test_the_wait_follows_the_cool_off_setting(client, people, settings):
    settings.AXES_COOLOFF_TIME = timedelta(minutes=1)
    settings.AXES_FAILURE_LIMIT = 2
    sign_in(client, "alice", "wrong")
    response = sign_in(client, "alice", "wrong")
    assert response.status_code == 429
    assert "try again in 1 minute or ask an administrator" in response.content.decode()


def test_without_a_cool_off_only_an_administrator_unlocks(client, people, settings):
    settings.AXES_COOLOFF_TIME = None  # LOGIN_LOCKOUT_MINUTES=0
    for _ in range(5):
        response = sign_in(client, "alice", "wrong")
    html = response.content.decode()
    assert response.status_code == 429
    assert "Too many failed sign-ins for this account or address; ask an administrator to unlock it." in html
    assert "try again in" not in html
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(days=30))
    assert is_lockout_any(sign_in(client, "alice", PASSWORD))


def test_after_the_cool_off_the_right_password_works_again(client, people):
    for _ in range(5):
        sign_in(client, "alice", "wrong")
    assert is_lockout(sign_in(client, "alice", PASSWORD))
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=14))
    assert is_lockout(sign_in(client, "alice", PASSWORD)), "still inside the 15 minutes"
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert signed_in(sign_in(client, "alice", PASSWORD))


def test_a_failure_limit_from_the_settings_is_used(client, people, settings):
    settings.AXES_FAILURE_LIMIT = 3
    assert sign_in(client, "alice", "wrong").status_code == 200
    assert sign_in(client, "alice", "wrong").status_code == 200
    assert sign_in(client, "alice", "wrong").status_code == 429


def test_a_successful_sign_in_does_not_wipe_the_failures_of_its_address(client, people):
    """Else anyone holding one valid account could reset the counter between guesses."""
    for _ in range(4):
        sign_in(client, "alice", "wrong")
    assert signed_in(sign_in(Client(), "bob", PASSWORD))
    assert is_lockout(sign_in(client, "alice", "wrong"))


# The two counters, separately --------------------------------------------------------------------


def test_a_user_name_is_locked_from_every_address(client, people):
    for i in range(5):  # one failure from each of five addresses
        sign_in(client, "alice", "wrong", address=f"10.0.1.{i}")
    assert is_lockout(sign_in(client, "alice", PASSWORD, address="10.0.2.99"))
    # No single address reached the limit: another user signs in from one of them.
    assert signed_in(sign_in(Client(), "bob", PASSWORD, address="10.0.1.0"))


def test_an_address_is_locked_for_every_user_name(client, people):
    for name in ("alice", "bob", "nobody", "admin", "root"):  # no user name reaches the limit
        sign_in(client, name, "wrong", address="10.0.3.7")
    response = sign_in(Client(), "carol", PASSWORD, address="10.0.3.7")
    assert is_lockout(response) and not signed_in(response)
    # From another address each of those users is fine.
    assert signed_in(sign_in(Client(), "carol", PASSWORD, address="10.0.3.8"))
    assert signed_in(sign_in(Client(), "alice", PASSWORD, address="10.0.3.8"))


def test_x_forwarded_for_is_not_trusted_for_the_address(client, people):
    for i in range(5):  # a client that varies the header on every try is still one address
        sign_in(client, f"user{i}", "wrong", address="10.0.4.1", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"10.0.4.1"}
    assert is_lockout(sign_in(Client(), "carol", PASSWORD, address="10.0.4.1", HTTP_X_FORWARDED_FOR="198.51.100.77"))


def test_a_forged_x_forwarded_for_cannot_lock_out_someone_elses_address(client, people):
    for i in range(5):
        sign_in(client, f"user{i}", "wrong", address="10.0.5.1", HTTP_X_FORWARDED_FOR="10.0.5.2")
    assert signed_in(sign_in(Client(), "carol", PASSWORD, address="10.0.5.2"))


# The admin's sign-in -------------------------------------------------------------------------------


def test_the_admin_login_is_locked_the_same_way(client, people):
    page = client.get(ADMIN_LOGIN)
    assert page.status_code == 200 and "Content-Security-Policy" in page
    for attempt in range(4):
        assert sign_in(client, "alice", "wrong", url=ADMIN_LOGIN).status_code == 200, attempt
    assert is_lockout(sign_in(client, "alice", "wrong", url=ADMIN_LOGIN))
    assert is_lockout(sign_in(client, "alice", PASSWORD, url=ADMIN_LOGIN))
    assert client.get(reverse("admin:index")).status_code == 302
    # One set of counters for both sign-in pages.
    assert is_lockout(sign_in(Client(), "alice", PASSWORD, address="10.0.9.9"))


def test_failures_on_the_two_pages_add_up(client, people):
    for _ in range(3):
        sign_in(client, "alice", "wrong", url=ADMIN_LOGIN)
    sign_in(client, "alice", "wrong")
    assert is_lockout(sign_in(client, "alice", "wrong"))


# Unlocking -------------------------------------------------------------------------------------------


def lock_out_alice():
    client = Client()
    for _ in range(6):
        sign_in(client, "alice", "wrong")
    assert is_lockout(sign_in(client, "alice", PASSWORD))


def test_the_admin_lists_attempts_and_deleting_them_unlocks(people, staff_user):
    lock_out_alice()
    operator = Client()
    operator.force_login(staff_user)
    listing = operator.get(ATTEMPTS)
    assert listing.status_code == 200
    html = listing.content.decode()
    assert "alice" in html and "Locked Out" in html
    ids = list(AccessAttempt.objects.values_list("pk", flat=True))
    confirm = operator.post(ATTEMPTS, {"action": "delete_selected", "_selected_action": ids})
    assert confirm.status_code == 200 and "Are you sure" in confirm.content.decode()
    done = operator.post(ATTEMPTS, {"action": "delete_selected", "_selected_action": ids, "post": "yes"})
    assert done.status_code == 302
    assert not AccessAttempt.objects.exists()
    assert signed_in(sign_in(Client(), "alice", PASSWORD))


def test_the_admin_also_has_the_sign_in_logs(staff_user):
    operator = Client()
    operator.force_login(staff_user)
    for name in ("axes_accesslog", "axes_accessfailurelog"):
        assert operator.get(reverse(f"admin:{name}_changelist")).status_code == 200, name
    assert "Access attempts" in operator.get(reverse("admin:index")).content.decode()


def test_axes_reset_unlocks_everyone(people):
    lock_out_alice()
    call_command("axes_reset", stdout=open("/dev/null", "w"))
    assert not AccessAttempt.objects.exists()
    assert signed_in(sign_in(Client(), "alice", PASSWORD))


def test_axes_reset_username_unlocks_one_user_name(people):
    lock_out_alice()
    call_command("axes_reset_username", "alice", stdout=open("/dev/null", "w"))
    assert signed_in(sign_in(Client(), "alice", PASSWORD, address="10.0.7.1"))


def test_a_view_only_staff_user_cannot_unlock(people, django_user_model):
    from django.contrib.auth.models import Permission

    lock_out_alice()
    viewer = django_user_model.objects.create_user("auditor", password=PASSWORD, is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_accessattempt"))
    client = Client()
    client.force_login(viewer)
    assert client.get(ATTEMPTS).status_code == 200
    ids = list(AccessAttempt.objects.values_list("pk", flat=True))
    client.post(ATTEMPTS, {"action": "delete_selected", "_selected_action": ids, "post": "yes"})
    assert AccessAttempt.objects.count() == len(ids)


def test_a_session_naming_the_first_backend_still_finds_its_user(staff_user, settings):
    """force_login and manage.py check_stream write AUTHENTICATION_BACKENDS[0] into sessions;
    the stream's access checks read users through it as a ModelBackend."""
    from django.contrib.auth import load_backend
    from django.contrib.auth.backends import ModelBackend

    backend = load_backend(settings.AUTHENTICATION_BACKENDS[0])
    assert isinstance(backend, ModelBackend)
    assert backend.get_user(staff_user.pk) == staff_user
    client = Client()
    client.force_login(staff_user)
    assert client.session["_auth_user_backend"] == "axes.backends.AxesBackend"
    assert client.get("/").status_code == 200


def test_a_sign_in_through_the_form_is_made_by_the_model_backend(client, people):
    assert signed_in(sign_in(client, "alice", PASSWORD))
    assert client.session["_auth_user_backend"] == "django.contrib.auth.backends.ModelBackend"


def test_force_login_is_not_an_attempt(staff_user):
    client = Client()
    client.force_login(staff_user)
    assert client.get("/").status_code == 200
    assert not AccessAttempt.objects.exists()


# Content-Security-Policy -----------------------------------------------------------------------------

PAGES = ["/", "/accounts/login/", "/admin/", "/admin/tasks/task/", "/admin/tasks/task/add/", "/admin/axes/accessattempt/",
         "/healthz", "/metrics", "/api/tasks/", "/api/schema/", "/api/no-such-thing/", "/no-such-page/"]


def policy_of(response):
    return dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";") if part.strip())


@pytest.mark.parametrize("path", PAGES)
def test_every_response_carries_the_policy(client, staff_user, path):
    client.force_login(staff_user)
    response = client.get(path)
    assert "Content-Security-Policy" in response, (path, response.status_code)
    policy = policy_of(response)
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"  # no nonce unless a page asks
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert "unsafe" not in response["Content-Security-Policy"]


def test_anonymous_pages_carry_the_policy(client):
    for path in ("/accounts/login/", "/admin/login/", "/healthz"):
        assert "script-src 'self'" in client.get(path)["Content-Security-Policy"], path


def test_the_api_docs_page_needs_no_nonce_and_names_no_other_host(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    policy = policy_of(response)
    assert policy["script-src"] == policy["style-src"] == "'self'"  # no nonce, no CDN
    html = response.content.decode()
    sources = re.findall(r'<(?:script|link)\b[^>]*?(?:src|href)="([^"]+)"', html)
    assert len(sources) == 5 and all(source.startswith("/") and not source.startswith("//") for source in sources)
    assert "<style" not in html and not re.search(r"<script(?![^>]*\bsrc=)", html)  # nothing inline


# The site's system checks ------------------------------------------------------------------------------


def test_the_site_checks_are_registered_at_setup():
    assert site_checks.debug_only_on_local_hosts in registry.get_checks()
    assert site_checks.metrics_token_in_production not in registry.get_checks()
    assert site_checks.metrics_token_in_production in registry.get_checks(include_deployment_checks=True)


@pytest.mark.parametrize("hosts, failing", [
    (["localhost", "127.0.0.1", "[::1]", "::1", "app.localhost", ".localhost", "testserver"], []),
    (["localhost", "dash.example.com"], ["dash.example.com"]),
    (["*"], ["*"]),
    (["10.1.2.3", "0.0.0.0"], ["10.1.2.3", "0.0.0.0"]),
])
def test_debug_on_needs_local_hosts(settings, hosts, failing):
    settings.DEBUG, settings.ALLOWED_HOSTS = True, hosts
    found = site_checks.debug_only_on_local_hosts(None)
    if not failing:
        assert found == []
        return
    [error] = found
    assert isinstance(error, Error) and error.id == "dashboard.E001"
    assert error.msg.endswith(": " + ", ".join(failing) + ".")
    assert "DJANGO_DEBUG=0" in error.hint


def test_debug_off_may_serve_any_host(settings):
    settings.DEBUG, settings.ALLOWED_HOSTS = False, ["dash.example.com"]
    assert site_checks.debug_only_on_local_hosts(None) == []


def test_the_metrics_check_warns_only_in_production_without_a_token(settings):
    settings.DEBUG, settings.METRICS_TOKEN = False, ""
    [warning] = site_checks.metrics_token_in_production(None)
    assert isinstance(warning, Warning) and warning.id == "dashboard.W001"
    assert "METRICS_TOKEN" in warning.msg and "Bearer" in warning.hint
    settings.METRICS_TOKEN = "scrape-token-123"
    assert site_checks.metrics_token_in_production(None) == []
    settings.DEBUG, settings.METRICS_TOKEN = True, ""
    assert site_checks.metrics_token_in_production(None) == []


def test_a_recorded_attempt_never_holds_the_password(client, people):
    sign_in(client, "alice", "hunter2-not-stored")
    attempt = AccessAttempt.objects.get(username="alice")
    assert "hunter2" not in attempt.post_data and "password=" in attempt.post_data


# /healthz ------------------------------------------------------------------------------------------


LAYER_NAMES = ("InMemoryChannelLayer", "RedisChannelLayer", "RedisPubSubChannelLayer", "Redis", "Layer")


def test_healthz_names_no_part_to_anonymous_callers_and_the_channel_layer_to_staff(client, staff_user):
    body = client.get("/healthz").json()
    assert body == {"status": "ok", "checks": {"database": {"ok": True}, "channel_layer": {"ok": True}}}
    client.force_login(staff_user)
    assert client.get("/healthz").json()["checks"]["channel_layer"] == {"ok": True, "backend": "InMemoryChannelLayer"}


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_healthz_through_daphne_on_redis_tells_anonymous_callers_no_class_name(daphne, redis_server, session_cookie):
    import requests

    server = daphne(REDIS_URL=redis_server.url)
    anonymous = requests.get(f"{server.http}/healthz", timeout=10)
    assert anonymous.status_code == 200, anonymous.text
    assert anonymous.json()["checks"] == {"database": {"ok": True}, "channel_layer": {"ok": True}}
    for name in LAYER_NAMES:
        assert name not in anonymous.text, (name, anonymous.text)
    staff = requests.get(f"{server.http}/healthz", headers={"Cookie": session_cookie}, timeout=10)
    assert staff.json()["checks"]["channel_layer"] == {"ok": True, "backend": "RedisPubSubChannelLayer"}, staff.text
