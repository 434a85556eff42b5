"""System checks for the site's own security rules, run by `manage.py check` (and so by
`runserver` and `migrate`) and, for the deployment ones, `manage.py check --deploy`.

Registered through INSTALLED_APPS ("dashboard_site.checks.SiteChecksConfig"): Django imports
an installed app's config module during setup, before any check runs. Importing this module
from the URLconf would be too late: `check` takes its list of checks before the URL check
loads dashboard_site/urls.py, so checks registered there are skipped in that run.
"""
from django.apps import AppConfig
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


class SiteChecksConfig(AppConfig):
    """The site package as an app, only so that these checks are registered at setup."""

    name = "dashboard_site"
    label = "dashboard_site"
    verbose_name = "Site checks"


def _is_local_host(host):  # the same rule as is_local_host in settings.py
    host = host.strip().lower()
    return host in ("localhost", "127.0.0.1", "[::1]", "::1", "testserver") or host.endswith(".localhost")


@register(Tags.security)
def debug_only_on_local_hosts(app_configs, **kwargs):
    """DEBUG pages show settings and tracebacks: only this machine may see them."""
    if not settings.DEBUG:
        return []
    remote = [host for host in settings.ALLOWED_HOSTS if not _is_local_host(host)]
    if not remote:
        return []
    return [Error(
        f"DEBUG is on while ALLOWED_HOSTS lists hosts other machines reach: {', '.join(remote)}.",
        hint="Set DJANGO_DEBUG=0 (and DJANGO_SECRET_KEY) for anything but localhost, 127.0.0.1, "
             "[::1] and *.localhost. Debug pages expose settings, SQL and tracebacks.",
        id="dashboard.E001",
    )]


@register(Tags.security, deploy=True)
def metrics_token_in_production(app_configs, **kwargs):
    """Without a token /metrics trusts loopback; behind a proxy that header check is all
    that keeps it private."""
    if settings.DEBUG or getattr(settings, "METRICS_TOKEN", ""):
        return []
    return [Warning(
        "METRICS_TOKEN is not set: /metrics is open to staff sessions and to loopback requests "
        "without an X-Forwarded-For, Forwarded or X-Real-IP header.",
        hint="Set METRICS_TOKEN to a long random string and have the scraper send "
             "`Authorization: Bearer <token>`. A reverse proxy on the same machine that adds none "
             "of those headers would make every request look local.",
        id="dashboard.W001",
    )]
