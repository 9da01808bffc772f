import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from jailadmin.prefix import prefix_mount

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jailadmin.settings")

# Behind a proxy that passes /fail2ban/... on as it is (deploy/nginx/jailadmin.conf).
application = prefix_mount(get_wsgi_application(), settings.JAILADMIN_URL_PREFIX)

# Each web process reads the stored runtime settings once, here and explicitly (the accessor
# never does I/O), and then follows changes made by any other process (jails/runtime.py):
# the session storage is decided here, not per request. `manage.py runserver` imports this
# module too (WSGI_APPLICATION), so the development server starts the same way.
from jails.apps import runtime_state  # noqa: E402  (needs the apps loaded above)
from jails.runtime import runtime_start  # noqa: E402

runtime_start(runtime_state(), watch=True)

# Loading the settings opened a database connection in this thread. Under `gunicorn
# --preload` this module runs in the master, and every forked worker would inherit that
# one connection: with PostgreSQL, workers talking over a shared socket corrupt each
# other's queries. Each process opens its own on first use instead. (The watcher's own
# connection is handled around the fork, in jails.runtime.SettingsWatcher.)
from django.db import connections  # noqa: E402

connections.close_all()
