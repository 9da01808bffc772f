"""Loaded with `-p tests.support.env_defaults` before Django's settings: test-only environment."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault(
    "JAILADMIN_SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789"
)
os.environ.setdefault("JAILADMIN_DEBUG", "false")
os.environ.setdefault("JAILADMIN_VAR_DIR", tempfile.mkdtemp(prefix="jailadmin-test-var-"))
os.environ.setdefault("JAILADMIN_FAIL2BAN_SOCKET", "/nonexistent/jailadmin-test/fail2ban.sock")
os.environ.setdefault("JAILADMIN_FAIL2BAN_TIMEOUT", "2")
# The `run_jobs` processes tests start keep the tests' priority: their timeouts are sized for
# a fair share of a loaded box, not nice 10's sliver of it. The niceness itself is tested
# with the default (tests/notifications/test_notifications_runner_nice.py).
os.environ.setdefault("JAILADMIN_JOBS_NICE", "0")

# Static files are collected once per test process (tests/conftest.py); under pytest-xdist
# every worker would otherwise collect into the one directory the others read, and a page
# rendered in one worker could meet a half-written manifest from another. Not setdefault:
# a worker inherits its controller's environment, and each process needs its own.
_static_root = tempfile.mkdtemp(prefix="jailadmin-test-static-")
os.environ["JAILADMIN_STATIC_ROOT"] = _static_root
atexit.register(shutil.rmtree, _static_root, ignore_errors=True)
