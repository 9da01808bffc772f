from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jails", "0002_sitesettings_fail2ban_agent"),
    ]

    operations = [
        migrations.AddField(
            model_name="scheduledjob",
            name="failure_count",
            field=models.PositiveBigIntegerField(default=0),
        ),
    ]
