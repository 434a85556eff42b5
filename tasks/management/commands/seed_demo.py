"""Fill a fresh database with a believable fleet: agents and a few hundred tasks.

These are the agents `python3 run.py`'s demo fleet drives (demo_fleet --adopt): the busy ones
carry on with their running tasks from the seeded progress, the offline ones come back after
a while. So the online agents' heartbeats are seeded recent, well inside AGENT_OFFLINE_AFTER,
and the liveness sweep finds them alive when the fleet takes over."""
import itertools
import random
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from tasks.models import Agent, Task

AGENT_NAMES = [
    "atlas", "borealis", "cobalt", "drift", "ember", "fjord", "granite", "harbor",
    "ion", "juniper", "kestrel", "lumen", "meridian", "nimbus", "onyx", "pulsar",
]
JOBS = [
    "Build {repo} on {branch}", "Run integration tests for {repo}", "Index {n} documents for search",
    "Resize images batch {n}", "Nightly backup of {db}", "Summarise support tickets batch {n}",
    "Train ranking model v{n}", "Deploy {repo} to staging", "Scan {repo} dependencies",
    "Export invoices for {month}", "Transcode video {n}", "Crawl partner feed {n}",
]
REPOS = ["billing-api", "web-frontend", "search", "mobile-app", "ledger", "auth-service"]
ERRORS = [
    "TimeoutError: upstream did not answer in 30 s",
    "exit status 137 (out of memory)",
    "AssertionError: 3 tests failed",
    "ConnectionResetError: peer closed the connection",
]


def free_agent_names(count):
    """`count` names not yet taken: atlas, borealis, ..., then atlas-1, borealis-1, ..."""
    taken = set(Agent.objects.values_list("name", flat=True))
    names = []
    for i in itertools.count():
        base = AGENT_NAMES[i % len(AGENT_NAMES)]
        name = base if i < len(AGENT_NAMES) else f"{base}-{i // len(AGENT_NAMES)}"
        if name not in taken:
            names.append(name)
            if len(names) == count:
                return names


def job_title(rng):
    return rng.choice(JOBS).format(
        repo=rng.choice(REPOS), branch=rng.choice(["main", "release/2.4", "feature/search"]),
        n=rng.randint(10, 9999), db=rng.choice(["orders", "users", "events"]),
        month=rng.choice(["September", "October", "November"]),
    )


class Command(BaseCommand):
    help = "Fill an empty database with demo agents and tasks (every status)."

    def add_arguments(self, parser):
        parser.add_argument("--agents", type=int, default=12)
        parser.add_argument("--tasks", type=int, default=300)
        parser.add_argument("--seed", type=int, default=None, help="random seed, for repeatable data")
        parser.add_argument("--force", action="store_true", help="add demo data even if the database already has tasks or agents")
        parser.add_argument("--if-empty", action="store_true", help="do nothing (and succeed) when data exists")

    def handle(self, *args, agents, tasks, seed, force, if_empty, **options):
        if agents < 1 or agents > len(AGENT_NAMES) * 100 or tasks < 0:
            raise CommandError(f"--agents must be 1..{len(AGENT_NAMES) * 100} and --tasks at least 0")
        if Task.objects.exists() or Agent.objects.exists():
            if if_empty:
                self.stdout.write("The database already has data; no demo data added.")
                return
            if not force:
                raise CommandError(
                    "The database already has tasks or agents. Run with --force to add demo data "
                    "anyway, or --if-empty to skip quietly."
                )
        rng = random.Random(seed)
        now = timezone.now()
        with transaction.atomic():
            names = free_agent_names(agents)
            fleet = Agent.objects.bulk_create([
                Agent(name=name, hostname=f"{name}.workers.internal",
                      status=Agent.Status.OFFLINE if i % 6 == 5 else Agent.Status.IDLE,
                      last_heartbeat=now - timedelta(seconds=rng.randint(1, 20) if i % 6 != 5 else rng.randint(600, 7200)))
                for i, name in enumerate(names)
            ])
            online = [a for a in fleet if a.status != Agent.Status.OFFLINE]
            busy = rng.sample(online, k=min(len(online), max(1, len(online) * 2 // 3)))
            rows = []
            for agent in busy:
                started = now - timedelta(seconds=rng.randint(5, 900))
                rows.append(Task(title=job_title(rng), status=Task.Status.RUNNING, agent=agent,
                                 progress=rng.randint(1, 95), started_at=started, created_at=started - timedelta(seconds=30)))
            weights = [("queued", 25), ("succeeded", 55), ("failed", 12), ("cancelled", 8)]
            for _ in range(max(0, tasks - len(rows))):
                status = rng.choices([s for s, _ in weights], [w for _, w in weights])[0]
                created = now - timedelta(seconds=rng.randint(60, 3 * 86400))
                task = Task(title=job_title(rng), status=status, created_at=created)
                if status != "queued":
                    task.agent = rng.choice(fleet)
                    task.started_at = created + timedelta(seconds=rng.randint(1, 300))
                    task.finished_at = task.started_at + timedelta(seconds=rng.randint(5, 3600))
                    task.progress = 100 if status == "succeeded" else rng.randint(0, 99)
                    if status == "failed":
                        task.error = rng.choice(ERRORS)
                rows.append(task)
            # Oldest first, so ids grow with creation time: a dashboard's window is newest by id.
            rows.sort(key=lambda task: task.created_at)
            Task.objects.bulk_create(rows)
            Agent.objects.filter(pk__in=[a.pk for a in busy]).update(status=Agent.Status.BUSY)
        self.stdout.write(self.style.SUCCESS(f"Added {len(fleet)} agents and {len(rows)} tasks."))
