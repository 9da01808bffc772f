"""The rules over the real archive table, driven by their own clock (`now`), never by sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jails.history.models import BanEvent
from jails.notifications.models import Channel, Notification, PendingEvent, Rule
from jails.notifications.services import channels as service
from jails.notifications.services.rules import digest_period, rules_evaluate, scrub
from jails.notifications.signals import blocklist_import_failed
from jails.services.audit import Actor

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TS0 = int(T0.timestamp())
ACTOR = Actor.system("test")


def ban_rows(
    count: int,
    *,
    jail: str = "sshd",
    start: int = TS0 - 60,
    ip_base: str = "10.0",
    country: str = "",
    step: int = 0,
) -> list[BanEvent]:
    rows = []
    for n in range(count):
        ip = f"{ip_base}.{n // 250}.{n % 250 + 1}"
        rows.append(
            BanEvent(
                jail=jail,
                ip=ip,
                network=ip.rsplit(".", 1)[0] + ".0/24",
                timeofban=start + n * step,
                bantime=600,
                country_code=country,
            )
        )
    return BanEvent.objects.bulk_create(rows, batch_size=2000)


def _rule(kind: str, *, channel: Channel, rate: int = 15, **params) -> Rule:
    return service.rule_create(
        name=f"{kind}-rule",
        kind=kind,
        params=params,
        channels=[channel],
        rate_limit_minutes=rate,
        actor=ACTOR,
    )


@pytest.fixture
def channel() -> Channel:
    return Channel.objects.create(
        name="hook", kind=Channel.Kind.WEBHOOK, target="http://127.0.0.1:9/h", secret="k"
    )


def _queued(rule: Rule) -> list[Notification]:
    return list(Notification.objects.filter(rule=rule).order_by("id"))


def test_burst_of_10000_bans_makes_one_message_per_channel(
    channel, config, runtime, django_user_model
):
    user = django_user_model.objects.create_user("sub", email="sub@example.test")
    rule = _rule(Rule.Kind.BURST, channel=channel, threshold=100, minutes=10)
    rule.subscribers.add(user)
    ban_rows(10_000)
    result = rules_evaluate(runtime, now=T0, config=config)
    assert (result.fired, result.queued) == (1, 2)  # the channel and the subscriber
    hook, mail = _queued(rule)
    assert (hook.channel, mail.channel, mail.recipient) == (channel, None, "sub@example.test")
    assert hook.payload["count"] == 10_000
    assert hook.subject == "[jailadmin] Ban burst: 10000 bans in 10 min (all jails)"
    assert hook.payload["tables"][0]["more"] == 0 and len(hook.payload["tables"][0]["rows"]) == 20
    # More bans within the rate limit: held, no second message.
    ban_rows(500, ip_base="10.9", start=TS0 + 30)
    assert rules_evaluate(runtime, now=T0 + timedelta(minutes=1), config=config).queued == 0
    assert len(_queued(rule)) == 2


def test_burst_per_jail_counts_each_jail_against_the_threshold(channel, config, runtime):
    rule = _rule(Rule.Kind.BURST, channel=channel, threshold=50, minutes=10, per_jail=True)
    ban_rows(60, jail="sshd")
    ban_rows(40, jail="postfix", ip_base="10.5")
    rules_evaluate(runtime, now=T0, config=config)
    [row] = _queued(rule)
    assert row.payload["jails"] == ["sshd"] and row.payload["count"] == 60
    assert row.subject == "[jailadmin] Ban burst: 60 bans in 10 min (jail sshd)"


def test_burst_below_the_threshold_or_outside_the_window_stays_quiet(channel, config, runtime):
    rule = _rule(Rule.Kind.BURST, channel=channel, threshold=100, minutes=10)
    ban_rows(99)
    ban_rows(50, ip_base="10.7", start=TS0 - 3600)  # an hour ago: outside the 10 minutes
    assert rules_evaluate(runtime, now=T0, config=config).queued == 0
    assert _queued(rule) == []


def test_repeat_offender_banned_again_within_d_days(channel, config, runtime):
    ban_rows(1, ip_base="198.51", start=TS0 - 3 * 86400)  # before the rule: the history
    ban_rows(1, ip_base="198.52", start=TS0 - 30 * 86400)  # too long ago
    rule = _rule(Rule.Kind.REPEAT, channel=channel, rate=0, days=7)
    ban_rows(1, ip_base="198.51", start=TS0 - 60, jail="postfix")
    ban_rows(1, ip_base="198.52", start=TS0 - 60)
    ban_rows(1, ip_base="198.53", start=TS0 - 60)  # first ban: not a repeat
    rules_evaluate(runtime, now=T0, config=config)
    [row] = _queued(rule)
    offenders = row.payload["tables"][0]["rows"]
    assert offenders == [
        {"address": "198.51.0.1", "bans": "2", "jails": "postfix, sshd", "country": ""}
    ]
    # Nothing new: nothing more.
    assert rules_evaluate(runtime, now=T0 + timedelta(minutes=1), config=config).queued == 0


def test_repeat_offender_in_several_jails_over_any_time(channel, config, runtime):
    ban_rows(1, ip_base="192.0", jail="sshd", start=TS0 - 30 * 86400)
    ban_rows(1, ip_base="192.0", jail="postfix", start=TS0 - 20 * 86400)
    ban_rows(1, ip_base="192.1", jail="postfix", start=TS0 - 20 * 86400)
    rule = _rule(Rule.Kind.REPEAT, channel=channel, rate=0, days=7, min_jails=3)
    ban_rows(1, ip_base="192.0", jail="nginx-http-auth")  # a third jail: an offender
    ban_rows(1, ip_base="192.1", jail="nginx-http-auth")  # a second jail only: not yet
    rules_evaluate(runtime, now=T0, config=config)
    [row] = _queued(rule)
    assert row.payload["tables"][0]["rows"] == [
        {
            "address": "192.0.0.1",
            "bans": "1",
            "jails": "nginx-http-auth, postfix, sshd",
            "country": "",
        }
    ]


def test_rate_limited_repeat_rule_holds_events_and_groups_them_later(channel, config, runtime):
    ban_rows(3, ip_base="198.51", start=TS0 - 86400)
    rule = _rule(Rule.Kind.REPEAT, channel=channel, rate=30, days=7)
    ban_rows(1, ip_base="198.51", start=TS0 - 60)
    rules_evaluate(runtime, now=T0, config=config)
    ban_rows(3, ip_base="198.51", start=TS0 + 60)
    rules_evaluate(runtime, now=T0 + timedelta(minutes=10), config=config)  # rate limited
    assert len(_queued(rule)) == 1
    rules_evaluate(runtime, now=T0 + timedelta(minutes=31), config=config)
    first, second = _queued(rule)
    assert second.payload["count"] == 3  # the held events, in one message


def test_origin_rule_matches_countries_and_networks(channel, config, runtime):
    rule = _rule(Rule.Kind.ORIGIN, channel=channel, countries=["CN"], networks=["203.0.113.0/24"])
    ban_rows(2, ip_base="100.64", country="CN")
    ban_rows(1, ip_base="203.0", country="")  # 203.0.0.1: outside the watched network
    BanEvent.objects.create(
        jail="sshd", ip="203.0.113.9", network="203.0.113.0/24", timeofban=TS0, bantime=600
    )
    BanEvent.objects.create(
        jail="sshd",
        ip="2001:db8::1",
        network="2001:db8::/64",
        timeofban=TS0,
        bantime=600,
        country_code="DE",
    )
    rules_evaluate(runtime, now=T0, config=config)
    [row] = _queued(rule)
    addresses = {r["address"] for r in row.payload["tables"][0]["rows"]}
    assert addresses == {"100.64.0.1", "100.64.0.2", "203.0.113.9"}


def test_origin_rule_counts_a_ban_in_a_watched_country_and_network_once(channel, config, runtime):
    rule = _rule(Rule.Kind.ORIGIN, channel=channel, countries=["CN"], networks=["203.0.113.0/24"])
    ban_rows(2, ip_base="203.0", country="CN")  # 203.0.0.1-2: the country only
    # Inside the network, in two jails; the first ban also from the watched country.
    for jail, country in (("sshd", "CN"), ("nginx", "US")):
        BanEvent.objects.create(
            jail=jail,
            ip="203.0.113.9",
            network="203.0.113.0/24",
            timeofban=TS0,
            bantime=600,
            country_code=country,
        )
    rules_evaluate(runtime, now=T0, config=config)
    [row] = _queued(rule)
    assert row.payload["count"] == 4
    bans = {r["address"]: r["bans"] for r in row.payload["tables"][0]["rows"]}
    assert bans == {"203.0.0.1": "1", "203.0.0.2": "1", "203.0.113.9": "2"}


def test_origin_rule_with_networks_only(channel, config, runtime):
    rule = _rule(Rule.Kind.ORIGIN, channel=channel, countries=[], networks=["2001:db8::/64"])
    ban_rows(3, ip_base="100.64", country="CN")  # a country, but none is watched
    for ip in ("2001:db8::1", "2001:db8:1::1"):  # inside, outside the network
        BanEvent.objects.create(
            jail="sshd", ip=ip, network=ip, timeofban=TS0, bantime=600, country_code="DE"
        )
    rules_evaluate(runtime, now=T0, config=config)
    [row] = _queued(rule)
    assert row.payload["count"] == 1
    assert [r["address"] for r in row.payload["tables"][0]["rows"]] == ["2001:db8::1"]


def test_fail2ban_down_for_k_minutes_then_recovered_makes_one_message_each(
    channel, config, runtime, f2b
):
    rule = _rule(Rule.Kind.DOWN, channel=channel, minutes=3)
    assert rules_evaluate(runtime, now=T0, config=config).queued == 0  # up: nothing
    f2b.stop()
    try:
        for minute in (1, 2, 3, 4, 5):  # down at 1, K=3 minutes later at 4: one message
            rules_evaluate(runtime, now=T0 + timedelta(minutes=minute), config=config)
        [down] = _queued(rule)
        assert down.payload["event"] == "down"
        assert down.payload["facts"]["Problem"] == "fail2ban unreachable"
        # No internal path in a message: the socket's location stays on this host.
        assert str(f2b.socket_path) not in down.body_text + down.body_html + str(down.payload)
        assert str(f2b.socket_path.parent) not in down.body_text
    finally:
        f2b.start()
    rules_evaluate(runtime, now=T0 + timedelta(minutes=6), config=config)
    rules_evaluate(runtime, now=T0 + timedelta(minutes=7), config=config)
    down, recovered = _queued(rule)
    assert recovered.payload["event"] == "recovered"
    assert recovered.payload["summary"] == "fail2ban was unreachable for 5 min."


def test_a_short_outage_makes_no_message(channel, config, runtime, f2b):
    rule = _rule(Rule.Kind.DOWN, channel=channel, minutes=5)
    f2b.stop()
    try:
        rules_evaluate(runtime, now=T0, config=config)
        rules_evaluate(runtime, now=T0 + timedelta(minutes=2), config=config)
    finally:
        f2b.start()
    rules_evaluate(runtime, now=T0 + timedelta(minutes=3), config=config)
    assert _queued(rule) == []
    rule.refresh_from_db()
    assert "down_since" not in rule.memory


def test_blocklist_failure_signal_reaches_the_rule_without_paths_or_credentials(config, runtime):
    mail = Channel.objects.create(name="mail", kind=Channel.Kind.EMAIL, target="a@x.test")
    rule = _rule(Rule.Kind.BLOCKLIST, channel=mail, rate=0)
    blocklist_import_failed.send(
        sender=None,
        blocklist="spamhaus-drop",
        error="cannot read /var/lib/jailadmin/blocklists/drop.txt from https://u:pw@example.test/x",
    )
    blocklist_import_failed.send(sender=None, blocklist="<b>evil</b>", error="HTTP 500")
    assert PendingEvent.objects.count() == 2
    rules_evaluate(runtime, now=T0, config=config)
    [row] = _queued(rule)
    assert row.payload["count"] == 2
    text = row.body_text + row.body_html
    assert "/var/lib" not in text and "pw@" not in text
    assert "<b>evil</b>" not in row.body_html and "&lt;b&gt;evil&lt;/b&gt;" in row.body_html
    rules_evaluate(runtime, now=T0 + timedelta(minutes=1), config=config)
    assert len(_queued(rule)) == 1


def test_scrub_removes_paths_and_url_credentials_but_keeps_urls():
    assert scrub("open /etc/x.conf failed") == "open <path> failed"
    assert scrub("GET https://user:pw@h.test/list.txt: 404") == "GET https://h.test/list.txt: 404"


def test_daily_digest_is_sent_once_per_day_with_counts(channel, config, runtime):
    rule = _rule(Rule.Kind.DIGEST, channel=channel, period="daily")
    rules_evaluate(runtime, now=T0, config=config)  # a new rule starts with the next day
    assert _queued(rule) == []
    start, end = digest_period(T0 + timedelta(days=1), "daily")
    ban_rows(30, start=start + 100, step=1, country="FR")
    ban_rows(5, jail="postfix", ip_base="10.8", start=start + 100)
    next_day = T0 + timedelta(days=1)
    rules_evaluate(runtime, now=next_day, config=config)
    rules_evaluate(runtime, now=next_day + timedelta(hours=1), config=config)
    [row] = _queued(rule)
    assert row.payload["count"] == 35
    jails = row.payload["tables"][0]["rows"]
    assert jails == [{"jail": "sshd", "bans": "30"}, {"jail": "postfix", "bans": "5"}]
    assert row.payload["tables"][1]["rows"] == [{"country": "FR", "bans": "30"}]
    assert row.payload["link"] == "https://jailadmin.example.test/"


def test_weekly_digest_period_starts_on_monday():
    wednesday = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    start, end = digest_period(wednesday, "weekly")
    assert datetime.fromtimestamp(start, tz=UTC) == datetime(2026, 11, 23, tzinfo=UTC)
    assert end - start == 7 * 86400


def test_a_rule_without_channels_or_a_disabled_rule_queues_nothing(config, runtime):
    rule = service.rule_create(
        name="quiet",
        kind=Rule.Kind.BURST,
        params={"threshold": 1},
        channels=[],
        rate_limit_minutes=0,
        actor=ACTOR,
    )
    off = Channel.objects.create(
        name="off", kind=Channel.Kind.EMAIL, target="a@x.test", enabled=False
    )
    rule.channels.add(off)
    ban_rows(5)
    assert rules_evaluate(runtime, now=T0, config=config).queued == 0


def test_burst_in_several_jails_at_once_is_one_message(channel, config, runtime):
    rule = _rule(Rule.Kind.BURST, channel=channel, threshold=50, minutes=10, per_jail=True)
    ban_rows(80, jail="sshd")
    ban_rows(60, jail="postfix", ip_base="10.5")
    ban_rows(10, jail="nginx-http-auth", ip_base="10.6")
    rules_evaluate(runtime, now=T0, config=config)
    [row] = _queued(rule)
    assert row.payload["jails"] == ["postfix", "sshd"] and row.payload["count"] == 140
    assert row.payload["tables"][1]["rows"] == [
        {"jail": "sshd", "bans": "80"},
        {"jail": "postfix", "bans": "60"},
    ]
    # sshd again within the rate limit, nginx now over the threshold: only nginx is news.
    ban_rows(60, jail="nginx-http-auth", ip_base="10.7", start=TS0 + 30)
    ban_rows(10, jail="sshd", ip_base="10.8", start=TS0 + 30)
    rules_evaluate(runtime, now=T0 + timedelta(minutes=1), config=config)
    first, second = _queued(rule)
    assert second.payload["jails"] == ["nginx-http-auth"]


def test_origin_rule_with_countries_only(channel, config, runtime):
    rule = _rule(Rule.Kind.ORIGIN, channel=channel, countries=["cn", "RU"])
    ban_rows(3, ip_base="100.64", country="CN")
    ban_rows(2, ip_base="100.65", country="RU")
    ban_rows(4, ip_base="100.66", country="US")
    rules_evaluate(runtime, now=T0, config=config)
    [row] = _queued(rule)
    assert row.payload["count"] == 5
    countries = {r["country"] for r in row.payload["tables"][0]["rows"]}
    assert countries == {"CN", "RU"}
