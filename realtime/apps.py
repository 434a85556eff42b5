from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Real-time stream"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from .daphne_compat import patch_daphne

        patch_daphne()
