# Written by hand (issue 12): the archive records the host a ban came from.

from django.db import migrations, models

# Every ban archived so far is the local host's: the rollups' existing rows become the "every
# host" totals (the new column's default, "*") and a copy of each becomes the local host's.
# Plain SQL that SQLite and PostgreSQL both run.
COPY_ROLLUPS = """
INSERT INTO history_banrollup (grain, period, host, jail, country_code, origin, bans)
SELECT grain, period, 'local', jail, country_code, origin, bans FROM history_banrollup
WHERE host = '*'
"""


class Migration(migrations.Migration):
    dependencies = [
        ("history", "0002_totals_and_last_seen"),
    ]

    operations = [
        # The archive: existing bans get host "local" (the default fills the new column).
        migrations.RemoveConstraint(
            model_name="banevent",
            name="ban_event_ip_jail_time_uniq",
        ),
        migrations.AddField(
            model_name="banevent",
            name="host",
            field=models.CharField(
                db_default="local",
                default="local",
                help_text="The fail2ban host that banned it.",
                max_length=63,
            ),
        ),
        migrations.AddConstraint(
            model_name="banevent",
            constraint=models.UniqueConstraint(
                fields=("ip", "jail", "timeofban", "host"),
                name="ban_event_ip_jail_time_host_uniq",
            ),
        ),
        migrations.AddIndex(
            model_name="banevent",
            index=models.Index(
                fields=["host", "timeofban", "ip", "network"], name="ban_event_host_time"
            ),
        ),
        # The rollups: a host dimension.
        migrations.RemoveConstraint(
            model_name="banrollup",
            name="ban_rollup_key_uniq",
        ),
        migrations.RemoveIndex(
            model_name="banrollup",
            name="ban_rollup_country",
        ),
        migrations.RemoveIndex(
            model_name="banrollup",
            name="ban_rollup_jail",
        ),
        migrations.AddField(
            model_name="banrollup",
            name="host",
            field=models.CharField(db_default="*", default="*", max_length=63),
        ),
        migrations.AddConstraint(
            model_name="banrollup",
            constraint=models.UniqueConstraint(
                fields=("grain", "host", "jail", "country_code", "period", "origin"),
                name="ban_rollup_host_key_uniq",
            ),
        ),
        migrations.AddIndex(
            model_name="banrollup",
            index=models.Index(
                fields=["grain", "host", "country_code", "period"], name="ban_rollup_host_country"
            ),
        ),
        migrations.AddIndex(
            model_name="banrollup",
            index=models.Index(
                fields=["grain", "host", "jail", "period"], name="ban_rollup_host_jail"
            ),
        ),
        migrations.RunSQL(COPY_ROLLUPS, "DELETE FROM history_banrollup WHERE host <> '*'"),
        # The cursors: one per host and database file.
        migrations.AddField(
            model_name="historysource",
            name="host",
            field=models.CharField(db_default="local", default="local", max_length=63),
        ),
        migrations.AlterField(
            model_name="historysource",
            name="dbfile",
            field=models.CharField(max_length=1024),
        ),
        migrations.AddConstraint(
            model_name="historysource",
            constraint=models.UniqueConstraint(
                fields=("host", "dbfile"), name="history_source_host_dbfile"
            ),
        ),
    ]
