from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Real-time stream"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        """Wire the receivers; the handlers live in their own modules."""
        from django.core import checks
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate, post_save, pre_delete

        from . import epochs, revocation
        from .checks import every_sequenced_model_is_registered
        from .daphne_compat import patch_daphne
        from .sequencing import sequence_deletion

        patch_daphne()
        revocation.connect()
        # Every model's deletions pass here; the receiver numbers those of sequenced models,
        # whichever app registers them and in whatever order the apps become ready.
        pre_delete.connect(sequence_deletion, dispatch_uid="realtime.sequence_deletion")
        checks.register(every_sequenced_model_is_registered)
        for model in epochs.sequenced_models():
            post_save.connect(epochs.raw_save, sender=model, dispatch_uid=f"realtime.raw_save.{model._meta.label}")
        post_migrate.connect(epochs.after_migrate, sender=self, dispatch_uid="realtime.after_migrate")
        connection_created.connect(set_lock_timeout, dispatch_uid="realtime.lock_timeout")
        connection_created.connect(count_connection, dispatch_uid="realtime.count_connection")


def count_connection(sender, connection, **kwargs):
    """Connection churn shows on /metrics: under ASGI a request used to open one of its own
    (dashboard_site/request_threads.py)."""
    from .metrics import DATABASE_CONNECTIONS

    DATABASE_CONNECTIONS.inc()


def set_lock_timeout(sender, connection, **kwargs):
    """PostgreSQL: no statement waits for a lock longer than REALTIME_STREAM_LOCK_TIMEOUT
    (realtime/sequencing.py turns the error into StreamLockTimeout). SQLite's equivalent is
    its busy timeout (settings.py)."""
    from django.conf import settings

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, false)", [f"{int(settings.REALTIME_STREAM_LOCK_TIMEOUT * 1000)}ms"])
