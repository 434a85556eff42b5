from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Real-time stream"
    default_auto_field = "django.db.models.BigAutoField"
