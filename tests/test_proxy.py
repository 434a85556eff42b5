"""Behind a reverse proxy (dashboard_site/proxy.py, DJANGO_TRUSTED_PROXIES): the client address
is the rightmost X-Forwarded-For entry that is not a trusted proxy, so a client cannot choose
the address its sign-in failures count against, even from inside a trusted network; the same
rule holds for WebSockets, under daphne and uvicorn (run as docs/deploy.md says)."""
import asyncio
import importlib.util
import json

import pytest
import requests
import websockets
from axes.models import AccessAttempt

from dashboard_site.proxy import forwarded_client, parse_networks
from tests import conftest
from tests.conftest import PYTHON

# The rule, on its own ---------------------------------------------------------------------------

MIXED = parse_networks(["10.0.0.0/8", "127.0.0.1", "::1"])  # a network that holds clients too


def test_the_client_is_the_rightmost_entry_that_is_not_a_trusted_proxy():
    assert forwarded_client("198.51.100.7, 203.0.113.9", MIXED) == "203.0.113.9"  # nginx appended the real one
    assert forwarded_client("198.51.100.7, 203.0.113.9, 10.1.2.3", MIXED) == "203.0.113.9"  # an outer balancer
    assert forwarded_client("198.51.100.7,203.0.113.9,,127.0.0.1", MIXED) == "203.0.113.9"


def test_a_client_inside_a_trusted_network_cannot_name_another_address_of_it():
    # 10.0.0.5 is a client on the trusted network; it wrote 10.9.9.9 and nginx appended 10.0.0.5.
    assert forwarded_client("10.9.9.9, 10.0.0.5", MIXED) == "10.0.0.5"
    assert forwarded_client("10.9.9.9, 10.0.0.5, 127.0.0.1", MIXED) == "127.0.0.1"  # the peer's own word stops there


def test_an_entry_that_is_no_address_vouches_for_nothing_to_its_left():
    assert forwarded_client("not-an-address", MIXED) is None  # the peer stays the client
    assert forwarded_client("203.0.113.9, unknown, 10.0.0.5", MIXED) == "10.0.0.5"
    assert forwarded_client("203.0.113.9, 10.0.0.5 10.0.0.6", MIXED) is None


def test_the_address_is_given_in_one_form_whatever_the_header_wrote():
    # One address written several ways must count as one against the sign-in lockout.
    for written in ("2001:DB8:0:0::1", "[2001:db8::1]", "[2001:db8::1]:443", "2001:db8:0000::1"):
        assert forwarded_client(written, MIXED) == "2001:db8::1", written
    assert forwarded_client("::ffff:203.0.113.9", MIXED) == "203.0.113.9"
    assert forwarded_client("203.0.113.9:51234", MIXED) == "203.0.113.9"


# Real servers --------------------------------------------------------------------------------------

# uvicorn as docs/deploy.md runs it: its own proxy headers off, so only the middleware decides.
UVICORN = [PYTHON, "-m", "uvicorn", "--lifespan", "off", "--no-access-log", "--no-proxy-headers", "--host", "127.0.0.1"]
COMMANDS = {
    "daphne": lambda app: lambda port: [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app],
    "uvicorn": lambda app: lambda port: [*UVICORN, "--port", str(port), app],
}
ECHO = "tests.support.proxy_echo:application"
SITE = "dashboard_site.asgi:application"


@pytest.fixture
def serve(daphne, monkeypatch):
    """serve(kind, app, **env): a real server of `kind` running `app`."""
    def start(kind, app, **env):
        if kind == "uvicorn":
            conftest.require(importlib.util.find_spec("uvicorn"), "uvicorn (pip install -e '.[test]')")
        name = f"{kind} {app}"
        monkeypatch.setitem(conftest.SERVER_COMMANDS, name, COMMANDS[kind](app))
        return daphne(kind=name, **env)
    return start


def seen_over_http(server, forwarded):
    response = requests.get(f"{server.http}/", headers={"X-Forwarded-For": forwarded, "X-Forwarded-Proto": "https"},
                            timeout=10)
    return response.json()


async def seen_over_websocket(server, forwarded):
    url = f"ws://127.0.0.1:{server.port}/ws/"
    headers = {"X-Forwarded-For": forwarded, "X-Forwarded-Proto": "https"}
    async with asyncio.timeout(15):
        async with websockets.connect(url, additional_headers=headers) as socket:
            return json.loads(await socket.recv())


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
def test_http_and_websocket_scopes_get_the_rightmost_untrusted_address(serve, kind):
    # The test's connections come from 127.0.0.1, inside the trusted 127.0.0.0/8: as if a proxy
    # there relayed a client of that same network, 127.0.0.5, which wrote 127.0.0.9 itself.
    server = serve(kind, ECHO, DJANGO_TRUSTED_PROXIES="127.0.0.0/8")
    cases = {
        "127.0.0.9, 127.0.0.5": "127.0.0.5",
        "198.51.100.7, 203.0.113.9, 127.0.0.5": "203.0.113.9",
        "203.0.113.9, garbage, 127.0.0.5": "127.0.0.5",
        "::ffff:203.0.113.9": "203.0.113.9",
    }
    for forwarded, client in cases.items():
        assert seen_over_http(server, forwarded) == {"client": client, "scheme": "https"}, (kind, forwarded)
        ws = asyncio.run(seen_over_websocket(server, forwarded))
        assert ws == {"client": client, "scheme": "wss"}, (kind, forwarded)


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
def test_without_trusted_proxies_no_header_is_believed(serve, kind):
    server = serve(kind, ECHO, DJANGO_TRUSTED_PROXIES="")
    assert seen_over_http(server, "203.0.113.50") == {"client": "127.0.0.1", "scheme": "http"}, kind
    assert asyncio.run(seen_over_websocket(server, "203.0.113.50")) == {"client": "127.0.0.1", "scheme": "ws"}, kind


def sign_in(server, username, password, forwarded):
    """One sign-in through the real form, relayed as if by a proxy that wrote `forwarded`."""
    with requests.Session() as http:
        http.get(f"{server.http}/accounts/login/", timeout=10)
        token = http.cookies["csrftoken"]
        return http.post(f"{server.http}/accounts/login/", timeout=10, allow_redirects=False,
                         data={"csrfmiddlewaretoken": token, "username": username, "password": password},
                         headers={"X-Forwarded-For": forwarded})


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
def test_a_client_on_a_trusted_network_can_neither_lock_out_another_nor_dodge_its_own_count(serve, kind, staff_user):
    server = serve(kind, SITE, DJANGO_TRUSTED_PROXIES="127.0.0.0/8", LOGIN_FAILURE_LIMIT="3")
    # 127.0.0.5 guesses, each time naming 127.0.0.9 (someone else) or a new made-up address
    # and a new user name, so only the per-address counter can stop it.
    answers = [sign_in(server, f"nobody-{i}", "wrong", f"127.0.0.{9 if i % 2 else 20 + i}, 127.0.0.5").status_code
               for i in range(4)]
    assert answers == [200, 200, 429, 429], (kind, answers)
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.5"}
    # The one whose address was named signs in as usual.
    response = sign_in(server, "operator", "operator-pass-123", "127.0.0.9")  # conftest's staff_user
    assert response.status_code == 302, (kind, response.status_code)
