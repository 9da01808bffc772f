"""Serving the site under a sub-path (JAILADMIN_URL_PREFIX) behind a reverse proxy."""

from __future__ import annotations

from collections.abc import Iterable
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment


def prefix_mount(app: WSGIApplication, prefix: str) -> WSGIApplication:
    """`app` answering below `prefix` (`/fail2ban`) as the proxy passes the path on unchanged.

    Django builds every URL with the prefix (FORCE_SCRIPT_NAME) but resolves only the part
    after it, so the prefix moves from PATH_INFO to SCRIPT_NAME here, the way a WSGI server
    mounted at that path would pass it. A path without it (a health check sent straight to
    gunicorn, `runserver`) is served as it is. The environ is changed in place, not copied:
    gunicorn's access log reads REMOTE_ADDR from this same dict after the site set the real
    client's address in it (jails.middleware.TrustedProxyMiddleware).
    """
    if not prefix:
        return app

    def mounted(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == prefix or path.startswith(f"{prefix}/"):
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
            environ["PATH_INFO"] = path[len(prefix) :] or "/"
        return app(environ, start_response)

    return mounted
