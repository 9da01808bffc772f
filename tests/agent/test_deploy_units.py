"""deploy/: the systemd units, the user and directories, and the example environment file.

A socket-activated run needs a real systemd as PID 1, which a CI container has not; so the
units are checked by systemd's own parser (`systemd-analyze verify`), scored by its sandbox
analyser (`systemd-analyze security --offline`), and their security-relevant directives are
pinned here, so a later edit cannot quietly drop one.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = (
    "jailadmin-agent.socket",
    "jailadmin-agent@.service",
    "jailadmin-web.service",
    "jailadmin-jobs.service",
)
SERVICES = ("jailadmin-agent@.service", "jailadmin-web.service", "jailadmin-jobs.service")
# Where the README installs the site; the tests substitute this checkout for it.
SITE_DIR = "/opt/jailadmin"
AGENT_SOCKET = "/run/jailadmin/agent.sock"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (Debian: package systemd)"
)
# systemd-analyze reads a handful of files; a loaded 1-core box still answers within seconds.
ANALYZE_TIMEOUT = 120

Directives = dict[str, dict[str, list[str]]]


def unit_parse(path: Path) -> Directives:
    """Section -> key -> every value, in order (systemd keys may repeat; `\\` continues)."""
    sections: Directives = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: {line!r} before any section"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(directives: Directives, section: str, key: str) -> str:
    values = directives[section].get(key)
    assert values, f"{key}= is missing from [{section}]"
    assert len(values) == 1, f"{key}= appears {len(values)} times"
    return values[0]


def words(directives: Directives, section: str, key: str) -> list[str]:
    return [w for value in directives[section].get(key, []) for w in value.split()]


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (DEPLOY / "jailadmin.env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


@pytest.fixture
def units_here(tmp_path: Path) -> Path:
    """The units with this checkout in place of /opt/jailadmin (verify needs real binaries)."""
    for name in UNITS:
        text = (DEPLOY / name).read_text().replace(SITE_DIR, str(ROOT))
        (tmp_path / name).write_text(text)
    return tmp_path


@needs_systemd_analyze
def test_deploy_units_pass_systemd_analyze_verify(units_here: Path):
    assert SYSTEMD_ANALYZE is not None
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", *(str(units_here / n) for n in UNITS)],
        capture_output=True,
        text=True,
        timeout=ANALYZE_TIMEOUT,
        check=False,
    )
    # verify exits 0 on an unknown key or section and only warns: any output is a failure.
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""
    assert done.stdout.strip() == ""


@needs_systemd_analyze
def test_deploy_units_verify_catches_a_broken_unit(units_here: Path):
    """The check above can fail: a typo'd directive is reported."""
    assert SYSTEMD_ANALYZE is not None
    agent = units_here / "jailadmin-agent@.service"
    agent.write_text(agent.read_text().replace("ProtectHome=yes", "ProtectHomes=yes"))
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(agent)],
        capture_output=True,
        text=True,
        timeout=ANALYZE_TIMEOUT,
        check=False,
    )
    assert "Unknown key 'ProtectHomes'" in done.stderr


@needs_systemd_analyze
@pytest.mark.parametrize(
    ("unit", "ceiling"),
    # systemd's scale: 0 (sandboxed) .. 10 (unprotected); the figures are 0.9 / 1.1 / 1.1.
    [
        ("jailadmin-agent@.service", 1.0),
        ("jailadmin-web.service", 1.5),
        ("jailadmin-jobs.service", 1.5),
    ],
)
def test_deploy_units_systemd_security_exposure(units_here: Path, unit: str, ceiling: float):
    assert SYSTEMD_ANALYZE is not None
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager", str(units_here / unit)],
        capture_output=True,
        text=True,
        timeout=ANALYZE_TIMEOUT,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert found, done.stdout[-2000:] + done.stderr
    assert float(found.group(1)) <= ceiling, done.stdout


def test_deploy_agent_socket_is_group_only_and_per_connection():
    socket = unit_parse(DEPLOY / "jailadmin-agent.socket")
    assert one(socket, "Socket", "ListenStream") == AGENT_SOCKET
    assert one(socket, "Socket", "SocketUser") == "root"
    assert one(socket, "Socket", "SocketGroup") == "jailadmin"
    assert one(socket, "Socket", "SocketMode") == "0660"
    assert one(socket, "Socket", "Accept") == "yes"
    assert one(socket, "Socket", "RemoveOnStop") == "yes"
    assert 1 <= int(one(socket, "Socket", "MaxConnections")) <= 256
    assert one(socket, "Install", "WantedBy") == "sockets.target"


def test_deploy_agent_service_runs_the_bundle_sandboxed():
    agent = unit_parse(DEPLOY / "jailadmin-agent@.service")
    service = agent["Service"]
    assert one(agent, "Service", "ExecStart") == (
        "/usr/bin/python3 -I /usr/local/lib/jailadmin/agent.pyz --stdio"
    )
    assert one(agent, "Service", "StandardInput") == "socket"
    assert one(agent, "Service", "StandardOutput") == "socket"
    assert service.get("User", ["root"]) == ["root"]
    for key in (
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "PrivateNetwork",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectClock",
        "ProtectHostname",
        "RestrictNamespaces",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "LockPersonality",
        "MemoryDenyWriteExecute",
    ):
        assert one(agent, "Service", key) == "yes", key
    assert one(agent, "Service", "ProtectSystem") == "strict"
    # Writable: fail2ban's socket directory only ("-": fail2ban may be down at start).
    assert words(agent, "Service", "ReadWritePaths") == ["-/run/fail2ban"]
    assert "ReadOnlyPaths" not in service
    assert words(agent, "Service", "RestrictAddressFamilies") == ["AF_UNIX"]
    assert set(words(agent, "Service", "CapabilityBoundingSet")) <= {"CAP_DAC_READ_SEARCH"}
    assert service.get("AmbientCapabilities", [""]) == [""]
    filters = service["SystemCallFilter"]
    assert "@system-service" in filters
    assert any(f.startswith("~") and "@privileged" in f for f in filters)
    assert one(agent, "Service", "SystemCallArchitectures") == "native"
    assert one(agent, "Service", "MemoryMax")
    assert one(agent, "Service", "TasksMax")
    assert "-/etc/jailadmin" in words(agent, "Service", "InaccessiblePaths")


@pytest.mark.parametrize("name", ["jailadmin-web.service", "jailadmin-jobs.service"])
def test_deploy_site_services_are_unprivileged(name: str):
    unit = unit_parse(DEPLOY / name)
    service = unit["Service"]
    assert one(unit, "Service", "User") == "jailadmin"
    assert one(unit, "Service", "Group") == "jailadmin"
    assert one(unit, "Service", "EnvironmentFile") == "/etc/jailadmin/env"
    assert one(unit, "Service", "WorkingDirectory") == SITE_DIR
    assert service["CapabilityBoundingSet"] == [""]
    assert "SupplementaryGroups" not in service
    assert one(unit, "Service", "NoNewPrivileges") == "yes"
    assert one(unit, "Service", "ProtectSystem") == "strict"
    assert words(unit, "Service", "ReadWritePaths") == ["/var/lib/jailadmin"]
    for key in ("ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateUsers"):
        assert one(unit, "Service", key) == "yes", key
    assert "jailadmin-agent.socket" in words(unit, "Unit", "After")
    # Nothing of fail2ban's is reachable except through the agent.
    values = [v for section in unit.values() for vs in section.values() for v in vs]
    assert not [v for v in values if "fail2ban" in v], values


def test_deploy_site_services_run_the_site():
    web = unit_parse(DEPLOY / "jailadmin-web.service")
    assert one(web, "Service", "ExecStart").split() == [
        f"{SITE_DIR}/.venv/bin/gunicorn",
        "-c",
        "python:jailadmin.gunicorn_conf",
    ]
    assert one(web, "Service", "Type") == "notify"
    # `systemctl reload`: gunicorn's graceful reload (tests/deploy/test_gunicorn_conf.py).
    assert one(web, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    # TERM to the master alone, which stops its workers gracefully.
    assert one(web, "Service", "KillMode") == "mixed"
    jobs = unit_parse(DEPLOY / "jailadmin-jobs.service")
    # The installed package's command (the wheel's console script), not the checkout's manage.py.
    assert one(jobs, "Service", "ExecStart").split() == [
        f"{SITE_DIR}/.venv/bin/jailadmin",
        "run_jobs",
    ]
    assert [v.split()[:2] for v in web["Service"]["ExecStartPre"]] == [
        [f"{SITE_DIR}/.venv/bin/jailadmin", "migrate"],
        [f"{SITE_DIR}/.venv/bin/jailadmin", "collectstatic"],
    ]
    # Background work yields to the pages (JAILADMIN_JOBS_NICE's default, set by systemd).
    assert one(jobs, "Service", "Nice") == "10"
    for unit, name in ((web, "jailadmin-web"), (jobs, "jailadmin-jobs")):
        assert one(unit, "Service", "StandardOutput") == "journal"
        assert one(unit, "Service", "StandardError") == "journal"
        assert one(unit, "Service", "SyslogIdentifier") == name


def test_deploy_web_service_gunicorn_configuration_from_the_env_example(tmp_path: Path):
    """What gunicorn makes of jailadmin/gunicorn_conf.py with the example environment file:
    loopback only, trusting no proxy header itself, logging to the journal."""
    env = env_example() | {
        "JAILADMIN_SECRET_KEY": secrets.token_urlsafe(50),
        "JAILADMIN_VAR_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "-c",
            "python:jailadmin.gunicorn_conf",
            "--print-config",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=ANALYZE_TIMEOUT,
        check=True,
    )
    config = {
        key.strip(): value.strip()
        for key, _, value in (line.partition("=") for line in done.stdout.splitlines())
    }
    assert config["wsgi_app"] == "jailadmin.wsgi:application"
    assert config["bind"] == "['127.0.0.1:8000']"
    assert config["workers"] == env["JAILADMIN_WORKERS"]
    assert config["forwarded_allow_ips"] == "[]"
    assert config["accesslog"] == config["errorlog"] == "-"
    assert config["access_log_format"].startswith("%(h)s ")


def test_deploy_user_and_directories():
    sysusers = [
        line.split()
        for line in (DEPLOY / "sysusers.d" / "jailadmin.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert [(row[0], row[1]) for row in sysusers] == [("u", "jailadmin")]
    tmpfiles = {
        row[1]: row
        for row in (
            line.split()
            for line in (DEPLOY / "tmpfiles.d" / "jailadmin.conf").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        )
    }
    assert tmpfiles["/var/lib/jailadmin"][:5] == [
        "d",
        "/var/lib/jailadmin",
        "0750",
        "jailadmin",
        "jailadmin",
    ]
    assert tmpfiles["/etc/jailadmin"][:5] == ["d", "/etc/jailadmin", "0750", "root", "jailadmin"]
    # What root runs must not be writable by the site's user.
    assert tmpfiles["/usr/local/lib/jailadmin"][2:5] == ["0755", "root", "root"]
    assert tmpfiles[str(Path(AGENT_SOCKET).parent)][3] == "root"


def test_deploy_env_example_points_the_site_at_the_agent():
    env = env_example()
    assert env["JAILADMIN_FAIL2BAN_AGENT"] == f"unix:{AGENT_SOCKET}"
    assert "JAILADMIN_FAIL2BAN_SOCKET" not in env
    assert env["JAILADMIN_VAR_DIR"] == "/var/lib/jailadmin"
    assert env["JAILADMIN_DEBUG"] == "false"
    assert env["JAILADMIN_SECURE"] == "true"
    settings_source = (ROOT / "jailadmin" / "settings.py").read_text()
    for key in env:
        assert f'"{key}"' in settings_source, f"{key} is not a setting jailadmin reads"


def test_deploy_env_example_passes_the_deploy_checks(tmp_path: Path):
    """The example, with a real secret, is a production configuration Django accepts."""
    env = env_example() | {
        "JAILADMIN_SECRET_KEY": secrets.token_urlsafe(50),
        "JAILADMIN_VAR_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "check",
            "--deploy",
            "--tag",
            "security",
            "--fail-level",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=ANALYZE_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


@pytest.mark.parametrize(
    ("path", "fence"), [("nginx/jailadmin.conf", "nginx"), ("caddy/Caddyfile", "caddyfile")]
)
def test_deploy_readme_shows_the_proxy_snippets_as_shipped(path: str, fence: str):
    """The README's proxy recipes are the files the proxy tests run (tests/deploy/)."""
    readme = (ROOT / "README.md").read_text()
    assert f"```{fence}\n{(DEPLOY / path).read_text()}```" in readme
