from django.db import migrations


def local_host_create(apps, schema_editor):
    Host = apps.get_model("hosts", "Host")
    Host.objects.get_or_create(name="local", defaults={"kind": "local"})


class Migration(migrations.Migration):
    dependencies = [("hosts", "0001_initial")]

    operations = [migrations.RunPython(local_host_create, migrations.RunPython.noop)]
