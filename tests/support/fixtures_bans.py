"""Fixtures for the ban tests (imported by name into the modules that use them).

``quiet_f2b`` is a second private fail2ban whose actions are no-ops, for tests that ban
thousands of addresses: the session server's recording action spawns a shell per ban.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from jails.fail2ban.server import JailSpec, PrivateServer

QUIET_JAILS = (JailSpec("bulk", bantime="1h"), JailSpec("other", bantime="1h"))


@pytest.fixture(scope="module")
def quiet_server() -> Iterator[PrivateServer]:
    base = Path(tempfile.mkdtemp(prefix="jq-", dir="/tmp"))
    server = PrivateServer(base, QUIET_JAILS, record_actions=False)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def quiet_f2b(quiet_server: PrivateServer) -> Iterator[PrivateServer]:
    """A fresh state pointed at the quiet server (reset first, emptied after).

    The tests here ban up to 100 000 addresses: the finalizer unbans them (with a timeout
    sized for that many) so the cost stays with the test that made it, not the next setup.
    """
    from django.apps import apps

    from jails.state import build_runtime_state

    quiet_server.reset()
    config = apps.get_app_config("jails")
    config.state = build_runtime_state(
        replace(
            config.state.settings,
            fail2ban_socket=str(quiet_server.socket_path),
            fail2ban_timeout=30.0,
            fail2ban_config_dir=str(quiet_server.conf_dir),
            fail2ban_client=quiet_server.install.client,
        )
    )
    yield quiet_server
    quiet_server.unban_all()
