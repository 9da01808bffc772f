"""The two fail2ban versions (Debian 12's 1.0.2, Debian 13's 1.1.0) and the capability cache.

Run on either version (JAILADMIN_TEST_FAIL2BAN=1.0|1.1); `make test` runs this file on both.
The re-probe test needs both unpacked and starts one of each behind the same socket path.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from jails.fail2ban import Fail2banClient, ProtocolError, ReplyTooLarge
from jails.fail2ban.server import JailSpec, PrivateServer, find_fail2ban, selected_version
from jails.services import jails as jail_service
from tests.conftest import point_state_at
from tests.support.fakeserver import FakeFail2ban, reply_value
from tests.support.recording_proxy import RecordingProxy

pytestmark = pytest.mark.django_db

VERSION = selected_version()
ON_11 = VERSION == "1.1"


def test_private_server_runs_the_selected_version(f2b):
    assert f2b.install.version == VERSION
    assert str(f2b.client().send("version")).startswith(VERSION + ".")


def test_capabilities_match_the_version(runtime, f2b):
    capabilities = jail_service.capabilities_get(runtime)
    assert capabilities.version == f2b.client().send("version")
    # Refused by both versions; the one-reply status and stats are new in 1.1.
    assert capabilities.get_backend is False and capabilities.get_idle is False
    assert capabilities.stats is ON_11 and capabilities.status_all is ON_11


def test_jail_list_round_trips(runtime, f2b):
    # Total counters outlive reset() (they count since the jail started): compare deltas.
    before = {j.name: j for j in jail_service.overview_get(runtime).jails}
    f2b.client().send("set", "sshd", "banip", "203.0.113.5", "203.0.113.6")
    jail_service.capabilities_get(runtime)  # probe outside the recording
    with RecordingProxy(str(f2b.socket_path)) as proxy:
        state = point_state_at(proxy.path, timeout=10)
        state.jail_service.capabilities = runtime.jail_service.capabilities
        state.jail_service.capabilities_endpoint = state.jail_service.client.endpoint_identity()
        overview = jail_service.overview_get(state)
    names = [jail.name for jail in f2b.jails]
    if ON_11:
        assert proxy.commands == [["status", "--all", "short"], ["stats"]]
    else:
        assert proxy.commands[0] == ["status"]
        assert sorted(proxy.commands[1:]) == sorted(["status", n, "short"] for n in names)
    by_name = {jail.name: jail for jail in overview.jails}
    assert sorted(by_name) == sorted(names)
    assert by_name["sshd"].currently_banned == 2
    assert by_name["sshd"].total_banned == before["sshd"].total_banned + 2
    assert by_name["sshd"].log_sources == (str(f2b.log_path("sshd")),)
    assert by_name["sshd"].backend == ("polling" if ON_11 else None)
    assert by_name["sshd"].idle is None


def test_pages_show_the_backend_where_the_version_reports_it(runtime, f2b, logged_in_client):
    listing = logged_in_client.get("/jails/").content.decode()
    page = logged_in_client.get("/jails/sshd/").content.decode()
    if ON_11:
        assert "<td>polling</td>" in listing
        assert "<dt>Backend</dt><dd>polling</dd>" in page
    else:
        assert "not reported by this fail2ban version" in listing
        assert '<dt>Backend</dt><dd><span class="muted">not reported by fail2ban 1.0.2' in page


@pytest.fixture
def short_dir():
    path = Path(tempfile.mkdtemp(prefix="jv-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _install_or_skip(version: str):
    try:
        return find_fail2ban(version=version)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def test_capabilities_probed_again_when_another_version_takes_the_socket(short_dir):
    jails = (JailSpec("sshd"),)
    old = PrivateServer(short_dir, jails, install=_install_or_skip("1.0"))
    new = PrivateServer(short_dir, jails, install=_install_or_skip("1.1"))
    old.start()
    try:
        state = point_state_at(str(old.socket_path), timeout=10)
        first = jail_service.capabilities_get(state)
        assert first.version == "1.0.2" and first.stats is False
        assert jail_service.overview_get(state).jails[0].backend is None
        assert jail_service.capabilities_get(state) is first  # cached: no probe
    finally:
        old.stop()
    new.start()  # the upgrade: same socket path, another fail2ban
    try:
        second = jail_service.capabilities_get(state)
        assert second.version == "1.1.0" and second.stats and second.status_all
        assert state.jail_service.probes_run == 2
        assert jail_service.overview_get(state).jails[0].backend == "polling"
        assert jail_service.capabilities_get(state) is second
        assert state.jail_service.probes_run == 2
    finally:
        new.stop()


def test_refused_command_the_cache_called_supported_forgets_the_cache():
    # A server that changed behind an unchanged socket file (invisible to the stat key):
    # `status --all short` is refused although the cache says 1.1, so the overview falls
    # back to the per-jail path and the next call probes again.
    invalid = Exception("Invalid command (no get action or not yet implemented)")
    behaviours = [
        reply_value(1, invalid),  # status --all short
        reply_value(0, [("Number of jail", 1), ("Jail list", "sshd")]),
        reply_value(0, [("Filter", [("Currently failed", 1)]), ("Actions", [])]),
    ]
    with FakeFail2ban(behaviours) as fake:
        state = point_state_at(fake.path, timeout=5)
        stale = jail_service.Capabilities(
            version="1.1.0", get_backend=False, get_idle=False, stats=True, status_all=True
        )
        state.jail_service.capabilities = stale
        state.jail_service.capabilities_endpoint = state.jail_service.client.endpoint_identity()
        overview = jail_service.overview_get(state)
        assert [(j.name, j.currently_failed) for j in overview.jails] == [("sshd", 1)]
        assert state.jail_service.capabilities is None
        assert fake.decoded_requests() == [
            ["status", "--all", "short"],
            ["status"],
            ["status", "sshd", "short"],
        ]


# MAX_REPLY_BYTES -------------------------------------------------------------------------------
def test_reply_over_the_limit_is_a_typed_error():
    with FakeFail2ban(reply_value(0, [f"203.0.113.{i % 250}-{i}" for i in range(2000)])) as fake:
        client = Fail2banClient(fake.path, timeout=5, max_reply_bytes=10_000)
        with pytest.raises(ReplyTooLarge, match="larger than 10,000 bytes") as caught:
            client.send("get", "sshd", "banip")
    assert isinstance(caught.value, ProtocolError)  # the pages already map these to a 502


def test_reply_under_the_limit_is_read_whole():
    value = ["203.0.113.1"] * 2000
    with FakeFail2ban(reply_value(0, value)) as fake:
        client = Fail2banClient(fake.path, timeout=5, max_reply_bytes=100_000)
        assert client.send("get", "sshd", "banip") == value


def test_largest_real_reply_fits_the_default_limit():
    from jails.fail2ban.client import MAX_REPLY_BYTES
    from tests.support.fakeserver import pickled_reply

    # The shape of `get J banip --with-time` for 100 000 IPv6 bans, the longest lines.
    line = (
        "2001:db8:ffff:ffff:ffff:ffff:ffff:{:x} \t2026-11-28 21:50:59 + 600 = 2026-11-28 22:00:59"
    )
    size = len(pickled_reply(0, [line.format(i) for i in range(100_000)]))
    assert size * 3 < MAX_REPLY_BYTES
