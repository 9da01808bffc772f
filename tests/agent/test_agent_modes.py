"""RUNTIME_MODES: a module that sets it runs every `runtime` test once per connection mode.

The lead's pattern for running the jail, ban, control and history modules in both modes
(tests/conftest.py, pytest_generate_tests): this module is its smallest example.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jails.agent.client import AgentLink
from jails.agent.link import DirectLink
from jails.services import jails as jail_service

RUNTIME_MODES = ("direct", "agent")
pytestmark = pytest.mark.django_db


def test_runtime_mode_builds_the_matching_link(runtime, request):
    mode = request.node.callspec.params["runtime"]
    link = runtime.jail_service.client
    assert isinstance(link, AgentLink if mode == "agent" else DirectLink)
    assert bool(runtime.settings.fail2ban_agent) == (mode == "agent")


def test_runtime_agent_mode_gives_the_site_no_other_way_to_fail2ban(runtime, request, f2b):
    settings = runtime.settings
    own_way = (settings.fail2ban_socket, settings.fail2ban_config_dir, settings.fail2ban_client)
    if request.node.callspec.params["runtime"] == "agent":
        # Strict: a call that bypassed the agent would find nothing there and fail.
        assert not any(Path(path).exists() for path in own_way)
    else:
        assert own_way == (str(f2b.socket_path), str(f2b.conf_dir), f2b.install.client)


def test_runtime_modes_see_the_same_fail2ban(runtime, f2b):
    f2b.client().send("set", "postfix", "banip", "198.51.100.77")
    overview = jail_service.overview_get(runtime)
    by_name = {jail.name: jail for jail in overview.jails}
    assert set(by_name) == {"sshd", "nginx-http-auth", "postfix"}
    assert by_name["postfix"].currently_banned == 1
