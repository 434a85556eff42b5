"""Mark silent agents offline (see tasks/liveness.py): once, or in a loop next to servers."""
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from tasks import liveness


class Command(BaseCommand):
    help = (
        "Mark agents not heard from within AGENT_OFFLINE_AFTER seconds offline and requeue or "
        "fail their running tasks (AGENT_OFFLINE_TASK_POLICY). Without --loop: one sweep now. "
        "With --loop: keep going, sweeping once per AGENT_SWEEP_INTERVAL across all processes."
    )

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="run until interrupted, honouring the shared lease")

    def handle(self, *args, loop, **options):
        if not loop:
            self.report(liveness.sweep())
            return
        tick = min(1.0, settings.AGENT_SWEEP_INTERVAL / 2)
        self.stdout.write(f"Sweeping every {settings.AGENT_SWEEP_INTERVAL:g} s (Ctrl-C stops).")
        try:
            while True:
                result = liveness.run_due_sweep()
                if result and any(result.values()):
                    self.report(result)
                time.sleep(tick)
        except KeyboardInterrupt:
            pass

    def report(self, result):
        self.stdout.write(
            f"{len(result['offline'])} agents marked offline; "
            f"{len(result['requeued'])} tasks requeued, {len(result['failed'])} failed."
        )
