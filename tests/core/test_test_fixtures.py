"""The test tree's own promises: role fixtures hold exactly their role, and the `fail2ban`
marker (the set `make test` runs again on fail2ban 1.1) covers what it must."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jails.roles import PERM_ADMINISTER, PERM_OPERATE, PERM_VIEW

ROOT = Path(__file__).resolve().parents[2]

# The 1.1 pass ran these modules when it was a file list in the Makefile: the marker must
# never run fewer. (It also ran test_fail2ban_protocol.py and test_fail2ban_validation.py,
# which reach no fail2ban server: conftest.FAIL2BAN_FREE_MODULES, checked below.)
FAIL2BAN_11_FLOOR = (
    "tests/fail2ban/test_fail2ban_client.py",
    "tests/fail2ban/test_fail2ban_private_server.py",
    "tests/fail2ban/test_fail2ban_versions.py",
    "tests/services/test_bans_service.py",
    "tests/services/test_control_service.py",
    "tests/history/test_history_sync.py",
    "tests/web/test_pages_operate.py",
)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fixture", "role", "perms", "not_perms"),
    [
        ("viewer_user", "viewer", {PERM_VIEW}, {PERM_OPERATE, PERM_ADMINISTER}),
        ("operator_user", "operator", {PERM_VIEW, PERM_OPERATE}, {PERM_ADMINISTER}),
        ("administrator_user", "administrator", {PERM_VIEW, PERM_OPERATE, PERM_ADMINISTER}, set()),
    ],
)
def test_role_fixture_holds_exactly_its_role(request, fixture, role, perms, not_perms):
    user = request.getfixturevalue(fixture)
    assert not user.is_superuser
    assert set(user.groups.values_list("name", flat=True)) == {role}
    assert all(user.has_perm(perm) for perm in perms)
    assert not any(user.has_perm(perm) for perm in not_perms)


@pytest.mark.django_db
def test_logged_in_client_is_an_operator_not_a_superuser(runtime, logged_in_client):
    # The operator may use the jail pages but not the administrator's settings page.
    assert logged_in_client.get("/jails/").status_code == 200
    assert logged_in_client.get("/settings/").status_code == 403


def test_fail2ban_marker_covers_the_former_file_list_and_nothing_outside_its_directories():
    outside = "tests/core/test_layering.py"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        + ["-m", "fail2ban and not slow", *FAIL2BAN_11_FLOOR, outside],
        cwd=ROOT,
        env={**os.environ, "JAILADMIN_DEBUG": "false"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    modules = {line.split("::")[0] for line in result.stdout.splitlines() if "::" in line}
    assert modules == set(FAIL2BAN_11_FLOOR)


# What a module would name to reach a fail2ban server: the server and agent fixtures of
# tests/conftest.py and tests/support/, or a server of its own.
SERVER_WORDS = re.compile(
    r"\b(f2b\w*|PrivateServer|AgentProcess|agent_process|quiet_servers|server_ready"
    r"|config_host\w*|selected_version|fail2ban-server)\b"
)


def test_modules_left_out_of_the_fail2ban_11_pass_reach_no_fail2ban_server():
    from tests.conftest import FAIL2BAN_FREE_MODULES

    for module in sorted(FAIL2BAN_FREE_MODULES):
        source = (ROOT / "tests" / module).read_text()
        assert not SERVER_WORDS.findall(source), module
    # And the check itself would notice one that does.
    assert SERVER_WORDS.findall("def test_x(f2b):\n    PrivateServer(base, [])")
