"""Imports against a real private fail2ban: its state after an import, after an entry left the
list, after a manual ban of the same address; the runs, the audit and the history's origin."""

from __future__ import annotations

import pytest

from jails.blocklists.models import BlocklistSource, ImportRun, SourceEntry
from jails.blocklists.services.fetch import FetchPolicy
from jails.blocklists.services.imports import (
    FAILING_AFTER,
    ImportBusy,
    NotConfirmed,
    source_import,
    source_lock,
    source_preview,
)
from jails.blocklists.services.parse import LineStatus
from jails.models import AuditEntry
from jails.services.audit import Actor
from jails.services.bans import ips_ban
from tests.blocklists.conftest import Route, banned

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.fail2ban]

ACTOR = Actor(name="alice", source="web", user_id=None, address="198.51.100.9")
POLICY = FetchPolicy(connect_timeout=5, read_timeout=5, attempts=2, backoff=0.01)
LIST_V1 = "# test list\n11.1.1.1\n11.1.1.2\n12.0.0.0/24 ; SBL1\n2a01:4f8::1\nbad line\n10.0.0.1\n"


def make_source(list_server, body: str, name: str = "drop", **fields) -> BlocklistSource:
    list_server.routes[f"/{name}.txt"] = Route(body.encode(), etag=f'"{name}-{len(body)}"')
    return BlocklistSource.objects.create(
        name=name,
        url=list_server.url(f"/{name}.txt"),
        allow_private=True,  # the tests' list server is on loopback
        **fields,
    )


def run(state, source, **kw) -> ImportRun:
    """The import on a single-host site: exactly one run, the local host's."""
    source.refresh_from_db()
    [only] = source_import(
        state, source=source, actor=ACTOR, trigger="web", owner="test", policy=POLICY, **kw
    )
    assert only.host == "local"
    return only


def test_import_needs_a_confirmed_preview_first_and_preview_bans_nothing(
    bl_state, bl_f2b, list_server
):
    source = make_source(list_server, LIST_V1)
    with pytest.raises(NotConfirmed):
        run(bl_state, source)
    preview = source_preview(bl_state, source=source, policy=POLICY)
    assert preview.parsed.entries == [
        "10.0.0.1",
        "11.1.1.1",
        "11.1.1.2",
        "12.0.0.0/24",
        "2a01:4f8::1",
    ]
    counts = preview.parsed.counts
    assert counts[LineStatus.INVALID] == 1 and counts[LineStatus.ACCEPTED] == 5
    assert preview.to_ban == len(preview.parsed.entries)
    assert banned(bl_f2b) == set()
    assert not ImportRun.objects.exists()
    source.refresh_from_db()
    assert source.etag == "" and not source.confirmed  # the import will fetch for real


def test_import_bans_in_fail2ban_records_the_run_and_one_audit_record(
    bl_state, bl_f2b, list_server
):
    source = make_source(list_server, LIST_V1)
    before = AuditEntry.objects.count()
    result = run(bl_state, source, confirm=True)
    assert result.status == ImportRun.Status.OK, result.errors
    # 11.1.1.1 and .2 are not one CIDR block (.0/31 and .2/31): both stay addresses.
    expected = {"11.1.1.1", "11.1.1.2", "12.0.0.0/24", "2a01:4f8::1", "10.0.0.1"}
    assert banned(bl_f2b) == expected
    assert banned(bl_f2b, "sshd") == set()
    assert (result.lines, result.entries, result.banned, result.invalid) == (7, 5, 5, 1)
    assert result.first_invalid[0]["line"] == 6 and result.http_status == 200
    assert (
        set(
            SourceEntry.objects.filter(source=source, banned=True).values_list("address", flat=True)
        )
        == expected
    )
    records = list(AuditEntry.objects.all()[: AuditEntry.objects.count() - before])
    assert [(r.action, r.actor, r.ok, r.ip_count) for r in records] == [
        ("blocklist_import", "blocklist:drop", True, 5)
    ]
    assert records[0].parameters["source"] == "drop"
    source.refresh_from_db()
    assert source.confirmed and source.etag and source.consecutive_failures == 0


def test_import_of_a_large_list_writes_one_audit_record_not_one_per_address(
    bl_state, bl_f2b, list_server
):
    body = "\n".join(f"11.{i >> 8 & 255}.{i & 255}.{(i * 7) % 250 + 1}" for i in range(3000))
    source = make_source(list_server, body, name="big")
    before = AuditEntry.objects.count()
    result = run(bl_state, source, confirm=True)
    assert result.banned == result.entries and result.entries > 2000  # more than one batch
    assert AuditEntry.objects.count() - before == 1
    assert len(banned(bl_f2b)) == result.entries


def test_import_unchanged_list_is_a_304_and_no_work(bl_state, bl_f2b, list_server):
    source = make_source(list_server, LIST_V1)
    run(bl_state, source, confirm=True)
    audits = AuditEntry.objects.count()
    again = run(bl_state, source)
    assert again.status == ImportRun.Status.UNCHANGED and again.http_status == 304
    assert list_server.requests[-1].headers["If-None-Match"] == f'"drop-{len(LIST_V1)}"'
    assert AuditEntry.objects.count() == audits
    assert again.banned == again.unbanned == 0


def test_import_same_content_without_etag_is_no_work(bl_state, bl_f2b, list_server):
    source = make_source(list_server, LIST_V1)
    list_server.routes["/drop.txt"].etag = ""
    run(bl_state, source, confirm=True)
    again = run(bl_state, source)
    assert again.status == ImportRun.Status.UNCHANGED and again.http_status == 200


def test_import_unbans_an_entry_that_left_the_list(bl_state, bl_f2b, list_server):
    source = make_source(list_server, LIST_V1)
    run(bl_state, source, confirm=True)
    list_server.routes["/drop.txt"] = Route(LIST_V1.replace("11.1.1.2\n", "").encode(), etag='"v2"')
    result = run(bl_state, source)
    assert result.status == ImportRun.Status.OK, result.errors
    assert result.unbanned == 1 and result.banned == 0 and result.already_banned == 4
    assert banned(bl_f2b) == {"11.1.1.1", "12.0.0.0/24", "2a01:4f8::1", "10.0.0.1"}
    assert not SourceEntry.objects.filter(address="11.1.1.2").exists()
    unban = AuditEntry.objects.filter(action="blocklist_unban").get()
    assert unban.ips == ["11.1.1.2"] and unban.actor == "blocklist:drop"


def test_import_keeps_a_manual_ban_of_the_same_address(bl_state, bl_f2b, list_server):
    ips_ban(bl_state, jail="blocklist", lines=["11.1.1.2"], actor=ACTOR)  # a person, first
    source = make_source(list_server, LIST_V1)
    first = run(bl_state, source, confirm=True)
    assert first.already_banned == 1 and first.banned == 4
    list_server.routes["/drop.txt"] = Route(LIST_V1.replace("11.1.1.2\n", "").encode(), etag='"v2"')
    result = run(bl_state, source)
    assert result.unbanned == 0
    assert "11.1.1.2" in banned(bl_f2b)  # the person's ban stays


def test_import_keeps_a_ban_a_person_made_after_the_import(bl_state, bl_f2b, list_server):
    source = make_source(list_server, LIST_V1)
    run(bl_state, source, confirm=True)
    # The list's ban is lifted by hand, then a person bans the address again.
    bl_f2b.client().send("set", "blocklist", "unbanip", "11.1.1.2")
    ips_ban(bl_state, jail="blocklist", lines=["11.1.1.2"], actor=ACTOR)
    list_server.routes["/drop.txt"] = Route(LIST_V1.replace("11.1.1.2\n", "").encode(), etag='"v2"')
    result = run(bl_state, source)
    assert (result.unbanned, result.kept) == (0, 1)
    assert "11.1.1.2" in banned(bl_f2b)


def test_import_keeps_what_another_source_lists_and_hands_it_over(bl_state, bl_f2b, list_server):
    first = make_source(list_server, "21.0.0.1\n21.0.0.9\n", name="first")
    second = make_source(list_server, "21.0.0.9\n", name="second")
    run(bl_state, first, confirm=True)
    assert run(bl_state, second, confirm=True).already_banned == 1
    list_server.routes["/first.txt"] = Route(b"21.0.0.1\n", etag='"f2"')
    assert run(bl_state, first).kept == 1
    assert "21.0.0.9" in banned(bl_f2b)
    # The second source now answers for it: when it drops it too, it is unbanned.
    list_server.routes["/second.txt"] = Route(b"22.2.2.2\n", etag='"s2"')
    assert run(bl_state, second).unbanned == 1
    assert banned(bl_f2b) == {"21.0.0.1", "22.2.2.2"}


def test_import_refuses_to_unban_everything_on_an_empty_list(bl_state, bl_f2b, list_server):
    source = make_source(list_server, LIST_V1)
    run(bl_state, source, confirm=True)
    list_server.routes["/drop.txt"] = Route(b"# upstream broke\n", etag='"empty"')
    result = run(bl_state, source)
    assert result.status == ImportRun.Status.FAILED and "no usable entries" in result.errors
    assert len(banned(bl_f2b)) == 5


@pytest.mark.parametrize("status", [404, 500])
def test_import_failed_fetch_is_recorded_and_failing_after_n(bl_state, bl_f2b, list_server, status):
    source = make_source(list_server, LIST_V1)
    run(bl_state, source, confirm=True)
    list_server.routes["/drop.txt"] = Route(b"no", status=status)
    for _ in range(FAILING_AFTER):
        failed = run(bl_state, source)
        assert failed.status == ImportRun.Status.FAILED and failed.http_status == status
        assert f"HTTP {status}" in failed.errors
    source.refresh_from_db()
    assert source.consecutive_failures == FAILING_AFTER
    assert len(banned(bl_f2b)) == 5  # a failed fetch never unbans
    list_server.routes["/drop.txt"] = Route(LIST_V1.encode())
    assert run(bl_state, source).status == ImportRun.Status.UNCHANGED
    source.refresh_from_db()
    assert source.consecutive_failures == 0


def test_import_into_a_missing_jail_says_how_to_create_it(bl_state, bl_f2b, list_server):
    source = make_source(list_server, LIST_V1, jail="nosuchjail")
    result = run(bl_state, source, confirm=True)
    assert result.status == ImportRun.Status.FAILED
    assert "does not exist" in result.errors


def test_import_of_a_source_already_importing_is_refused(bl_state, bl_f2b, list_server):
    from django.utils import timezone

    source = make_source(list_server, LIST_V1)
    assert source_lock(source, owner="someone else", now=timezone.now())
    with pytest.raises(ImportBusy):
        run(bl_state, source, confirm=True)
    assert banned(bl_f2b) == set()


def test_import_history_shows_origin_blocklist_and_the_source(bl_state, bl_f2b, list_server):
    from jails.history.models import BanEvent
    from jails.history.services.sync import history_sync
    from tests.conftest import wait_until

    source = make_source(list_server, "31.3.3.3\n31.3.3.5\n")
    run(bl_state, source, confirm=True)
    ips_ban(bl_state, jail="blocklist", lines=["41.4.4.4"], actor=ACTOR)

    def synced():
        history_sync(bl_state)
        return BanEvent.objects.count() >= 3

    wait_until(synced, timeout=30)  # fail2ban writes its database in a background thread
    origins = {e.ip: (e.origin, e.banned_by) for e in BanEvent.objects.all()}
    assert origins["31.3.3.3"] == ("blocklist", "blocklist:drop")
    assert origins["31.3.3.5"] == ("blocklist", "blocklist:drop")
    assert origins["41.4.4.4"] == ("manual", "alice")


def test_import_failure_tells_the_notification_rules(bl_state, bl_f2b, list_server):
    from jails.notifications.signals import blocklist_import_failed

    heard = []

    def receiver(sender, *, blocklist, error, **kwargs):
        heard.append((blocklist, error))

    blocklist_import_failed.connect(receiver, dispatch_uid="test-blocklist-failed")
    try:
        source = make_source(list_server, LIST_V1, confirmed=True)
        list_server.routes["/drop.txt"] = Route(b"", status=404)
        run(bl_state, source)
        list_server.routes["/drop.txt"] = Route(LIST_V1.encode())
        run(bl_state, source)  # a good run says nothing
    finally:
        blocklist_import_failed.disconnect(dispatch_uid="test-blocklist-failed")
    assert heard == [("drop", "HTTP 404")]
