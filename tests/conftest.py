"""Shared fixtures: a real private fail2ban server, a fresh runtime state per test, users.

It stays at the top of tests/ so every subdirectory sees these fixtures; helper modules that
are imported rather than discovered live in tests/support/.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from jails.fail2ban.server import JailSpec, PrivateServer, selected_version
from tests.support.agent_process import AgentProcess, server_options
from tests.support.redis_server import RedisServer

# Every test in these directories talks to fail2ban (client, protocol, services): `make test`
# runs the `fail2ban` marker again on fail2ban 1.1, so a new file here is included by itself.
# Modules elsewhere opt in with `pytestmark = [..., pytest.mark.fail2ban]`.
FAIL2BAN_FACING_DIRS = frozenset({"agent", "fail2ban", "hosts", "services"})
# Modules in those directories that never start or reach a fail2ban server (pure parsing,
# validation, the wire format, unit files): on fail2ban 1.1 they would run the very same code
# again, so they do not get the marker. tests/core/test_test_fixtures.py checks that none of
# them names a server fixture or PrivateServer.
FAIL2BAN_FREE_MODULES = frozenset(
    {
        "agent/test_agent_protocol.py",
        "agent/test_deploy_units.py",
        "fail2ban/test_fail2ban_allowlist_mutants.py",
        "fail2ban/test_fail2ban_properties.py",
        "fail2ban/test_fail2ban_protocol.py",
        "fail2ban/test_fail2ban_validation.py",
        "hosts/test_hosts_admin.py",
        "hosts/test_ssh_mutants.py",
    }
)

# The fail2ban the session server runs (JAILADMIN_TEST_FAIL2BAN=1.0|1.1) and the version
# string it answers: tests that show the version compare with this, not a literal.
FAIL2BAN_SERIES = selected_version()
FAIL2BAN_VERSION = {"1.0": "1.0.2", "1.1": "1.1.0"}[FAIL2BAN_SERIES]
# Non-UTC on purpose: ban times come back in the server's local time and must be converted.
SERVER_TZ = "Asia/Kolkata"
TEST_JAILS = (
    JailSpec("sshd", maxretry=3, findtime="10m", bantime="10m"),
    JailSpec("nginx-http-auth", maxretry=2, findtime="5m", bantime="1h"),
    JailSpec("postfix", maxretry=5, findtime="1h", bantime="1d"),
)


# The fixtures through which pytest-django lets a test (or a fixture it uses) open the test
# database; without one of them, or the django_db marker, any query fails ("Database access
# not allowed"), so such a test runs the very same code on SQLite and on PostgreSQL.
# (django_db_blocker is in every test's closure through pytest-django's autouse fixtures;
# a fixture that unblocks it by hand must also request `db` or carry the marker.)
DATABASE_FIXTURES = frozenset(
    {
        "db",
        "transactional_db",
        "django_db_reset_sequences",
        "django_db_serialized_rollback",
        "live_server",
        "admin_client",
        "admin_user",
        "django_user_model",
    }
)


def opens_test_database(item: pytest.Item) -> bool:
    if item.get_closest_marker("django_db") is not None:
        return True
    return not DATABASE_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects, so the markers count there
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).resolve().parent
    for item in items:
        parts = item.path.resolve().relative_to(tests_dir).parts
        facing = len(parts) > 1 and parts[0] in FAIL2BAN_FACING_DIRS
        if facing and "/".join(parts) not in FAIL2BAN_FREE_MODULES:
            item.add_marker(pytest.mark.fail2ban)
        # `make test-postgres` runs `-m "not no_site_database"`: a test that cannot open the
        # test database would only repeat the SQLite pass there. (The processes such tests
        # start get their own SQLite file, e.g. tests/support/live_site.py.)
        if not opens_test_database(item):
            item.add_marker(pytest.mark.no_site_database)


@pytest.fixture(scope="session")
def f2b_server() -> Iterator[PrivateServer]:
    """One real fail2ban server for the whole session (about 0.2 s to start)."""
    base = Path(tempfile.mkdtemp(prefix="ja-", dir="/tmp"))
    server = PrivateServer(base, TEST_JAILS, record_actions=True, tz=SERVER_TZ)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def f2b(f2b_server: PrivateServer) -> PrivateServer:
    """The private server, reset: no bans, configured settings, all jails running."""
    if not f2b_server.is_running():
        f2b_server.start()
    f2b_server.reset()
    return f2b_server


@pytest.fixture(scope="session")
def f2b_agent_server(f2b_server: PrivateServer) -> Iterator[AgentProcess]:
    """One real agent (`python -m jails.agent --listen`) in front of the session's server."""
    agent = AgentProcess(str(f2b_server.socket_path), options=server_options(f2b_server))
    try:
        agent.start()
        yield agent
    finally:
        agent.cleanup()


@pytest.fixture
def f2b_agent(f2b: PrivateServer, f2b_agent_server: AgentProcess) -> AgentProcess:
    """The agent in front of the reset private server, running (restarted if a test stopped
    it); `.address` is what AgentLink and JAILADMIN_FAIL2BAN_AGENT take."""
    f2b_agent_server.start()
    return f2b_agent_server


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    """Every test gets a fresh RuntimeState, so no cache leaks between tests."""
    from django.apps import apps

    if not apps.ready:  # run without pytest-django (`-p no:django`): nothing to install
        yield
        return
    from django.conf import settings

    from jails.state import RuntimeSettings, build_runtime_state

    config = apps.get_app_config("jails")
    previous = config.state
    config.state = build_runtime_state(RuntimeSettings.from_django_settings(settings))
    yield
    config.state = previous


RUNTIME_MODES = ("direct", "agent")

# In agent mode the site's own way to fail2ban points here: nothing exists at these paths, so
# a test passes only if every call goes through the agent. A test that needs the server's
# real socket, configuration or client takes them from `f2b`, never from runtime.settings.
NOWHERE_SOCKET = "/nonexistent/jailadmin-direct.sock"
NOWHERE_CONFIG_DIR = "/nonexistent/fail2ban"
NOWHERE_CLIENT = "/nonexistent/fail2ban-client"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module with `RUNTIME_MODES = ("direct", "agent")` runs each test that uses `runtime`
    once per mode (issue 10: the same service layer, the same tests, both connections)."""
    modes = getattr(metafunc.module, "RUNTIME_MODES", None)
    if modes and "runtime" in metafunc.fixturenames and not _parametrises_runtime(metafunc):
        metafunc.parametrize("runtime", modes, indirect=True)


def _parametrises_runtime(metafunc: pytest.Metafunc) -> bool:
    """Whether the test names its own modes (`@pytest.mark.parametrize("runtime", ["direct"],
    indirect=True)`): that choice wins over the module's RUNTIME_MODES."""
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", ())
        if isinstance(names, str):
            names = [name.strip() for name in names.split(",")]
        if "runtime" in names:
            return True
    return False


def runtime_mode(request: pytest.FixtureRequest) -> str:
    """The mode this test's `runtime` runs in: "direct" unless parametrised with "agent"."""
    callspec = getattr(request.node, "callspec", None)
    mode = callspec.params.get("runtime", "direct") if callspec is not None else "direct"
    assert mode in RUNTIME_MODES, mode
    return mode


def runtime_install(f2b: PrivateServer, *, agent: AgentProcess | None, **changes):
    """Install (and return) a fresh state that reaches `f2b` directly, or only through
    `agent` (the site's own socket, configuration directory and client point nowhere)."""
    from django.apps import apps

    from jails.state import build_runtime_state

    assert f2b.install is not None
    if agent is None:
        way = {
            "fail2ban_socket": str(f2b.socket_path),
            "fail2ban_agent": "",
            "fail2ban_config_dir": str(f2b.conf_dir),
            "fail2ban_client": f2b.install.client,
        }
    else:
        way = {
            "fail2ban_socket": NOWHERE_SOCKET,
            "fail2ban_agent": agent.address,
            "fail2ban_config_dir": NOWHERE_CONFIG_DIR,
            "fail2ban_client": NOWHERE_CLIENT,
        }
    config = apps.get_app_config("jails")
    settings = replace(config.state.settings, fail2ban_time_zone=SERVER_TZ, **{**way, **changes})
    config.state = build_runtime_state(settings)
    return config.state


@pytest.fixture
def runtime(request: pytest.FixtureRequest, f2b: PrivateServer):
    """A fresh runtime state pointed at the private fail2ban server.

    Directly at its socket by default; only through a real agent (`f2b_agent`) when
    parametrised with "agent" (indirect parametrisation, or RUNTIME_MODES in the module):
    then the site's own socket, configuration directory and fail2ban-client point at paths
    that do not exist, so a test passes only if every call really goes through the agent.
    """
    mode = getattr(request, "param", "direct")
    assert mode in RUNTIME_MODES, mode
    agent = request.getfixturevalue("f2b_agent") if mode == "agent" else None
    return runtime_install(f2b, agent=agent)


@pytest.fixture
def runtime_agent(f2b: PrivateServer, f2b_agent: AgentProcess):
    """`runtime` in agent mode, for tests that are only about the agent."""
    return runtime_install(f2b, agent=f2b_agent)


@pytest.fixture
def runtime_at(request: pytest.FixtureRequest, runtime, f2b: PrivateServer):
    """runtime_at(socket_path, *, timeout, config_dir, fail2ban_client, recorded_by): install
    a fresh state that reaches the fail2ban at `socket_path` (a RecordingProxy, a dead path)
    in this test's mode: directly, or through a new agent started in front of it with that
    configuration directory and client for reload. Defaults are the private server's.

    `recorded_by` (the RecordingProxy at `socket_path`) is cleared once the agent link's
    connection is open: the agent's per-connection handshake asks fail2ban its `version`,
    which is the connection's cost, not the command under test.
    """
    mode = runtime_mode(request)
    agents: list[AgentProcess] = []

    def install(
        socket_path: str | None = None,
        *,
        timeout: float | None = None,
        config_dir: str | None = None,
        fail2ban_client: str | None = None,
        recorded_by=None,
    ):
        assert f2b.install is not None
        socket_path = socket_path or str(f2b.socket_path)
        timeout = timeout or runtime.settings.fail2ban_timeout
        config_dir = config_dir or str(f2b.conf_dir)
        fail2ban_client = fail2ban_client or f2b.install.client
        if mode == "direct":
            state = runtime_install(
                f2b,
                agent=None,
                fail2ban_socket=socket_path,
                fail2ban_timeout=timeout,
                fail2ban_config_dir=config_dir,
                fail2ban_client=fail2ban_client,
            )
            return state
        options = ["--timeout", str(timeout), "--config-dir", config_dir]
        agent = AgentProcess(socket_path, options=[*options, "--fail2ban-client", fail2ban_client])
        agents.append(agent)
        agent.start()
        state = runtime_install(f2b, agent=agent, fail2ban_timeout=timeout)
        if recorded_by is not None:
            state.jail_service.client.health()  # opens the link's pooled connection
            recorded_by.clear()
        return state

    yield install
    for agent in agents:
        agent.cleanup()


def point_state_at(socket_path: str, *, timeout: float = 1.0):
    """Install a fresh state whose fail2ban socket is `socket_path` (for failure tests)."""
    from django.apps import apps

    from jails.state import build_runtime_state

    config = apps.get_app_config("jails")
    config.state = build_runtime_state(
        replace(config.state.settings, fail2ban_socket=socket_path, fail2ban_timeout=timeout)
    )
    return config.state


def user_with_role(user_model, role: str, *, username: str | None = None, staff: bool = False):
    """A user in exactly one role's group: never a superuser, staff only when asked.

    A superuser passes every permission check, so a test logged in as one cannot notice
    a view that forgot its role check: role fixtures must hold only their role.
    """
    from django.contrib.auth.models import Group

    user = user_model.objects.create_user(
        username=username or f"{role}-user",
        password="a-long-test-password-1",
        is_staff=staff,
    )
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def viewer_user(django_user_model):
    return user_with_role(django_user_model, "viewer", username="viewer")


@pytest.fixture
def operator_user(django_user_model):
    return user_with_role(django_user_model, "operator", username="oper")


@pytest.fixture
def administrator_user(django_user_model):
    """An administrator with staff status: the README's administrator who also uses /admin/."""
    return user_with_role(django_user_model, "administrator", username="administrator", staff=True)


@pytest.fixture
def logged_in_client(client, operator_user):
    """The test client logged in as an operator (only the operator role)."""
    client.force_login(operator_user)
    return client


@pytest.fixture
def administrator_client(client, administrator_user):
    """The test client logged in as an administrator (for settings, audit, admin, setup)."""
    client.force_login(administrator_user)
    return client


def wait_until(predicate, *, timeout: float = 15.0, interval: float = 0.1):
    """Poll `predicate` until it returns a truthy value (fail2ban bans asynchronously)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture(scope="session", autouse=True)
def _collected_static() -> None:
    """Pages are rendered as in production (hashed static names), so collect once."""
    from django.apps import apps

    if not apps.ready:
        return
    from django.core.management import call_command

    call_command("collectstatic", "--noinput", verbosity=0)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real private redis-server (loopback, free port) for the whole session."""
    server = RedisServer(Path(tempfile.mkdtemp(prefix="ja-redis-", dir="/tmp")))
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def private_redis(redis_server: RedisServer) -> RedisServer:
    """The private Redis, running and empty."""
    if not redis_server.is_running():
        redis_server.start()
    redis_server.flush()
    return redis_server


@pytest.fixture
def role_client(django_user_model):
    """role_client("viewer"|"operator"|"administrator", staff=False, csrf=False): a client
    logged in with that role (`csrf=True` enforces CSRF checks as a browser would meet them)."""
    from django.test import Client

    def make(
        role: str, *, username: str | None = None, staff: bool = False, csrf: bool = False
    ) -> Client:
        user = user_with_role(django_user_model, role, username=username, staff=staff)
        client = Client(enforce_csrf_checks=csrf)
        client.force_login(user)
        client.user = user
        return client

    return make


@pytest.fixture
def fast_password_hashing(settings) -> None:
    """Tests that log in many times: a cheap hasher (the real one costs ~0.3 s a login)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
