import uuid

from django.db import migrations


def create_stream(apps, schema_editor):
    Stream = apps.get_model("realtime", "Stream")
    Stream.objects.get_or_create(pk=1, defaults={"epoch": str(uuid.uuid4())})


class Migration(migrations.Migration):
    dependencies = [("realtime", "0001_initial")]
    operations = [migrations.RunPython(create_stream, migrations.RunPython.noop)]
