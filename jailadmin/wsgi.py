import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jailadmin.settings")

application = get_wsgi_application()

# Each web process reads the stored runtime settings once and then follows changes made by
# any other process (jails/runtime.py): the session storage is decided here, not per request.
from jails.apps import runtime_state  # noqa: E402  (needs the apps loaded above)
from jails.runtime import runtime_start  # noqa: E402

runtime_start(runtime_state(), watch=True)
