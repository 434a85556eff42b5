"""The production topology in deploy/: nginx in front of several daphne processes.

First the parts on their own: the trusted-proxy rule (dashboard_site/proxy.py) in front of
the real Django application, the environment template against the settings and the README,
`check --deploy` with that template, and the rolling restart script's refusals.

Then the real thing on loopback: the shipped nginx site (TLS with a throwaway certificate)
in front of two daphne processes started with the systemd unit's arguments, on PostgreSQL
and a test-owned Redis, with the environment template's production settings. Sign-in, the
API, static files and /metrics are checked through nginx; then a browser dashboard and 20
protocol clients stream through nginx while a writer goes on and deploy/rolling-restart
restarts both processes. Every client must end equal to the database, and no client may see
a close other than 1012.
"""
import asyncio
import os
import re
import runpy
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.testing import ApplicationCommunicator
from django.core.exceptions import ImproperlyConfigured

from dashboard_site.proxy import TrustedProxyMiddleware, forwarded_client, parse_networks
from tests.conftest import ROOT, free_port, require

DEPLOY = ROOT / "deploy"
ENV_TEMPLATE = DEPLOY / "dashboard.env"
ROLLING_RESTART = DEPLOY / "rolling-restart"


# The trusted-proxy rule -------------------------------------------------------------------------


def http_scope(path="/", client=("127.0.0.1", 40000), headers=(), method="GET", kind="http"):
    return {
        "type": kind, "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http" if kind == "http" else "ws", "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "", "client": list(client), "server": ["127.0.0.1", 8001],
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers],
    }


async def seen_by_app(scope, trusted):
    """The scope the application behind the middleware receives."""
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope)

    await TrustedProxyMiddleware(app, trusted)(scope, None, None)
    return seen


async def test_a_trusted_proxy_sets_the_client_address_and_scheme():
    headers = [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https")]
    seen = await seen_by_app(http_scope(client=("10.0.0.5", 5000), headers=headers), ["10.0.0.0/24"])
    assert seen["client"][0] == "203.0.113.9" and seen["scheme"] == "https"
    ws = await seen_by_app(http_scope(client=("10.0.0.5", 5000), headers=headers, kind="websocket"), ["10.0.0.5"])
    assert ws["client"][0] == "203.0.113.9" and ws["scheme"] == "wss"
    # Forwarding headers stay, so /metrics can tell a relayed request from a local one.
    assert (b"x-forwarded-for", b"203.0.113.9") in seen["headers"]


async def test_headers_from_anyone_else_are_ignored():
    headers = [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https")]
    for trusted in ([], ["10.0.0.0/24"]):
        seen = await seen_by_app(http_scope(client=("127.0.0.1", 5000), headers=headers), trusted)
        assert seen["client"] == ["127.0.0.1", 5000] and seen["scheme"] == "http", trusted


def test_the_client_is_the_rightmost_address_that_is_not_a_trusted_proxy():
    trusted = parse_networks(["127.0.0.1", "10.0.0.0/8", "::1"])
    # The client wrote "198.51.100.7"; nginx appended the address it saw.
    assert forwarded_client("198.51.100.7, 203.0.113.9", trusted) == "203.0.113.9"
    assert forwarded_client("198.51.100.7, 203.0.113.9, 10.1.2.3", trusted) == "203.0.113.9"  # outer balancer
    assert forwarded_client("10.1.2.3, 127.0.0.1", trusted) == "127.0.0.1"  # only our proxies: what the peer saw
    assert forwarded_client("not-an-address, 2001:db8::1", trusted) == "2001:db8::1"


async def test_odd_forwarding_values_change_nothing_they_should_not():
    trusted = ["127.0.0.1"]
    seen = await seen_by_app(http_scope(headers=[("X-Forwarded-Proto", "gopher")]), trusted)
    assert seen["scheme"] == "http" and seen["client"] == ["127.0.0.1", 40000]
    seen = await seen_by_app(http_scope(client=("::ffff:127.0.0.1", 1), headers=[("X-Forwarded-Proto", "http, https")]), trusted)
    assert seen["scheme"] == "https"  # the value the nearest proxy wrote
    lifespan = {"type": "lifespan"}
    assert await seen_by_app(lifespan, trusted) == lifespan


def test_a_bad_trusted_proxies_entry_stops_the_settings(monkeypatch):
    monkeypatch.setenv("DJANGO_TRUSTED_PROXIES", "127.0.0.1,nginx.local")
    with pytest.raises(ImproperlyConfigured, match=r"^DJANGO_TRUSTED_PROXIES='127.0.0.1,nginx.local': expected .*"
                                                   r"\('nginx.local' is not an IP address or network\)"):
        runpy.run_path(str(ROOT / "dashboard_site" / "settings.py"))


async def call_django(app, path, *, client, headers=(), method="GET", body=b""):
    """(status, headers, body) of one request through `app`."""
    comm = ApplicationCommunicator(app, http_scope(path, client=client, headers=headers, method=method))
    await comm.send_input({"type": "http.request", "body": body})
    start = await comm.receive_output(20)
    content = b""
    while True:
        message = await comm.receive_output(20)
        content += message.get("body", b"")
        if not message.get("more_body"):
            break
    await comm.wait(5)
    return start["status"], dict(start["headers"]), content


@pytest.fixture
def proxied_django():
    """The real Django application behind the middleware, trusting 10.0.0.5 only."""
    from django.core.asgi import get_asgi_application

    return TrustedProxyMiddleware(get_asgi_application(), ["10.0.0.5"])


@pytest.mark.django_db(transaction=True)
async def test_csrf_accepts_an_https_origin_only_when_a_trusted_proxy_said_https(proxied_django):
    secret = "a" * 32
    form = f"csrfmiddlewaretoken={secret}&username=nobody&password=wrong".encode()
    headers = [("Host", "testserver"), ("Origin", "https://testserver"), ("Cookie", f"csrftoken={secret}"),
               ("Content-Type", "application/x-www-form-urlencoded"), ("X-Forwarded-Proto", "https"),
               ("X-Forwarded-For", "203.0.113.9")]
    through_proxy = await call_django(proxied_django, "/accounts/login/", client=("10.0.0.5", 1), headers=headers,
                                      method="POST", body=form)
    assert through_proxy[0] == 200, through_proxy[2][:500]  # past CSRF: the form says the password is wrong
    from axes.models import AccessAttempt

    attempt = await sync_to_async(AccessAttempt.objects.get)(username="nobody")
    assert attempt.ip_address == "203.0.113.9"  # the lockout counts the client, not the proxy
    # The same claim straight from a client: the scheme stays http, so the origin is foreign.
    direct = await call_django(proxied_django, "/accounts/login/", client=("198.51.100.7", 1), headers=headers,
                               method="POST", body=form)
    assert direct[0] == 403 and b"CSRF" in direct[2], direct[2][:500]


@pytest.mark.django_db(transaction=True)
async def test_metrics_stay_local_with_a_trusted_proxy_in_front(proxied_django, settings):
    settings.METRICS_TOKEN = ""
    local = await call_django(proxied_django, "/metrics", client=("127.0.0.1", 1))
    assert local[0] == 200
    # nginx relays a client that is itself on loopback: still not a local request.
    relayed = await call_django(proxied_django, "/metrics", client=("10.0.0.5", 1),
                                headers=[("X-Forwarded-For", "127.0.0.1"), ("X-Forwarded-Proto", "https")])
    assert relayed[0] == 403
    claimed = await call_django(proxied_django, "/metrics", client=("127.0.0.1", 1), headers=[("X-Forwarded-Proto", "http")])
    assert claimed[0] == 403


# The environment template, check --deploy, the script's refusals --------------------------------


def template_values():
    """{name: value} of the variables deploy/dashboard.env sets (not the commented ones)."""
    values = {}
    for line in ENV_TEMPLATE.read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            values[match.group(1)] = match.group(2)
    return values


def settings_variables():
    """Every variable the settings read (dashboard_site/env.py records each one)."""
    from dashboard_site import env

    return set(env.VARIABLES)


def test_the_environment_template_lists_every_variable():
    template = ENV_TEMPLATE.read_text()
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", template, re.M))
    rows = re.findall(r"^\| (`[^|]+)\|", (ROOT / "README.md").read_text(), re.M)  # the table's first column
    readme = {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row)}
    assert readme - listed == set(), "README variables missing from deploy/dashboard.env"
    assert settings_variables() - listed == set(), "settings.py reads variables deploy/dashboard.env does not list"
    assert listed - settings_variables() == set(), "deploy/dashboard.env lists variables settings.py never reads"
    assert "DJANGO_TRUSTED_PROXIES" in readme


def production_env(tmp_path, **overrides):
    """The template's settings, with this machine's stand-ins for the site-specific values."""
    env = {k: v for k, v in os.environ.items() if k not in settings_variables()}
    env.update(template_values())
    env.update(DJANGO_SETTINGS_MODULE="dashboard_site.settings", PYTHONUNBUFFERED="1",
               DJANGO_SECRET_KEY=secrets.token_urlsafe(50), METRICS_TOKEN=secrets.token_urlsafe(32),
               DATABASE_URL=f"sqlite:///{tmp_path / 'scratch.sqlite3'}", DJANGO_STATIC_ROOT=str(tmp_path / "static"))
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def test_check_deploy_is_clean_with_the_documented_production_environment(tmp_path):
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=production_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues (1 silenced)." in result.stdout, result.stdout + result.stderr
    # The one silenced check is HSTS preload (a decision for the registrable domain):
    preload = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                             env=production_env(tmp_path, DJANGO_HSTS_PRELOAD="1"), capture_output=True, text=True,
                             timeout=120)
    assert preload.returncode == 0 and "no issues (0 silenced)" in preload.stdout, preload.stdout + preload.stderr


def test_the_nginx_timeouts_outlast_the_heartbeat():
    site = (DEPLOY / "nginx" / "dashboard.conf").read_text()
    ws = site.split("location /ws/ {")[1].split("}")[0]
    for name in ("proxy_read_timeout", "proxy_send_timeout"):
        seconds = int(re.search(rf"{name} (\d+)s;", ws).group(1))
        assert seconds > 25 + 10, f"{name} must exceed REALTIME_HEARTBEAT_INTERVAL + REALTIME_HEARTBEAT_TIMEOUT"
    assert "Upgrade $http_upgrade" in ws and "X-Forwarded-Proto $scheme" in site


def test_the_documented_nginx_limits_hold_thousands_of_dashboards_on_debians_nginx_conf(tmp_path):
    """docs/deploy.md's edit of /etc/nginx/nginx.conf, run on a copy of Debian's: nginx
    accepts it, and it sets the limits the tests' nginx runs with (two connections a
    dashboard: Debian's 768 a worker would refuse dashboards past about 380)."""
    from tests.support.nginx import NOFILE, WORKER_CONNECTIONS

    require(shutil.which("nginx"), "nginx (apt-get install nginx)")
    stock = Path("/etc/nginx/nginx.conf")
    require(stock.exists(), "Debian's /etc/nginx/nginx.conf (apt-get install nginx)")
    doc = (ROOT / "docs" / "deploy.md").read_text()
    command = re.search(r"^sed -i -e 's/worker_connections.*?/etc/nginx/nginx\.conf$", doc, re.S | re.M).group(0)
    copy = tmp_path / "nginx.conf"
    copy.write_text(stock.read_text())
    subprocess.run(["sh", "-c", command.replace("/etc/nginx/nginx.conf", str(copy))], check=True, timeout=10)
    edited = copy.read_text()
    assert re.search(rf"^\s*worker_connections {WORKER_CONNECTIONS};", edited, re.M), edited
    assert re.search(rf"^worker_processes .*;\nworker_rlimit_nofile {NOFILE};$", edited, re.M), edited
    checked = subprocess.run(["nginx", "-t", "-c", str(copy)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr


def test_the_nginx_site_alone_redirects_serves_static_files_and_refuses_metrics(tmp_path):
    """The shipped site with no process behind it: what nginx answers by itself."""
    from tests.support.nginx import Nginx

    require(shutil.which("nginx"), "nginx (apt-get install nginx)")
    require(shutil.which("openssl"), "openssl")
    static = tmp_path / "static"
    (static / "dashboard").mkdir(parents=True)
    (static / "dashboard" / "app.js").write_text("export const ok = 1;\n")
    (tmp_path / "nginx").mkdir()
    nginx = Nginx(tmp_path / "nginx", [free_port()], static).start()
    try:
        ca = str(nginx.cert[2])
        plain = no_env().get(f"{nginx.http}/tasks/1/?x=1", allow_redirects=False, timeout=10)
        assert plain.status_code == 301 and plain.headers["Location"] == f"{nginx.https}/tasks/1/?x=1"
        served = no_env().get(f"{nginx.https}/static/dashboard/app.js", verify=ca, timeout=10)
        assert served.text == "export const ok = 1;\n" and served.headers["Cache-Control"] == "no-cache"
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        for path in ("/metrics", "/metrics/", "/metrics?format=json"):
            assert no_env().get(nginx.https + path, verify=ca, timeout=10).status_code == 403, path
        # No process up: the balancer says so (502) instead of hanging.
        assert no_env().get(f"{nginx.https}/healthz", verify=ca, timeout=10).status_code == 502
    finally:
        nginx.stop()


def test_the_systemd_units_verify(tmp_path):
    """systemd's own checker finds nothing in the units, with the checkout in place of /srv/dashboard."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (Debian: the systemd package)")
    for unit in (DEPLOY / "systemd").iterdir():
        (tmp_path / unit.name).write_text(unit.read_text().replace("/srv/dashboard", str(ROOT)))
    (tmp_path / "dashboard@8001.service").symlink_to(tmp_path / "dashboard@.service")
    names = ["dashboard@8001.service", "dashboard.target", "dashboard-migrate.service"]
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *(f"./{n}" for n in names)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def run_script(tmp_path, **env):
    upstreams = tmp_path / "upstreams.conf"
    upstreams.write_text("as shipped\n")
    env = dict(os.environ, UPSTREAMS_FILE=str(upstreams), NGINX_RELOAD="echo reload >&2; exit 1",
               RESTART_COMMAND="exit 1", PRECHECK_SECONDS="1", **env)
    result = subprocess.run(["bash", str(ROLLING_RESTART)], env=env, capture_output=True, text=True, timeout=30)
    return result, upstreams.read_text()


def test_the_rolling_restart_refuses_what_would_cut_dashboards(tmp_path):
    require(shutil.which("curl"), "curl")
    alone, upstreams = run_script(tmp_path, DASHBOARD_PORTS=str(free_port()))
    assert alone.returncode == 1 and "only one process" in alone.stdout and upstreams == "as shipped\n"
    down, upstreams = run_script(tmp_path, DASHBOARD_PORTS=f"{free_port()} {free_port()}")
    assert down.returncode == 1 and "is not healthy before the restart" in down.stdout, down.stdout + down.stderr
    assert upstreams == "as shipped\n" and "reload" not in down.stderr  # nothing was changed


# The real thing -------------------------------------------------------------------------------------

RECORD_SOCKETS = """
(() => {
  window.__closes = [];
  window.__states = [];
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("close", (event) => window.__closes.push(event.code));
    }
  };
  document.addEventListener("DOMContentLoaded", () => {
    const note = () => {
      const state = document.body.dataset.connection;
      if (window.__states[window.__states.length - 1] !== state) window.__states.push(state);
    };
    new MutationObserver(note).observe(document.body, { attributes: true, attributeFilter: ["data-connection"] });
    note();
  });
})();
"""


class Site:
    """nginx with the shipped site in front of two supervised daphne processes."""

    def __init__(self, tmp_path, env):
        from tests.support.nginx import Nginx, Supervised

        self.tmp, self.env = tmp_path, env
        (tmp_path / "pids").mkdir()
        self.servers = [Supervised(env, free_port(), tmp_path / "pids") for _ in range(2)]
        (tmp_path / "nginx").mkdir()
        # nginx connects to daphne from 127.0.0.3, the only trusted proxy, so the test's own
        # connections from 127.0.0.1 are "the outside world" for the proxy rule.
        self.nginx = Nginx(tmp_path / "nginx", [s.port for s in self.servers], env["DJANGO_STATIC_ROOT"],
                           proxy_bind="127.0.0.3")

    def start(self):
        collect = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=ROOT, env=self.env,
                                 capture_output=True, text=True, timeout=300)
        assert collect.returncode == 0, collect.stderr
        for server in self.servers:
            server.supervise()
        self.nginx.start()
        return self

    def stop(self):
        self.nginx.stop()
        for server in self.servers:
            server.stop()

    def rolling_restart_env(self):
        from tests.support.nginx import RESTART_COMMAND

        return dict(os.environ, DASHBOARD_PORTS=" ".join(str(s.port) for s in self.servers),
                    UPSTREAMS_FILE=str(self.nginx.upstreams), NGINX_RELOAD=self.nginx.reload_command,
                    RESTART_COMMAND=RESTART_COMMAND.format(pid_dir=self.tmp / "pids"),
                    DRAIN_SECONDS="1", SETTLE_SECONDS="4", HEALTH_TIMEOUT="120")


def no_env():
    """A requests session that ignores proxy and CA-bundle variables (everything is on loopback)."""
    import requests

    session = requests.Session()
    session.trust_env = False
    return session


def tls_session(cert):
    """A requests session that trusts the test CA (and no CA bundle named in the environment)."""
    session = no_env()  # else REQUESTS_CA_BUNDLE would replace `verify`
    session.verify = str(cert)
    return session


def sign_in_through_nginx(site, cert):
    """A requests session signed in through nginx, with what the responses said on the way."""
    session = tls_session(cert)
    base = site.nginx.https
    form = session.get(f"{base}/accounts/login/", timeout=10)
    assert form.status_code == 200, form.status_code
    assert form.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert "secure" in form.headers["Set-Cookie"].lower()  # the CSRF cookie
    done = session.post(f"{base}/accounts/login/", allow_redirects=False, timeout=10, headers={"Origin": base},
                        data={"username": "operator", "password": "operator-pass-123",
                              "csrfmiddlewaretoken": session.cookies["csrftoken"]})
    assert done.status_code == 302 and done.headers["Location"] == "/", (done.status_code, done.text[:500])
    cookie = done.headers["Set-Cookie"]
    assert re.search(r"sessionid=\w+;.*HttpOnly", cookie) and "Secure" in cookie, cookie
    assert session.get(f"{base}/", timeout=10).status_code == 200
    return session


def check_http_through_nginx(site, session, cert):
    """Sign-in lockout address, API, static files, /metrics, redirects: through nginx and not."""
    from axes.models import AccessAttempt

    base, token = site.nginx.https, site.env["METRICS_TOKEN"]
    # A failed sign-in through nginx with a forged X-Forwarded-For is counted against the
    # address nginx saw (127.0.0.1), not the forged one, nor nginx's own (127.0.0.3).
    s = tls_session(cert)
    s.get(f"{base}/accounts/login/", timeout=10)
    s.post(f"{base}/accounts/login/", headers={"Origin": base, "X-Forwarded-For": "198.51.100.7"}, timeout=10,
           data={"username": "mallory", "password": "x", "csrfmiddlewaretoken": s.cookies["csrftoken"]})
    assert list(AccessAttempt.objects.filter(username="mallory").values_list("ip_address", flat=True)) == ["127.0.0.1"]

    headers = {"Origin": base, "X-CSRFToken": session.cookies["csrftoken"]}
    created = session.post(f"{base}/api/tasks/", json={"title": "made through nginx"}, headers=headers, timeout=10)
    assert created.status_code == 201, created.text
    listed = session.get(f"{base}/api/tasks/", timeout=10)
    assert listed.status_code == 200 and any(t["title"] == "made through nginx" for t in listed.json()["results"])

    static = Path(site.env["DJANGO_STATIC_ROOT"]) / "realtime" / "constants.js"
    served = no_env().get(f"{base}/static/realtime/constants.js", verify=str(cert), timeout=10)
    assert served.status_code == 200 and served.content == static.read_bytes()
    assert served.headers["Cache-Control"] == "no-cache" and "javascript" in served.headers["Content-Type"]
    gz = no_env().get(f"{base}/static/realtime/constants.js", verify=str(cert), timeout=10,
                      headers={"Accept-Encoding": "gzip"}, stream=True)
    assert gz.headers.get("Content-Encoding") == "gzip"  # collectstatic's .gz, served by nginx
    gz.close()

    bearer = {"Authorization": f"Bearer {token}"}
    for extra in ({}, bearer):
        refused = no_env().get(f"{base}/metrics", headers=extra, verify=str(cert), timeout=10)
        assert refused.status_code == 403, (extra, refused.status_code)
    direct = f"http://127.0.0.1:{site.servers[0].port}"
    assert no_env().get(f"{direct}/metrics", timeout=10).status_code == 403  # no token, even from loopback
    assert no_env().get(f"{direct}/metrics", headers=bearer, timeout=10).status_code == 200

    # HTTP redirects to HTTPS at nginx; a process reached directly redirects too (a forged
    # X-Forwarded-Proto from a peer that is not a trusted proxy changes nothing), except
    # for the health check and the scrape, which talk plain HTTP to each process.
    plain = no_env().get(f"{site.nginx.http}/accounts/login/", allow_redirects=False, timeout=10)
    assert plain.status_code == 301 and plain.headers["Location"] == f"{base}/accounts/login/"
    forged = no_env().get(f"{direct}/accounts/login/", headers={"X-Forwarded-Proto": "https"},
                          allow_redirects=False, timeout=10)
    assert forged.status_code == 301 and forged.headers["Location"].startswith("https://"), forged.status_code
    assert no_env().get(f"{direct}/healthz", timeout=10).status_code == 200
    health = no_env().get(f"{base}/healthz", verify=str(cert), timeout=10)
    assert health.status_code == 200 and health.json()["checks"]["channel_layer"]["ok"]


async def poll_through_nginx(base, cert, stop, outcomes):
    """Health and static reads through nginx every 0.2 s, as an outside monitor would. Each on
    a new connection: a kept-alive one may be closed by an old nginx worker on reload just as
    a request goes out (browsers retry that case by themselves; requests does not)."""
    session = tls_session(cert)
    while not stop.is_set():
        for path in ("/healthz", "/static/realtime/constants.js"):
            try:
                response = await asyncio.to_thread(session.get, base + path, timeout=10, headers={"Connection": "close"})
                status = response.status_code
            except Exception as exc:  # a refused or cut request is an outcome too
                status = type(exc).__name__
            outcomes.append(status)
        await asyncio.sleep(0.2)


@pytest.mark.server
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(900)  # collectstatic, two processes, a browser, and rolling-restart's own 300 s
async def test_a_rolling_restart_through_nginx_keeps_every_dashboard_calm_and_equal(
        server_env, redis_server, staff_user, settings, tmp_path, monkeypatch):
    from django.db import connection

    from tests.browser_support import CHROMIUM, CHROMIUM_ARGS
    from tests.support.faults import Writer, crash_lines, report, settle
    from tests.support.stream import ResilientStreamClient, database_versions
    from tests.test_faults import layer_config

    require(shutil.which("nginx"), "nginx (apt-get install nginx)")
    require(shutil.which("openssl") and shutil.which("curl"), "openssl and curl")
    require(os.path.exists(CHROMIUM), "Chromium (apt-get install chromium)")
    if connection.vendor != "postgresql":
        pytest.skip("runs in the PostgreSQL pass of .ci/run (the topology in deploy/ is PostgreSQL and Redis)")

    env = production_env(tmp_path, DATABASE_URL=server_env["DATABASE_URL"], REDIS_URL=redis_server.url,
                         DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost", DJANGO_TRUSTED_PROXIES="127.0.0.3",
                         REALTIME_HEARTBEAT_INTERVAL=2, REALTIME_HEARTBEAT_TIMEOUT=2,
                         REALTIME_MAX_SOCKETS_PER_USER=1000, REALTIME_LOG_LEVEL="INFO")
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    site = Site(tmp_path, env)
    clients, playwright, browser, writer_task, stop = [], None, None, None, asyncio.Event()
    try:
        await asyncio.to_thread(site.start)
        settings.CHANNEL_LAYERS = layer_config(redis_server.url)  # the writer publishes like a server
        cert = site.nginx.cert[2]  # the CA
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the protocol clients' wss:// trusts it
        session = await asyncio.to_thread(sign_in_through_nginx, site, cert)
        await sync_to_async(check_http_through_nginx)(site, session, cert)
        cookie = f"sessionid={session.cookies['sessionid']}"

        # 20 protocol clients and a browser dashboard, all through nginx.
        clients = [ResilientStreamClient(site.nginx.wss, cookie, site.nginx.https, idle_grace=3,
                                         restart_base=0.5, restart_spread=2.0).start() for _ in range(20)]
        assert all(await asyncio.gather(*(c.wait_for(lambda c: c.last is not None, 20) for c in clients)))
        from playwright.async_api import async_playwright

        playwright = await async_playwright().start()
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(ignore_https_errors=True)
        await context.add_cookies([{"name": "sessionid", "value": session.cookies["sessionid"], "domain": "127.0.0.1",
                                    "path": "/", "secure": True, "httpOnly": True}])
        await context.add_init_script(RECORD_SOCKETS)
        page = await context.new_page()
        errors, sockets = [], []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("websocket", lambda ws: sockets.append(ws.url))
        assert (await page.goto(f"{site.nginx.https}/")).ok
        await page.wait_for_function("() => window.dashboard && document.body.dataset.connection === 'open'"
                                     " && window.dashboard.model.hydrated", timeout=20_000)
        assert sockets == [site.nginx.wss], sockets  # wss:// through nginx, on the page's own origin

        writer = Writer(seed=11)
        await sync_to_async(writer.setup)()
        writer_task = asyncio.ensure_future(writer.run(stop, 20))
        outcomes = []
        poller = asyncio.ensure_future(poll_through_nginx(site.nginx.https, cert, stop, outcomes))
        await asyncio.sleep(2)

        started = time.monotonic()
        script = await asyncio.create_subprocess_exec(
            "bash", str(ROLLING_RESTART), env=site.rolling_restart_env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output = (await asyncio.wait_for(script.communicate(), 300))[0].decode()
        restart_s = time.monotonic() - started
        assert script.returncode == 0, site.nginx.log()[-1500:] + "\n" + "\n".join(
            s.log()[-1500:] for s in site.servers) + "\nrolling-restart said:\n" + output
        await asyncio.sleep(2)  # the writer goes on a little after the deploy

        stop.set()
        await asyncio.wait_for(writer_task, 60)
        await asyncio.wait_for(poller, 60)
        assert writer.count >= 50, (writer.ops, writer.failures)
        settle_start = time.monotonic()
        bad, expected = await settle(clients, 30)
        settle_s = time.monotonic() - settle_start
        assert not bad, [(c.last, c.close_codes) for c in bad[:5]]
        await page.wait_for_function(
            """([tasks, agents]) => {
                const same = (map, want) => map.size === Object.keys(want).length
                    && [...map].every(([id, row]) => want[id] === row.version);
                const s = window.dashboard.store;
                return document.body.dataset.connection === 'open' && same(s.tasks, tasks) && same(s.agents, agents);
            }""",
            arg=[{str(k): v for k, v in t.items()} for t in await sync_to_async(database_versions)()], timeout=30_000)
        browser_closes = await page.evaluate("window.__closes")
        browser_states = await page.evaluate("window.__states")

        codes = [code for c in clients for code in c.close_codes]
        failed_polls = [o for o in outcomes if o != 200]
        # A drained process is never asked: nginx logs no failed connection to an upstream.
        # (A process that exits right after its 1012 close frames may reset the sockets it
        # closed: "recv() failed ... while proxying upgraded connection", after the frame.)
        upstream_errors = [line for line in site.nginx.log().splitlines() if "while connecting to upstream" in line]
        per_client = sorted(len(c.close_codes) for c in clients)
        report("deploy_rolling_restart", processes=2, clients=len(clients), browser=1, changes=writer.count,
               restart_s=restart_s, back_after_s=",".join(re.findall(r"back \d+ after (\d+)s", output)),
               settle_s=settle_s, closes=len(codes), closes_1012=codes.count(1012),
               closes_per_client=f"{per_client.count(1)}x1,{per_client.count(2)}x2,{sum(n > 2 for n in per_client)}x3+",
               other_codes=sorted(set(map(str, codes)) - {"1012"}), browser_closes=browser_closes,
               browser_states="/".join(browser_states), polls=len(outcomes), failed_polls=len(failed_polls),
               nginx_upstream_errors=len(upstream_errors), nginx_workers_after=site.nginx.worker_count())
        assert upstream_errors == [], upstream_errors[:5]
        assert codes and set(codes) == {1012}, codes
        assert all(c.close_codes for c in clients), "a client never moved: was a process not restarted?"
        assert browser_closes and set(browser_closes) == {1012}, browser_closes
        assert "waiting" in browser_states and browser_states[-1] == "open", browser_states
        assert errors == []
        assert failed_polls == [], failed_polls
        for server in site.servers:
            assert server.starts == 2 and server.proc.poll() is None, (server.port, server.starts, server.exits)
            assert not crash_lines(server.log()), server.log()[-3000:]
        assert output.count("rolling-restart: back ") == 2, output
    finally:
        stop.set()
        if writer_task is not None and not writer_task.done():
            writer_task.cancel()
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
        if browser is not None:
            await browser.close()
        if playwright is not None:
            await playwright.stop()
        await asyncio.to_thread(site.stop)
        from django.db import connections

        await sync_to_async(connections.close_all)()
