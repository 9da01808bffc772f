"""A dead host costs little (issue 12, item 3): once a host failed or missed the per-host
deadline, this process does not ask it again for JAILADMIN_HOST_RETRY seconds. Pages show it
unreachable at once (last error, next try), the call that missed the deadline is the only
one left waiting on it, and after the cool-down the host is asked again — and shown up at
once if it answers.

Real private fail2ban servers play the healthy hosts (web_hosts: local, web1, web2); a fake
server that never answers plays the hung one: its connection count says whether it was
asked at all (no assertion here is on wall-clock time).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext, ngettext

from jails.hosts.models import LOCAL_HOST, Host
from jails.hosts.services import fleet
from jails.services import jails as jail_service
from jails.state import RuntimeState
from tests.conftest import runtime_install
from tests.support.fakeserver import FakeFail2ban, hang, reply_value

pytestmark = pytest.mark.django_db

# Generous for a loaded 1-core box: only ever waited for when something is broken.
PATIENCE = 60.0


def wait_for(predicate: Callable[[], bool], *, what: str) -> None:
    """Poll `predicate` until it holds (a fake server's accept loop is its own thread)."""
    end = time.monotonic() + PATIENCE
    while not predicate():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.05)


def ping(state: RuntimeState) -> object:
    return state.jail_service.client.send("ping")


def test_a_hung_host_is_not_asked_again_within_the_cool_down(web_hosts, f2b, logged_in_client):
    # A long link timeout: the call that missed the deadline stays on the hung host.
    runtime_install(f2b, agent=None, host_deadline=1.0, fail2ban_timeout=60.0, host_retry=600.0)
    url = reverse("jails:jail-list")
    with FakeFail2ban(hang()) as hung:
        Host.objects.create(name="stuck", kind=Host.Kind.SOCKET, address=hung.path)
        first = logged_in_client.get(url).content.decode()
        assert "no answer within 1 s" in first
        wait_for(lambda: hung.connections >= 1, what="the first request's connection")
        asked = hung.connections

        second = logged_in_client.get(url).content.decode()
        # Shown unreachable at once, with its last error and when it is tried next...
        assert re.search(r"<strong>stuck</strong> unreachable since <time", second)
        assert "last error: no answer within 1 s; next try once its earlier request ends" in second
        # ...without being asked: no new connection reached it. The others answered.
        assert hung.connections == asked
        assert "<strong>3</strong> of 4 hosts up" in second
        assert reverse("jails:host-jail-detail", args=["web2", "sshd"]) in second
        # /ip/ skips it the same way.
        page = logged_in_client.get(reverse("jails:ip-detail", args=["203.0.113.5"]))
        assert "last error: no answer within 1 s" in page.content.decode()
        assert hung.connections == asked
    row = Host.objects.get(name="stuck")
    assert row.unreachable_since is not None
    assert row.last_error == "no answer within 1 s"  # the real error, not the "not asked" note


def test_after_the_cool_down_the_host_is_asked_again_and_shown_up_when_it_answers(web_hosts, f2b):
    # The first connection hangs until the link gives up (2 s); every later one answers.
    state = runtime_install(
        f2b, agent=None, host_deadline=1.0, fail2ban_timeout=2.0, host_retry=1.0
    )
    with FakeFail2ban([hang(), reply_value(0, "pong")]) as flaky:
        Host.objects.create(name="flaky", kind=Host.Kind.SOCKET, address=flaky.path)

        def ask() -> dict[str, fleet.HostOutcome[object]]:
            outcomes = fleet.fleet_map(fleet.scopes_list(state), ping, deadline=1.0)
            return {outcome.name: outcome for outcome in outcomes}

        first = ask()["flaky"]
        assert first.timed_out and not first.skipped
        assert ask()["web1"].ok and ask()[LOCAL_HOST].ok  # the others are asked every time
        wait_for(lambda: flaky.connections >= 1, what="the first connection")
        assert flaky.connections == 1  # the three asks after the first did not reach it
        assert ask()["flaky"].skipped

        # The hung call ends (the link's timeout): the breaker keeps the host out for the
        # cool-down, with that failure as its last error, then lets the next caller ask.
        retried = ask()["flaky"]
        while retried.skipped:
            assert "last error:" in retried.error and flaky.connections == 1
            time.sleep(0.1)
            retried = ask()["flaky"]
        assert retried.ok and retried.value == "pong"
        assert flaky.connections == 2
    row = Host.objects.get(name="flaky")
    assert row.unreachable_since is None and row.last_error == ""


def test_a_host_that_refuses_is_skipped_and_a_changed_row_is_asked_at_once(web_hosts, f2b) -> None:
    state = runtime_install(f2b, agent=None, host_retry=600.0)
    host = Host.objects.create(
        name="gone", kind=Host.Kind.SOCKET, address="/tmp/jailadmin-breaker-none.sock"
    )
    (first,) = fleet.fleet_map(fleet.scopes_list(state, names=["gone"]), ping, deadline=5.0)
    assert not first.ok and not first.skipped and "breaker-none.sock" in first.error
    (second,) = fleet.fleet_map(fleet.scopes_list(state, names=["gone"]), ping, deadline=5.0)
    assert second.skipped
    assert second.error.startswith("last error: fail2ban is not reachable")
    assert re.search(r"; next try in \d+ s$", second.error)
    # An explicit check (the hosts page, the notification rules) asks it anyway.
    (checked,) = fleet.fleet_map(
        fleet.scopes_list(state, names=["gone"]), ping, deadline=5.0, retry_now=True
    )
    assert not checked.ok and not checked.skipped
    # An administrator fixes the address: the new link owes nothing to the old failure.
    Host.objects.filter(pk=host.pk).update(address=str(web_hosts["web1"].socket_path))
    (fixed,) = fleet.fleet_map(fleet.scopes_list(state, names=["gone"]), ping, deadline=5.0)
    assert fixed.ok and fixed.value == "pong"
    assert Host.objects.get(pk=host.pk).unreachable_since is None


def test_a_refusal_is_an_answer_and_keeps_the_host_up(web_hosts, f2b) -> None:
    state = runtime_install(f2b, agent=None, host_retry=600.0)

    def status_of_postfix(scoped: RuntimeState) -> object:
        return jail_service.jail_require(scoped, name="postfix")

    outcomes = fleet.fleet_map(fleet.scopes_list(state), status_of_postfix, deadline=5.0)
    assert {o.name: o.ok for o in outcomes} == {LOCAL_HOST: True, "web1": False, "web2": False}
    # web1 answered "no such jail": it is asked again at once, not skipped.
    again = fleet.fleet_map(fleet.scopes_list(state, names=["web1"]), ping, deadline=5.0)
    assert again[0].ok and not again[0].skipped


def test_no_cool_down_asks_every_time(web_hosts, f2b) -> None:
    state = runtime_install(f2b, agent=None, host_retry=0.0)
    Host.objects.create(name="gone", kind=Host.Kind.SOCKET, address="/tmp/jailadmin-b0.sock")
    for _ in range(2):
        (outcome,) = fleet.fleet_map(fleet.scopes_list(state, names=["gone"]), ping, deadline=5.0)
        assert not outcome.ok and not outcome.skipped


def test_the_sites_own_fail2ban_is_always_asked(f2b) -> None:
    """The local host has no breaker: a failure there is quick to find again, and a
    single-host site (the metrics' sampler, the status bar) shows a recovery at once."""
    state = runtime_install(
        f2b, agent=None, host_retry=600.0, fail2ban_socket="/tmp/jailadmin-breaker-local.sock"
    )
    for _ in range(2):
        (outcome,) = fleet.fleet_map(
            fleet.scopes_list(state, names=[LOCAL_HOST]), ping, deadline=5.0
        )
        assert not outcome.ok and not outcome.skipped
        assert "breaker-local.sock" in outcome.error
    state = runtime_install(f2b, agent=None, host_retry=600.0)
    (outcome,) = fleet.fleet_map(fleet.scopes_list(state, names=[LOCAL_HOST]), ping, deadline=5.0)
    assert outcome.ok and outcome.value == "pong"


def test_the_pages_error_text_is_the_records_english_error_in_the_pages_language(
    web_hosts, f2b
) -> None:
    """`error` stays English (it goes into the host's row, audit records and --json);
    `error_text` is what a page shows: the same sentence through the catalogue, with the
    host's own error (fail2ban's or the transport's) passed through inside it."""
    state = runtime_install(
        f2b, agent=None, host_deadline=1.0, fail2ban_timeout=60.0, host_retry=600.0
    )
    with FakeFail2ban(hang()) as hung:
        Host.objects.create(name="stuck", kind=Host.Kind.SOCKET, address=hung.path)
        Host.objects.create(
            name="gone", kind=Host.Kind.SOCKET, address="/tmp/jailadmin-breaker-text.sock"
        )

        def ask() -> dict[str, fleet.HostOutcome[object]]:
            scopes = fleet.scopes_list(state, names=["stuck", "gone"])
            return {
                outcome.name: outcome for outcome in fleet.fleet_map(scopes, ping, deadline=1.0)
            }

        with translation.override("de"):
            first = ask()
            second = ask()
        missed, failed = first["stuck"], first["gone"]
        busy, cooling = second["stuck"], second["gone"]
        assert missed.timed_out and missed.error == "no answer within 1 s"
        assert busy.skipped and busy.error == (
            "last error: no answer within 1 s; next try once its earlier request ends"
        )
        assert cooling.skipped and cooling.retry_in is not None
        assert cooling.error == (f"last error: {failed.error}; next try in {cooling.retry_in} s")
        with translation.override("de"):
            assert missed.error_text == gettext("no answer within %(seconds)s s") % {"seconds": "1"}
            assert busy.error_text == gettext(
                "last error: %(error)s; next try once its earlier request ends"
            ) % {"error": "no answer within 1 s"}
            assert cooling.error_text == ngettext(
                "last error: %(error)s; next try in %(seconds)d s",
                "last error: %(error)s; next try in %(seconds)d s",
                cooling.retry_in,
            ) % {"error": failed.error, "seconds": cooling.retry_in}
            assert failed.error_text == failed.error  # the transport's own words
        # In English a page says exactly what the row and the records say.
        with translation.override("en"):
            for outcome in (missed, failed, busy, cooling):
                assert outcome.error_text == outcome.error
    assert Host.objects.get(name="stuck").last_error == "no answer within 1 s"
