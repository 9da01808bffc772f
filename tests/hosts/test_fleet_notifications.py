"""The "fail2ban unreachable for K minutes / recovered" rule, per host: each host's outage
makes one "down" and one "recovered" message naming that host, whatever the others do.

The session's server is the local host; another private server is host "web1" (kind
"socket"), stopped and started for real; a fake server that never answers plays a hung host.
Time is driven with `now`, never by sleeping.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jails.fail2ban.server import JailSpec, PrivateServer
from jails.hosts.models import LOCAL_HOST, Host
from jails.notifications.models import Channel, Notification, Rule
from jails.notifications.services import channels as service
from jails.notifications.services.delivery import DeliveryConfig
from jails.notifications.services.rules import rules_evaluate
from jails.services.audit import Actor
from tests.conftest import runtime_install
from tests.support.fakeserver import FakeFail2ban, hang

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ACTOR = Actor.system("test")


@pytest.fixture(scope="module")
def web1_server() -> Iterator[PrivateServer]:
    base = Path(tempfile.mkdtemp(prefix="jn1-", dir="/tmp"))
    server = PrivateServer(base, (JailSpec("sshd"),), record_actions=False)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def web1(f2b, web1_server) -> PrivateServer:
    if not web1_server.is_running():
        web1_server.start()
    runtime_install(f2b, agent=None)
    Host.objects.create(name="web1", kind=Host.Kind.SOCKET, address=str(web1_server.socket_path))
    return web1_server


@pytest.fixture
def config() -> DeliveryConfig:
    """Delivery settings: messages are only queued here, never sent."""
    return DeliveryConfig(
        email_from="jailadmin@example.test",
        email_configured=True,
        timeout=1.0,
        max_attempts=3,
        backoff=timedelta(seconds=10),
        site_url="https://jailadmin.example.test",
    )


@pytest.fixture
def down_rule() -> Rule:
    channel = Channel.objects.create(
        name="hook", kind=Channel.Kind.WEBHOOK, target="http://127.0.0.1:9/h", secret="k"
    )
    return service.rule_create(
        name="down-rule",
        kind=Rule.Kind.DOWN,
        params={"minutes": 3},
        channels=[channel],
        rate_limit_minutes=15,
        actor=ACTOR,
    )


def _queued(rule: Rule) -> list[Notification]:
    return list(Notification.objects.filter(rule=rule).order_by("id"))


def _evaluate(config, minutes: int) -> None:
    from jails.state import runtime_state

    rules_evaluate(runtime_state(), now=T0 + timedelta(minutes=minutes), config=config)


def test_fleet_a_host_down_then_back_makes_one_message_each_naming_it(web1, down_rule, config):
    _evaluate(config, 0)  # everyone up: nothing
    web1.stop()
    try:
        for minute in (1, 2, 3, 4, 5, 6):  # down at 1, K=3 minutes later at 4: one message
            _evaluate(config, minute)
        [down] = _queued(down_rule)
    finally:
        web1.start()
    assert down.payload["event"] == "down"
    assert down.payload["title"] == "fail2ban on web1 unreachable for 3+ minutes"
    assert down.payload["facts"]["Host"] == "web1"
    assert down.payload["facts"]["Problem"] == "fail2ban unreachable"
    assert down.payload["host"] == "web1"
    # No internal path in a message: the socket's location stays on this side.
    assert str(web1.socket_path) not in down.body_text + down.body_html + str(down.payload)
    _evaluate(config, 7)
    _evaluate(config, 8)
    down, recovered = _queued(down_rule)
    assert recovered.payload["event"] == "recovered"
    assert recovered.payload["title"] == "fail2ban on web1 answers again"
    assert recovered.payload["summary"] == "fail2ban on web1 was unreachable for 6 min."
    assert recovered.payload["host"] == "web1"
    down_rule.refresh_from_db()
    assert down_rule.memory["hosts"] == {}


def test_fleet_two_hosts_down_each_get_their_own_messages(web1, f2b, down_rule, config):
    Host.objects.create(name="gone", kind=Host.Kind.SOCKET, address="/tmp/jn-no-such-host.sock")
    _evaluate(config, 0)  # gone is down from the start; web1 is up
    web1.stop()
    try:
        _evaluate(config, 2)
        _evaluate(config, 3)  # gone: 3 minutes down
        _evaluate(config, 5)  # web1: 3 minutes down
        _evaluate(config, 6)
    finally:
        web1.start()
    downs = [n.payload for n in _queued(down_rule)]
    assert [(p["event"], p["host"]) for p in downs] == [("down", "gone"), ("down", "web1")]
    _evaluate(config, 7)  # web1 is back; gone is still down
    events = [(n.payload["event"], n.payload["host"]) for n in _queued(down_rule)]
    assert events[2:] == [("recovered", "web1")]
    Host.objects.filter(name="gone").update(address=str(f2b.socket_path))
    _evaluate(config, 9)
    _evaluate(config, 10)
    events = [(n.payload["event"], n.payload["host"]) for n in _queued(down_rule)]
    assert events[3:] == [("recovered", "gone")]
    assert all(p["host"] != LOCAL_HOST for p in downs)


def test_fleet_a_hung_host_is_down_after_k_minutes_within_the_deadline(
    web1, f2b, down_rule, config
):
    # A long link timeout: only the per-host deadline can end the wait for the hung host.
    runtime_install(f2b, agent=None, host_deadline=1.0, fail2ban_timeout=60.0)
    with FakeFail2ban(hang()) as hung:
        Host.objects.create(name="stuck", kind=Host.Kind.SOCKET, address=hung.path)
        _evaluate(config, 0)
        _evaluate(config, 3)
    [down] = _queued(down_rule)
    assert down.payload["host"] == "stuck"
    assert down.payload["facts"]["Problem"] == "no answer within 1 s"
    assert Host.objects.get(name="stuck").unreachable_since is not None


def test_fleet_a_disabled_host_is_forgotten_without_a_message(web1, down_rule, config):
    web1.stop()
    try:
        _evaluate(config, 0)
        _evaluate(config, 4)
    finally:
        web1.start()
    assert [n.payload["event"] for n in _queued(down_rule)] == ["down"]
    Host.objects.filter(name="web1").update(enabled=False)
    _evaluate(config, 5)
    assert [n.payload["event"] for n in _queued(down_rule)] == ["down"]
    down_rule.refresh_from_db()
    assert "web1" not in down_rule.memory["hosts"]


def test_fleet_single_host_memory_saved_before_the_fleet_still_recovers(f2b, down_rule, config):
    runtime_install(f2b, agent=None)
    since = (T0 - timedelta(minutes=10)).isoformat()
    Rule.objects.filter(pk=down_rule.pk).update(memory={"down_since": since, "down_notified": True})
    down_rule.refresh_from_db()
    _evaluate(config, 0)  # the local fail2ban answers: the old outage ends
    [recovered] = _queued(down_rule)
    # A single-host site: the message as it always was, no host named.
    assert recovered.payload["title"] == "fail2ban answers again"
    assert recovered.payload["summary"] == "fail2ban was unreachable for 10 min."
    assert "host" not in recovered.payload and "Host" not in recovered.payload["facts"]
    down_rule.refresh_from_db()
    assert down_rule.memory == {"hosts": {}}
