"""The site's WSGI application, plus an X-Worker header naming the gunicorn worker's pid.

Test-only: the gunicorn test needs to see which worker answered each request.
"""

from __future__ import annotations

import os

from jailadmin.wsgi import application as site_application


def application(environ, start_response):
    def start_response_with_worker(status, headers, exc_info=None):
        return start_response(status, [*headers, ("X-Worker", str(os.getpid()))], exc_info)

    return site_application(environ, start_response_with_worker)
