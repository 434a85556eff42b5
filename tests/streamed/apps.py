from django.apps import AppConfig


def note_row(note):
    from realtime.rows import bounded

    return bounded({"id": note.pk, "text": note.text, "version": note.version}, (("text", 100),))


class StreamedConfig(AppConfig):
    name = "tests.streamed"
    label = "streamed"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from realtime import registry

        from .models import Note

        registry.register(Note, entity="note", serializer=note_row)
