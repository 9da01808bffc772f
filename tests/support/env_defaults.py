"""Loaded with `-p tests.support.env_defaults` before Django's settings: test-only environment."""

import os
import tempfile

os.environ.setdefault(
    "JAILADMIN_SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789"
)
os.environ.setdefault("JAILADMIN_DEBUG", "false")
os.environ.setdefault("JAILADMIN_VAR_DIR", tempfile.mkdtemp(prefix="jailadmin-test-var-"))
os.environ.setdefault("JAILADMIN_FAIL2BAN_SOCKET", "/nonexistent/jailadmin-test/fail2ban.sock")
os.environ.setdefault("JAILADMIN_FAIL2BAN_TIMEOUT", "2")
