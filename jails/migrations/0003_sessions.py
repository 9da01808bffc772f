# Session storage table (Django's DatabaseCache layout) and the settings version that every
# process polls to follow changes made by another one.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jails', '0002_history'),
    ]

    operations = [
        migrations.AddField(
            model_name='sitesettings',
            name='version',
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.CreateModel(
            name='SessionCacheEntry',
            fields=[
                ('cache_key', models.CharField(max_length=255, primary_key=True, serialize=False)),
                ('value', models.TextField()),
                ('expires', models.DateTimeField(db_index=True)),
            ],
            options={
                'db_table': 'jailadmin_session_cache',
                'default_permissions': (),
            },
        ),
    ]
