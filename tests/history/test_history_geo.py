"""Geo data on archived bans: offline (no network at all) and from a MaxMind .mmdb file."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from jails.fail2ban.dbfile import Fail2banBan, fail2ban_db_add, fail2ban_db_create
from jails.history.geo import GeoLocator
from jails.history.models import BanEvent, IPSummary
from jails.history.services import sync as history
from jails.state import HistoryState

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]
NOW = int(datetime.now(UTC).timestamp())


def _bans_file(path: Path) -> Path:
    fail2ban_db_create(path)
    fail2ban_db_add(
        path,
        [
            Fail2banBan("sshd", "8.8.8.8", NOW - 60, matches=["x"]),
            Fail2banBan("sshd", "2001:4860:4860::8888", NOW - 50, matches=["x"]),
            Fail2banBan("sshd", "192.0.2.1", NOW - 40, matches=["x"]),  # documentation range
        ],
    )
    return path


def test_history_sync_locates_addresses_with_sockets_refused(runtime, tmp_path, monkeypatch):
    real_socket = socket.socket

    def only_unix(family=socket.AF_INET, *args, **kwargs):
        if family != socket.AF_UNIX:
            raise AssertionError("the archive tried to use the network")
        return real_socket(family, *args, **kwargs)

    monkeypatch.setattr(socket, "socket", only_unix)
    monkeypatch.setattr(socket, "create_connection", only_unix)
    monkeypatch.setattr(socket, "getaddrinfo", only_unix)
    history.history_sync(runtime, dbfile=str(_bans_file(tmp_path / "f2b.sqlite3")))

    google = BanEvent.objects.get(ip="8.8.8.8")
    assert (google.country_code, google.as_name) == ("US", "GOOGLE")
    assert BanEvent.objects.get(ip="2001:4860:4860::8888").country_code == "US"
    assert BanEvent.objects.get(ip="192.0.2.1").country_code == ""
    assert IPSummary.objects.get(ip="8.8.8.8").country_name == "United States"


@pytest.mark.slow
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root for unshare --net"
)
def test_history_sync_command_in_a_process_without_any_network(tmp_path):
    """`manage.py history_sync` in a new network namespace: no network at all."""
    bans = _bans_file(tmp_path / "f2b.sqlite3")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        JAILADMIN_DATABASE_URL=f"sqlite:///{tmp_path / 'site.sqlite3'}",
        JAILADMIN_DEBUG="false",
        JAILADMIN_SECRET_KEY="test-only-secret-key-not-for-production-use-0123456789",
    )
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, cwd=REPO, check=True, timeout=120)
    # Proof that the namespace has no network: a connection to a public address fails.
    probe = subprocess.run(
        [
            "unshare",
            "--net",
            sys.executable,
            "-c",
            "import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)",
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert probe.returncode != 0
    done = subprocess.run(
        ["unshare", "--net", *manage, "history_sync", "--dbfile", str(bans), "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout[done.stdout.index("{") :])
    assert report["sync"]["archived"] == 3 and report["sync"]["geo_error"] is None
    import sqlite3

    with sqlite3.connect(tmp_path / "site.sqlite3") as db:
        row = db.execute(
            "SELECT country_code, as_name FROM history_banevent WHERE ip = '8.8.8.8'"
        ).fetchone()
    assert row == ("US", "GOOGLE")


@pytest.fixture
def mmdb_path(tmp_path):
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Test")
    writer.insert_network(
        IPSet(["8.8.8.0/24"]),
        {
            "country": {"iso_code": "DE", "names": {"en": "Germany"}},
            "autonomous_system_number": 64500,
            "autonomous_system_organization": "Example AS",
        },
    )
    path = tmp_path / "test.mmdb"
    writer.to_db_file(str(path))
    return path


def test_history_sync_uses_the_configured_mmdb_file(runtime, tmp_path, mmdb_path):
    runtime.history = HistoryState(geo=GeoLocator(mmdb_path=mmdb_path))
    history.history_sync(runtime, dbfile=str(_bans_file(tmp_path / "f2b.sqlite3")))
    event = BanEvent.objects.get(ip="8.8.8.8")
    assert (event.country_code, event.country_name, event.asn, event.as_name) == (
        "DE",
        "Germany",
        64500,
        "Example AS",
    )
    # Outside the file's networks the bundled offline data still answers.
    assert BanEvent.objects.get(ip="2001:4860:4860::8888").country_code == "US"


def test_runtime_state_reads_the_mmdb_path_from_the_settings(mmdb_path):
    from django.conf import settings

    from jails.state import RuntimeSettings, build_runtime_state

    state = build_runtime_state(
        replace(RuntimeSettings.from_django_settings(settings), geoip_db=str(mmdb_path))
    )
    assert state.history.geo.lookup("8.8.8.8").country_code == "DE"
    assert not build_runtime_state(
        RuntimeSettings.from_django_settings(settings)
    ).history.geo.is_loaded


def test_history_sync_archives_without_geo_when_the_mmdb_file_is_broken(runtime, tmp_path):
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"not a maxmind database")
    runtime.history = HistoryState(geo=GeoLocator(mmdb_path=broken))
    result = history.history_sync(runtime, dbfile=str(_bans_file(tmp_path / "f2b.sqlite3")))
    assert result.archived == 3  # nothing lost
    assert "broken.mmdb" in result.geo_error
    assert BanEvent.objects.get(ip="8.8.8.8").country_code == ""
