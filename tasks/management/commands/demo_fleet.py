"""A simulated fleet: N agents working through the HTTP API, and an operator keeping the queue full.

It runs next to the server: it creates (or, with --adopt, takes over) its agents, gives them
tokens and makes a staff "demo-operator" session directly in the database (so it needs the
server's DATABASE_URL), then talks to the server only over HTTP, like real agents would.
`python3 run.py` adopts the agents seed_demo created, so the first launch shows one fleet:
the seeded busy agents carry on with their seeded tasks, the seeded offline ones come back
after a while, and nothing sits at a fixed progress. See docs/api.md.
"""
import json
import random
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections, connection

from tasks import liveness, tokens
from tasks.models import Agent, AgentToken

from .seed_demo import AGENT_NAMES, ERRORS, job_title

TOKEN_LABEL = "demo-fleet"
OPERATOR_USERNAME = "demo-operator"
OPERATOR_PERMISSIONS = ["view_task", "add_task", "change_task", "view_agent"]


class ServerGone(Exception):
    """The server did not answer (refused, reset, timed out)."""


class Api:
    """A tiny JSON-over-HTTP client on urllib (no dependencies), one per simulated actor."""

    def __init__(self, base_url, headers, stop):
        self.base, self.headers, self.stop = base_url.rstrip("/"), headers, stop

    def call(self, method, path, body=None):
        """(status, parsed JSON body or None). Waits out 429s; raises ServerGone on network errors."""
        while True:
            data = json.dumps(body).encode() if body is not None else None
            request = urllib.request.Request(self.base + path, data=data, method=method, headers={
                "Accept": "application/json", **({"Content-Type": "application/json"} if data else {}), **self.headers,
            })
            try:
                with urllib.request.urlopen(request, timeout=15) as response:
                    return response.status, _json(response.read())
            except urllib.error.HTTPError as exc:
                if exc.code == 429 and not self.stop.is_set():
                    self.stop.wait(float(exc.headers.get("Retry-After") or 1))
                    continue
                return exc.code, _json(exc.read())
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
                raise ServerGone(str(exc)) from None


def _json(raw):
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


class Stats:
    """Counters the command prints while it runs."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = dict(claimed=0, succeeded=0, failed=0, dropped=0, silences=0, created=0, cancelled=0, requeued=0, errors=0)

    def add(self, name, n=1):
        with self.lock:
            self.counts[name] += n

    def line(self):
        with self.lock:
            return ", ".join(f"{k} {v}" for k, v in self.counts.items())


class SimulatedAgent:
    """One agent: claims, works with progress reports, sometimes fails or goes silent."""

    def __init__(self, fleet, member, rng):
        self.fleet, self.name, self.hostname, self.rng = fleet, member.name, member.hostname, rng
        self.api = Api(fleet.url, {"Authorization": f"Bearer {member.token}"}, fleet.stop)
        self.heartbeat_every = self.offline_after = settings.AGENT_OFFLINE_AFTER
        self.last_heartbeat = 0.0
        self.resume = None
        # An adopted agent that was offline stays away a while first, then comes back, as a
        # rebooted worker would (scaled by the rate, so a fast test sees it return).
        self.start_after = rng.uniform(0.5, 1.0) * self.offline_after / fleet.rate if member.offline else 0.0

    def pause(self, low, high):
        """Sleep a random time scaled by the rate; False when the fleet is stopping."""
        return not self.fleet.stop.wait(self.rng.uniform(low, high) / self.fleet.rate)

    def run(self):
        if self.start_after:
            if self.fleet.stop.wait(self.start_after):
                return
            self.fleet.log(f"{self.name} is back")
        while not self.fleet.stop.is_set():
            try:
                self.register()
                while not self.fleet.stop.is_set():
                    self.step()
            except ServerGone as exc:
                self.fleet.stats.add("errors")
                self.fleet.log(f"{self.name}: server not answering ({exc}); retrying")
                self.fleet.stop.wait(2)

    def register(self):
        status, body = self.api.call("POST", "/api/agent/register/", {"hostname": self.hostname})
        if status != 200:
            raise CommandError(f"{self.name} could not register: HTTP {status} {body}")
        self.heartbeat_every, self.offline_after = body["heartbeat_every"], body["offline_after"]
        self.last_heartbeat = time.monotonic()
        self.resume = body.get("current_task")  # a seeded busy agent, or a restarted fleet

    def carry_on(self, task_id):
        """Work on the task this agent is already running, from where it stands."""
        status, task = self.api.call("GET", f"/api/agent/tasks/{task_id}/")
        if status == 200 and task["status"] == "running":
            self.work(task)

    def heartbeat(self):
        self.api.call("POST", "/api/agent/heartbeat/", {})
        self.last_heartbeat = time.monotonic()

    def step(self):
        """Claim and work one task, or idle a little when the queue is empty."""
        if self.resume:
            task_id, self.resume = self.resume, None
            self.carry_on(task_id)
            return
        status, body = self.api.call("POST", "/api/agent/claim/")
        if status == 200:
            self.fleet.stats.add("claimed")
            self.work(body)
        elif status == 409 and body and body.get("current_task"):
            self.carry_on(body["current_task"])  # running one already (an operator's edit, a race)
        elif status == 204:
            if time.monotonic() - self.last_heartbeat >= self.heartbeat_every:
                self.heartbeat()
            self.pause(1, 3)
            return
        else:
            self.fleet.stats.add("errors")
            self.pause(1, 3)
            return
        self.pause(0.2, 1.0)

    def work(self, task):
        progress = task["progress"]
        fail_at = self.rng.randint(5, 95) if self.rng.random() < self.fleet.failure_rate else None
        while not self.fleet.stop.is_set():
            if not self.pause(1, 3):
                return
            if self.rng.random() < self.fleet.silence_chance:
                self.go_silent()
            progress = min(100, progress + self.rng.randint(2, 15))
            if fail_at is not None and progress >= fail_at:
                status, _ = self.report(task, status="failed", error=self.rng.choice(ERRORS))
                self.fleet.stats.add("failed" if status == 200 else "dropped")
                return
            if progress >= 100:
                status, _ = self.report(task, status="succeeded")
                self.fleet.stats.add("succeeded" if status == 200 else "dropped")
                return
            status, _ = self.report(task, progress=progress)
            if status != 200:  # cancelled, requeued while we were silent, or deleted: drop it
                self.fleet.stats.add("dropped")
                return

    def report(self, task, **body):
        return self.api.call("PATCH", f"/api/agent/tasks/{task['id']}/", body)

    def go_silent(self):
        """Stop talking for longer than the server's offline limit (a crash, a network cut)."""
        self.fleet.stats.add("silences")
        self.fleet.log(f"{self.name} goes silent")
        self.fleet.stop.wait(self.rng.uniform(1.2, 2.0) * self.offline_after)
        if not self.fleet.stop.is_set():
            self.heartbeat()  # back: idle or busy again
            self.fleet.log(f"{self.name} is back")


class SimulatedOperator:
    """Keeps the queue from running dry; now and then cancels or requeues a task."""

    def __init__(self, fleet, headers, rng):
        self.fleet, self.rng = fleet, rng
        self.api = Api(fleet.url, headers, fleet.stop)

    def run(self):
        try:
            while not self.fleet.stop.is_set():
                try:
                    self.tick()
                except ServerGone as exc:
                    self.fleet.stats.add("errors")
                    self.fleet.log(f"operator: server not answering ({exc}); retrying")
                self.fleet.stop.wait(self.rng.uniform(1, 2) / self.fleet.rate)
        finally:
            connection.close()  # this thread's database connection (used by the sweep)

    def tick(self):
        status, page = self.api.call("GET", "/api/tasks/?status=queued&limit=1")
        if status != 200:
            self.fleet.stats.add("errors")
            self.fleet.log(f"operator: listing tasks gave HTTP {status} {page}")
            return
        for _ in range(min(5, max(0, self.fleet.queue_target - page["count"]))):
            status, _ = self.api.call("POST", "/api/tasks/", {"title": job_title(self.rng)})
            self.fleet.stats.add("created" if status == 201 else "errors")
        roll = self.rng.random()
        if roll < 0.02:
            self.act_on_one("running", "cancel", "cancelled")
        elif roll < 0.05:
            self.act_on_one("failed", "requeue", "requeued")
        if self.fleet.sweep:
            close_old_connections()
            liveness.run_due_sweep()  # harmless next to the server's own: one lease per interval

    def act_on_one(self, status, action, counter):
        code, page = self.api.call("GET", f"/api/tasks/?status={status}&limit=20")
        if code == 200 and page["results"]:
            task = self.rng.choice(page["results"])
            code, _ = self.api.call("POST", f"/api/tasks/{task['id']}/{action}/")
            if code == 200:
                self.fleet.stats.add(counter)


@dataclass
class Member:
    """One agent the fleet drives: its name, hostname, fresh token, and whether it was offline."""

    name: str
    hostname: str
    token: str
    offline: bool


def provision_agents(count, prefix, adopt=False):
    """The fleet's agents, each with a fresh token: with `adopt`, the agents already in the
    database first (by name; seed_demo's on a demo database), then new `<prefix>-<name>`
    agents (created, or reused from a last run) for the rest of `count`."""
    agents = list(Agent.objects.order_by("name", "id")[:count]) if adopt else []
    names = (f"{prefix}-{AGENT_NAMES[i % len(AGENT_NAMES)]}" + (f"-{i // len(AGENT_NAMES) + 1}" if i >= len(AGENT_NAMES) else "") for i in range(1000))
    taken = {agent.name for agent in agents}
    for name in names:
        if len(agents) >= count:
            break
        if name in taken:
            continue
        agent = Agent.objects.filter(name=name).first()
        if agent is None:
            agent = Agent(name=name, hostname=f"{name}.demo.local", status=Agent.Status.OFFLINE)
            agent.save()
        agents.append(agent)
    # Fresh demo data has some agents online and some offline: the offline ones come back
    # after a while. When every agent is offline (the fleet was stopped), all start at once.
    mixed = adopt and any(agent.status != Agent.Status.OFFLINE for agent in agents)
    fleet = []
    for agent in agents:
        tokens.revoke(AgentToken.objects.filter(agent=agent, name=TOKEN_LABEL))  # last run's
        offline = mixed and agent.status == Agent.Status.OFFLINE and agent.last_heartbeat is not None  # not a new one
        fleet.append(Member(agent.name, agent.hostname or f"{agent.name}.demo.local", tokens.issue(agent, TOKEN_LABEL)[1], offline))
    return fleet


def provision_operator():
    """A staff user with just the task permissions, logged in; return its request headers.

    It has no usable password: nobody can log in as it through the login page."""
    user, _ = get_user_model().objects.get_or_create(username=OPERATOR_USERNAME, defaults={"is_staff": True})
    if not user.is_staff or user.has_usable_password():
        user.is_staff = True
        user.set_unusable_password()
        user.save()
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="tasks", codename__in=OPERATOR_PERMISSIONS))
    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    csrf = secrets.token_hex(16)  # any 32-character secret: the cookie and header must match
    return {
        "Cookie": f"{settings.SESSION_COOKIE_NAME}={session.session_key}; {settings.CSRF_COOKIE_NAME}={csrf}",
        settings.CSRF_HEADER_NAME[5:].replace("_", "-"): csrf,
    }


class Command(BaseCommand):
    help = (
        "Run simulated agents against the HTTP API so the dashboard has something to show: they "
        "claim tasks, report progress, sometimes fail, sometimes go silent (and come back); an "
        "operator keeps the queue full. Runs until Ctrl-C or --duration seconds."
    )

    def add_arguments(self, parser):
        parser.add_argument("--agents", type=int, default=None, help="how many agents (default 8; with --adopt, every agent in the database)")
        parser.add_argument("--adopt", action="store_true", help="drive the agents already in the database (the ones seed_demo created) instead of creating demo-<name> ones; python3 run.py passes it")
        parser.add_argument("--rate", type=float, default=1.0, help="speed factor: 2.0 reports twice as often (default 1.0)")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server's base URL")
        parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: run until Ctrl-C)")
        parser.add_argument("--failure-rate", type=float, default=0.1, help="share of tasks that fail (default 0.1)")
        parser.add_argument("--silence-chance", type=float, default=0.002, help="chance per progress report that an agent goes silent for longer than AGENT_OFFLINE_AFTER")
        parser.add_argument("--queue", type=int, default=None, help="keep at least this many tasks queued (default 2 per agent)")
        parser.add_argument("--prefix", default="demo", help="agent name prefix (default demo)")
        parser.add_argument("--seed", type=int, default=None, help="random seed")
        parser.add_argument("--provision", action="store_true", help="create the demo agents, their tokens and the demo operator's session in the database (always done: the fleet runs next to the server and shares its DATABASE_URL)")
        parser.add_argument("--no-sweep", action="store_true", help="do not run the liveness sweep from here (the server runs it too)")
        parser.add_argument("--wait", type=float, default=60, help="seconds to wait for the server to come up (default 60)")

    def handle(self, *args, **o):
        if o["agents"] is not None and not 1 <= o["agents"] <= 1000:
            raise CommandError("--agents must be between 1 and 1000")
        if o["rate"] <= 0:
            raise CommandError("--rate must be greater than 0, e.g. 0.5 for half speed")
        if not 0 <= o["failure_rate"] <= 1 or not 0 <= o["silence_chance"] <= 1:
            raise CommandError("--failure-rate and --silence-chance are probabilities between 0 and 1")
        self.url, self.rate, self.sweep = o["url"].rstrip("/"), o["rate"], not o["no_sweep"]
        self.failure_rate, self.silence_chance = o["failure_rate"], o["silence_chance"]
        self.stop, self.stats = threading.Event(), Stats()
        rng = random.Random(o["seed"])

        self.wait_for_server(o["wait"])
        count = o["agents"] or (min(1000, Agent.objects.count()) if o["adopt"] else 0) or 8
        self.queue_target = o["queue"] if o["queue"] is not None else 2 * count
        fleet = provision_agents(count, o["prefix"], adopt=o["adopt"])
        operator_headers = provision_operator()
        connection.close()  # threads open their own connections
        self.log(f"{len(fleet)} agents working against {self.url} at rate {self.rate:g} (Ctrl-C stops)")

        actors = [SimulatedAgent(self, member, random.Random(rng.random())) for member in fleet]
        actors.append(SimulatedOperator(self, operator_headers, random.Random(rng.random())))
        threads = [threading.Thread(target=a.run, daemon=True, name=getattr(a, "name", "operator")) for a in actors]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        try:
            while not self.stop.is_set():
                if o["duration"] and time.monotonic() - started >= o["duration"]:
                    break
                self.stop.wait(min(10.0, o["duration"] or 10.0))
                self.log(self.stats.line())
        except KeyboardInterrupt:
            pass
        self.stop.set()
        for thread in threads:
            thread.join(20)
        self.log(f"stopped: {self.stats.line()}")

    def wait_for_server(self, seconds):
        end = time.monotonic() + seconds
        while True:
            try:
                urllib.request.urlopen(self.url + "/api/schema/", timeout=5).close()
                return
            except urllib.error.HTTPError:
                return  # it answers
            except (urllib.error.URLError, OSError) as exc:
                if time.monotonic() > end:
                    raise CommandError(f"No server at {self.url} after {seconds:g} s ({exc}). Start it first, or pass --url.") from None
                time.sleep(0.5)

    def log(self, message):
        self.stdout.write(f"[demo_fleet] {message}")
