"""/metrics in-process: who may scrape, and that the values are fail2ban's and the site's own."""

from __future__ import annotations

import pytest
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jails.history.models import BanEvent, HistorySource
from jails.history.services import sync as history
from jails.jobs import job_acquire, job_release
from jails.metrics.middleware import RequestMetricsMiddleware
from jails.metrics.services.fail2ban import CACHE_KEY
from tests.conftest import FAIL2BAN_VERSION, point_state_at, wait_until
from tests.metrics.helpers import TOKEN, samples, summed, value

pytestmark = [pytest.mark.django_db, pytest.mark.fail2ban]

JAILS = ("sshd", "nginx-http-auth", "postfix")


@pytest.fixture
def token_on(settings):
    settings.JAILADMIN_METRICS_TOKEN = TOKEN
    settings.JAILADMIN_METRICS_ALLOWED = []
    return settings


def scrape(client: Client, *, token: str | None = TOKEN, **extra):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.get(reverse("jails:metrics:scrape"), headers=headers, **extra)


def status_counters(f2b, jail: str) -> dict[str, int]:
    """What `status <jail>` says, straight from fail2ban's socket."""
    reply = dict(f2b.client().send("status", jail))
    filt, actions = dict(reply["Filter"]), dict(reply["Actions"])
    return {
        "currently_failed": int(filt["Currently failed"]),
        "total_failed": int(filt["Total failed"]),
        "currently_banned": int(actions["Currently banned"]),
        "total_banned": int(actions["Total banned"]),
    }


# --- Who may scrape -------------------------------------------------------------------------------
def test_metrics_off_is_404_when_neither_token_nor_addresses(settings, client):
    settings.JAILADMIN_METRICS_TOKEN = ""
    settings.JAILADMIN_METRICS_ALLOWED = []
    assert scrape(client).status_code == 404
    assert scrape(client, token=None).status_code == 404


def test_metrics_refused_without_token(token_on, runtime, client):
    response = scrape(client, token=None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"jailadmin_" not in response.content


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer ",
        "Bearer \u00e9\u00e9\u00e9",
    ],
)
def test_metrics_refused_with_wrong_token(token_on, runtime, client, authorization):
    response = client.get(reverse("jails:metrics:scrape"), headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.content == b"unauthorized\n"


def test_metrics_with_right_token_is_prometheus_text(token_on, runtime, client):
    response = scrape(client)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    assert value(samples(response.content), "jailadmin_fail2ban_up", host="local") == 1


def test_metrics_needs_no_login_and_no_setup_redirect(token_on, runtime, client):
    # Anonymous client: the token is the only credential.
    assert scrape(client).status_code == 200
    # Before the first-run setup every page redirects to the wizard; a scraper is not sent.
    runtime.setup_pending = True
    assert client.get(reverse("jails:jail-list")).status_code == 302
    assert scrape(client).status_code == 200


def test_metrics_refused_from_a_disallowed_address(settings, runtime, client):
    settings.JAILADMIN_METRICS_TOKEN = ""
    settings.JAILADMIN_METRICS_ALLOWED = ["192.0.2.0/24", "2001:db8::1"]
    assert scrape(client, token=None, REMOTE_ADDR="198.51.100.7").status_code == 403
    assert scrape(client, token=None, REMOTE_ADDR="2001:db8::2").status_code == 403
    assert scrape(client, token=None, REMOTE_ADDR="192.0.2.77").status_code == 200
    assert scrape(client, token=None, REMOTE_ADDR="2001:db8::1").status_code == 200
    assert scrape(client, token=None, REMOTE_ADDR="::ffff:192.0.2.5").status_code == 200


def test_metrics_address_is_the_client_behind_a_trusted_proxy(settings, runtime, client):
    settings.JAILADMIN_METRICS_TOKEN = ""
    settings.JAILADMIN_METRICS_ALLOWED = ["192.0.2.10"]
    settings.JAILADMIN_TRUSTED_PROXIES = ["127.0.0.1"]
    via_proxy = {"REMOTE_ADDR": "127.0.0.1"}
    assert (
        scrape(client, token=None, HTTP_X_FORWARDED_FOR="192.0.2.10", **via_proxy).status_code
        == 200
    )
    # The proxy's own address is not the client: a scrape relayed for someone else is refused.
    assert (
        scrape(client, token=None, HTTP_X_FORWARDED_FOR="198.51.100.1", **via_proxy).status_code
        == 403
    )
    # A forged header from an untrusted peer changes nothing.
    assert (
        scrape(
            client, token=None, HTTP_X_FORWARDED_FOR="192.0.2.10", REMOTE_ADDR="198.51.100.1"
        ).status_code
        == 403
    )


def test_metrics_with_token_and_addresses_needs_both(settings, runtime, client):
    settings.JAILADMIN_METRICS_TOKEN = TOKEN
    settings.JAILADMIN_METRICS_ALLOWED = ["192.0.2.0/24"]
    assert scrape(client, REMOTE_ADDR="198.51.100.7").status_code == 403
    assert scrape(client, token=None, REMOTE_ADDR="192.0.2.7").status_code == 401
    assert (
        scrape(client, token="wrong-token-wrong-token", REMOTE_ADDR="192.0.2.7").status_code == 401
    )
    assert scrape(client, REMOTE_ADDR="192.0.2.7").status_code == 200


def test_metrics_refuses_other_methods(token_on, runtime, client):
    response = client.post(
        reverse("jails:metrics:scrape"), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code in (403, 405)  # CSRF refuses a POST first, or the view does


def test_metrics_token_too_short_fails_loudly():
    import subprocess
    import sys

    from django.conf import settings

    env = {
        "JAILADMIN_SECRET_KEY": "x" * 50,
        "JAILADMIN_VAR_DIR": str(settings.VAR_DIR),
        "JAILADMIN_METRICS_TOKEN": "short",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import jailadmin.settings"],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(settings.BASE_DIR),
    )
    assert result.returncode != 0
    assert "JAILADMIN_METRICS_TOKEN must be at least 16 characters" in result.stderr


# --- fail2ban's values ----------------------------------------------------------------------------
# Directly and through the host agent: the same overview service either way.
@pytest.mark.parametrize("runtime", ["direct", "agent"], indirect=True)
def test_metrics_equal_fail2bans_real_counters(token_on, runtime, f2b, client):
    # The session's server keeps its totals across tests (a reset unbans, it does not restart).
    sshd_total_before = status_counters(f2b, "sshd")["total_banned"]
    postfix_failed_before = status_counters(f2b, "postfix")["total_failed"]
    f2b.client().send("set", "sshd", "banip", "203.0.113.5", "2001:db8::5", "198.51.100.9")
    f2b.client().send("set", "postfix", "banip", "203.0.113.6")
    f2b.client().send("set", "sshd", "unbanip", "198.51.100.9")  # total stays, current drops
    # One failure (below maxretry): currently failed and total failed move, no ban.
    f2b.append_failures("postfix", ["192.0.2.44"], count=1)
    wait_until(lambda: status_counters(f2b, "postfix")["total_failed"] == postfix_failed_before + 1)

    found = samples(scrape(client).content)

    for jail in JAILS:
        real = status_counters(f2b, jail)
        key = {"host": "local", "jail": jail}
        assert value(found, "jailadmin_jail_currently_banned", **key) == real["currently_banned"]
        assert value(found, "jailadmin_jail_banned_total", **key) == real["total_banned"]
        assert value(found, "jailadmin_jail_currently_failed", **key) == real["currently_failed"]
        assert value(found, "jailadmin_jail_failed_total", **key) == real["total_failed"]
    assert value(found, "jailadmin_jail_currently_banned", host="local", jail="sshd") == 2
    assert (
        value(found, "jailadmin_jail_banned_total", host="local", jail="sshd")
        == sshd_total_before + 3
    )
    assert value(found, "jailadmin_jail_currently_failed", host="local", jail="postfix") >= 1
    assert value(found, "jailadmin_fail2ban_jails", host="local") == len(JAILS)
    assert value(found, "jailadmin_fail2ban_up", host="local") == 1
    assert value(found, "jailadmin_fail2ban_info", host="local", version=FAIL2BAN_VERSION) == 1


def test_metrics_fail2ban_down_is_up_zero_and_no_jails(token_on, runtime, client):
    point_state_at("/nonexistent/jailadmin-metrics.sock", timeout=0.5)
    response = scrape(client)
    assert response.status_code == 200  # the scrape itself works: it reports fail2ban down
    found = samples(response.content)
    assert value(found, "jailadmin_fail2ban_up", host="local") == 0
    assert not [name for name, _ in found if name.startswith("jailadmin_jail_")]
    assert summed(found, "jailadmin_fail2ban_info") == 0


def test_metrics_fail2ban_counters_are_shared_until_they_expire(token_on, runtime, f2b, client):
    from jails.metrics.services.fail2ban import fail2ban_samples_get

    first = samples(scrape(client).content)
    assert value(first, "jailadmin_jail_currently_banned", host="local", jail="sshd") == 0
    f2b.client().send("set", "sshd", "banip", "203.0.113.50")
    # Within JAILADMIN_METRICS_CACHE_SECONDS every scrape reads the round already made.
    cached = samples(scrape(client).content)
    assert value(cached, "jailadmin_jail_currently_banned", host="local", jail="sshd") == 0
    assert value(cached, "jailadmin_fail2ban_sample_age_seconds", host="local") >= 0
    # Once the shared entry is gone (expired), the next scrape makes a new round.
    runtime.session_cache.backend.delete(CACHE_KEY)
    fresh = samples(scrape(client).content)
    assert value(fresh, "jailadmin_jail_currently_banned", host="local", jail="sshd") == 1
    [sample] = fail2ban_samples_get(runtime, max_age=5)  # the service alone, same answer
    assert sample.host == "local" and sample.jails


# --- The site's own values ------------------------------------------------------------------------
def test_metrics_archived_bans_equal_the_archive(token_on, runtime, f2b, client):
    f2b.client().send("set", "sshd", "banip", "203.0.113.21", "203.0.113.22")
    f2b.client().send("set", "postfix", "banip", "203.0.113.23")
    history.history_sync(runtime)
    assert BanEvent.objects.count() >= 3

    found = samples(scrape(client).content)

    expected: dict[tuple[str, str], int] = {}
    for jail, origin in BanEvent.objects.values_list("jail", "origin"):
        expected[(jail, origin)] = expected.get((jail, origin), 0) + 1
    exposed = {
        (dict(labels)["jail"], dict(labels)["origin"]): v
        for (name, labels), v in found.items()
        if name == "jailadmin_archived_bans"
    }
    assert exposed == expected
    synced_at = HistorySource.objects.get().synced_at
    assert value(found, "jailadmin_history_sync_last_success_timestamp_seconds") == pytest.approx(
        synced_at.timestamp()
    )
    assert value(found, "jailadmin_history_sync_lag_seconds") >= 0


def test_metrics_without_a_sync_have_no_sync_timestamp(token_on, runtime, client):
    found = samples(scrape(client).content)
    assert value(found, "jailadmin_history_sync_last_success_timestamp_seconds") is None
    assert summed(found, "jailadmin_archived_bans") == 0


def test_metrics_job_runs_and_last_outcome(token_on, runtime, client):
    now = timezone.now()
    for name, ok, times in (("metrics-good", True, 2), ("metrics-bad", False, 1)):
        # job_acquire/job_release are what the runner (jails.jobs.JobRunner) records with.
        for _ in range(times):
            assert job_acquire(
                name=name, owner="t", now=now, lease=timezone.timedelta(minutes=1), when_due=False
            )
            job_release(name=name, owner="t", now=now, ok=ok, message="x", next_run_at=None)
    job_acquire(name="metrics-never", owner="t", now=now, lease=timezone.timedelta(minutes=1))

    found = samples(scrape(client).content)

    assert value(found, "jailadmin_job_runs_total", job="metrics-good") == 2
    assert value(found, "jailadmin_job_runs_total", job="metrics-bad") == 1
    assert value(found, "jailadmin_job_runs_total", job="metrics-never") == 0
    assert value(found, "jailadmin_job_failures_total", job="metrics-good") == 0
    assert value(found, "jailadmin_job_failures_total", job="metrics-bad") == 1
    assert value(found, "jailadmin_job_last_run_ok", job="metrics-good") == 1
    assert value(found, "jailadmin_job_last_run_ok", job="metrics-bad") == 0
    assert value(found, "jailadmin_job_last_run_ok", job="metrics-never") is None
    assert value(
        found, "jailadmin_job_last_finished_timestamp_seconds", job="metrics-bad"
    ) == pytest.approx(now.timestamp())


# The runner closes the database connection around each job: on PostgreSQL that would end
# the test's own transaction, so this test commits for real.
@pytest.mark.django_db(transaction=True)
def test_metrics_count_the_failures_the_job_runner_records(token_on, runtime, client):
    from datetime import timedelta

    from jails.jobs import JobRunner, JobSpec

    def broken(ctx) -> str:
        raise RuntimeError("this job always fails")

    moments = iter(timezone.now() + timedelta(hours=h) for h in range(0, 100, 2))
    current = [next(moments)]
    runner = JobRunner(
        [
            JobSpec("metrics-broken", timedelta(minutes=1), broken),
            JobSpec("metrics-fine", timedelta(minutes=1), lambda ctx: "done"),
        ],
        state_getter=lambda: runtime,
        clock=lambda: current[0],
    )
    for _ in range(3):
        assert len(runner.run_due()) == 2
        current[0] = next(moments)  # past every retry and interval

    found = samples(scrape(client).content)

    assert value(found, "jailadmin_job_runs_total", job="metrics-broken") == 3
    assert value(found, "jailadmin_job_failures_total", job="metrics-broken") == 3
    assert value(found, "jailadmin_job_runs_total", job="metrics-fine") == 3
    assert value(found, "jailadmin_job_failures_total", job="metrics-fine") == 0
    assert value(found, "jailadmin_job_last_run_ok", job="metrics-broken") == 0


# --- Requests -------------------------------------------------------------------------------------
def test_request_metrics_count_by_view_name(token_on, runtime, client):
    # A label no other test produces (the value files are shared by the xdist workers).
    key = {"view": "jails:healthz", "method": "OPTIONS", "status": "405"}
    before = value(samples(scrape(client).content), "jailadmin_http_requests_total", **key) or 0
    for _ in range(3):
        assert client.options(reverse("jails:healthz")).status_code == 405
    after = samples(scrape(client).content)
    assert value(after, "jailadmin_http_requests_total", **key) == before + 3
    assert summed(after, "jailadmin_http_request_duration_seconds_count", view="jails:healthz") >= 3


def test_request_metrics_label_unmatched_paths_and_odd_methods_once(token_on, runtime, client):
    before = samples(scrape(client).content)
    unresolved = {"view": "unresolved", "method": "other"}
    start = summed(before, "jailadmin_http_requests_total", **unresolved)
    client.generic("PROPFIND", "/no/such/path/4b1d2c/")
    client.generic("BREW", "/another/random/path/")
    after = samples(scrape(client).content)
    assert summed(after, "jailadmin_http_requests_total", **unresolved) == start + 2
    # Never the raw path or method as a label value.
    assert not [labels for (_, labels) in after if ("method", "BREW") in labels]
    assert not [labels for (_, labels) in after if any("4b1d2c" in v for _, v in labels)]


def test_request_metrics_name_the_view_a_middleware_answered_for(settings, token_on, runtime):
    from django.test import RequestFactory

    from jails.metrics.middleware import view_name

    request = RequestFactory().get("/jails/sshd/")
    assert view_name(request) == "jails:jail-detail"  # resolved by the middleware itself
    assert view_name(RequestFactory().get("/static/jails/app.css")) == "unresolved"


def test_request_metrics_middleware_unused_while_metrics_are_off(settings):
    settings.JAILADMIN_METRICS_TOKEN = ""
    settings.JAILADMIN_METRICS_ALLOWED = []
    with pytest.raises(MiddlewareNotUsed):
        RequestMetricsMiddleware(lambda request: HttpResponse())
