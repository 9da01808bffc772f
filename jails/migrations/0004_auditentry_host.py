# Written by hand (issue 12): audit records name the fail2ban host an action went to.

from django.db import migrations, models
from django.db.models import Q

# Actions that went to fail2ban (jails.services.operations.audited and its callers): before
# the fleet there was one host, the local one. Logins, settings and admin changes concern no
# host and stay blank.
HOST_ACTIONS = (
    "ban",
    "unban",
    "unban_everywhere",
    "unban_all",
    "unban_jail",
    "ignore_add",
    "ignore_remove",
    "tune",
    "idle",
    "stop",
    "start",
    "reload",
    "blocklist_import",
    "blocklist_unban",
)


def backfill(apps, schema_editor):
    AuditEntry = apps.get_model("jails", "AuditEntry")
    AuditEntry.objects.filter(Q(action__in=HOST_ACTIONS) | Q(action__startswith="config_")).update(
        host="local"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("jails", "0003_scheduledjob_failure_count"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditentry",
            name="host",
            field=models.CharField(blank=True, db_index=True, max_length=63),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
