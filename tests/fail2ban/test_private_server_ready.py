"""PrivateServer.wait_ready names what kept the server from being ready."""

from __future__ import annotations

import pytest

from jails.fail2ban.server import JailSpec, PrivateServer


def test_a_jail_that_is_not_running_is_named_when_the_server_is_not_ready(tmp_path):
    # The server answers, but one jail is gone (stopped, or skipped by a reload): the harness
    # waits for every jail, then says which never came up rather than ": None".
    server = PrivateServer(tmp_path, [JailSpec("first"), JailSpec("second")])
    server.start()
    try:
        server.client().send("stop", "second")
        with pytest.raises(RuntimeError) as raised:
            server.wait_ready(timeout=1)
        assert str(raised.value) == (
            "fail2ban did not become ready in 1 s: jails not running: second"
        )
    finally:
        server.stop()
