"""gunicorn's configuration for the site, from JAILADMIN_* variables.

Run as `gunicorn -c python:jailadmin.gunicorn_conf` (deploy/jailadmin-web.service): a module
of the package rather than a gunicorn.conf.py beside manage.py, so an installed wheel has it
too, and a gunicorn started in the checkout by hand or by a test does not pick it up
unasked. gunicorn reads it again on SIGHUP (`systemctl reload jailadmin-web`): new workers
start with the current values and code, and the old ones finish their requests first.
"""

from __future__ import annotations

from typing import Any

from jailadmin.env import env_int, env_list

wsgi_app = "jailadmin.wsgi:application"
bind = env_list("JAILADMIN_BIND", ["127.0.0.1:8000"])
# The same variable Django's check jails.E010 reads: process-local sessions need exactly one.
workers = env_int("JAILADMIN_WORKERS", 3, minimum=1)
# Threads, because a request mostly waits on fail2ban's socket or the database.
worker_class = "gthread"
threads = env_int("JAILADMIN_THREADS", 4, minimum=1)
# A worker silent for this long is restarted; a bulk ban of 100 000 addresses takes ~5 s.
timeout = env_int("JAILADMIN_WORKER_TIMEOUT", 60, minimum=5)
# On reload and stop, old workers get this long to finish what they are serving.
graceful_timeout = env_int("JAILADMIN_GRACEFUL_TIMEOUT", 30, minimum=1)
keepalive = 5

# gunicorn would believe X-Forwarded-Proto from any loopback client by default; jailadmin
# believes X-Forwarded-* only from JAILADMIN_TRUSTED_PROXIES (jails.middleware).
forwarded_allow_ips = ""

# Both to stderr: under systemd that is the journal (`journalctl -u jailadmin-web`), which
# stamps the time itself. %(h)s is REMOTE_ADDR as the site left it: TrustedProxyMiddleware
# puts the real client there from a trusted proxy's X-Forwarded-For, in the environ gunicorn
# logs from, so the log names the same client as the audit log and the lockout. %(M)s: ms.
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(f)s" "%(a)s"'

# Server hooks (gunicorn calls these by name). The Prometheus metrics' multiprocess files
# (jails.metrics.hooks): emptied once when the master starts (not on a SIGHUP reload, so
# counters survive it), and the library's bookkeeping for every worker that ends.


def on_starting(server: Any) -> None:
    from jails.metrics.hooks import metrics_on_starting

    metrics_on_starting(server)


def child_exit(server: Any, worker: Any) -> None:
    from jails.metrics.hooks import metrics_child_exit

    metrics_child_exit(server, worker)
