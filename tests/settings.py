"""The project's settings plus a test-only streamed entity (tests/streamed), which shows that a
model needs nothing but its registration to be synced, streamed, deleted and resumed."""
from dashboard_site.settings import *  # noqa: F401,F403
from dashboard_site.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.streamed"]
