"""What pages keep between requests in one process (jails.page_cache) is never stale.

The host rows are kept under the hosts' stamp (jails.hosts.services.rows): a write made by
another process — here a second RuntimeState, as another gunicorn worker holds, or a write
straight into the database followed by the stamp — is seen by the next request. The status
bar's alerts are kept for at most its poll interval. The layout's URLs and labels are kept
per script prefix and language, so neither leaks into another request's page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.apps import apps
from django.db import connection
from django.test import Client
from django.test.utils import override_script_prefix
from django.urls import reverse
from django.utils import translation

from jails.hosts.models import LOCAL_HOST, Host
from jails.hosts.services.rows import hosts_changed, hosts_stamp
from jails.page_cache import PageCache
from jails.stamps import TOKEN_BYTES, stamp_bump, stamp_read
from jails.state import RuntimeState, build_runtime_state

pytestmark = pytest.mark.django_db

NAV = re.compile(r'<nav aria-label="[^"]*">(.*?)</nav>', re.S)


@pytest.fixture
def other_worker(runtime: RuntimeState) -> Iterator[RuntimeState]:
    """A second process's state: same settings and var dir, nothing of the first's cache."""
    other = build_runtime_state(runtime.settings)
    yield other
    other.jail_service.client.close()


def as_process(state: RuntimeState) -> None:
    """Make `state` the one runtime_state() returns, as in the process that owns it."""
    apps.get_app_config("jails").state = state


def hosts_shown(page: str) -> list[str]:
    """The host names of the jail list's hosts table (only a fleet page has one)."""
    table = re.search(r'<table class="data summary host-totals">(.*?)</table>', page, re.S)
    return re.findall(r'<a href="\?host=([^"]+)">', table.group(1)) if table else []


def test_a_host_added_by_another_process_shows_on_the_next_request(
    runtime: RuntimeState, other_worker: RuntimeState, f2b, administrator_client: Client
) -> None:
    page = administrator_client.get("/jails/").content.decode()
    assert hosts_shown(page) == []  # one host: no fleet table; the rows are now kept
    as_process(other_worker)
    Host.objects.create(name="web2", kind=Host.Kind.SOCKET, address="/nonexistent/f2b.sock")
    as_process(runtime)
    page = administrator_client.get("/jails/").content.decode()
    assert hosts_shown(page) == [LOCAL_HOST, "web2"]


def test_a_direct_database_write_shows_once_the_stamp_moves(
    runtime: RuntimeState, f2b, administrator_client: Client
) -> None:
    assert administrator_client.get("/jails/").status_code == 200
    table = Host._meta.db_table
    with connection.cursor() as cursor:  # no model, no signal: only the stamp can tell
        cursor.execute(f"UPDATE {table} SET enabled = %s WHERE name = %s", [False, LOCAL_HOST])
    # Kept: this process has not been told (the rows really are not read per request).
    assert administrator_client.get("/jails/").status_code == 200
    hosts_changed(runtime)  # what any writer does after writing
    assert administrator_client.get("/jails/").status_code == 404  # disabled local host


@pytest.mark.parametrize("how", ["save", "update", "delete"])
def test_every_orm_write_of_a_host_moves_the_stamp(
    runtime: RuntimeState, other_worker: RuntimeState, f2b, administrator_client: Client, how
) -> None:
    Host.objects.create(name="web3", kind=Host.Kind.SOCKET, address="/nonexistent/f2b.sock")
    assert "web3" in hosts_shown(administrator_client.get("/jails/").content.decode())
    as_process(other_worker)
    if how == "save":
        host = Host.objects.get(name="web3")
        host.enabled = False
        host.save()
    elif how == "update":  # QuerySet.update sends no post_save: HostQuerySet announces it
        Host.objects.filter(name="web3").update(enabled=False)
    else:
        Host.objects.filter(name="web3").delete()
    as_process(runtime)
    assert hosts_shown(administrator_client.get("/jails/").content.decode()) == []


def test_a_request_changing_its_host_copies_leaves_the_kept_rows_alone(
    runtime: RuntimeState, f2b, administrator_client: Client
) -> None:
    from jails.hosts.services.rows import hosts_enabled_rows

    first = hosts_enabled_rows(runtime)
    first[0].last_error = "changed by one request"
    again = hosts_enabled_rows(runtime)
    assert again[0] is not first[0] and again[0].last_error == ""


def test_the_status_bar_alert_shows_within_the_bar_poll_interval(
    runtime: RuntimeState, f2b, administrator_client: Client
) -> None:
    from jails.blocklists.models import BlocklistSource
    from jails.blocklists.selectors.sources import FAILING_AFTER

    bar_url = reverse("jails:status-bar")
    assert "blocklist failing" not in administrator_client.get(bar_url).content.decode()
    BlocklistSource.objects.create(
        name="feed", url="https://example.org/list.txt", consecutive_failures=FAILING_AFTER
    )
    # The alerts are kept for at most the poll interval: let exactly that much time pass
    # for them (the clock of the entries, not the test's), and the next poll shows it.
    poll = runtime.settings.poll_seconds
    for key, (read_at, value) in list(runtime.pages.timed.items()):
        runtime.pages.timed[key] = (read_at - poll, value)
    assert "blocklist failing: feed" in administrator_client.get(bar_url).content.decode()
    assert "blocklist failing: feed" in administrator_client.get("/jails/").content.decode()


def test_page_cache_recent_keeps_a_value_for_max_age_only() -> None:
    now = [100.0]
    cache = PageCache()
    built: list[int] = []

    def build() -> int:
        built.append(len(built))
        return built[-1]

    assert cache.recent("k", build, max_age=10, clock=lambda: now[0]) == 0
    now[0] = 109.9
    assert cache.recent("k", build, max_age=10, clock=lambda: now[0]) == 0
    now[0] = 110.0
    assert cache.recent("k", build, max_age=10, clock=lambda: now[0]) == 1
    now[0] = 50.0  # a clock that went back never keeps a value longer
    assert cache.recent("k", build, max_age=10, clock=lambda: now[0]) == 2


def test_stamps_change_on_every_bump_and_never_cache_on_an_unreadable_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "stamps" / "hosts"
    first = stamp_read(path)  # a missing file is made
    assert first is not None and len(first) == TOKEN_BYTES
    assert stamp_read(path) == first
    assert stamp_bump(path)
    assert stamp_read(path) not in (None, first)
    path.write_bytes(b"x")  # not one of ours
    assert stamp_read(path) is None
    assert stamp_read(None) is None  # no var dir: no stamp, nothing kept
    cache = PageCache()
    calls: list[int] = []
    for _ in range(2):
        cache.stamped("k", None, lambda: calls.append(1))
    assert len(calls) == 2


def test_stamp_is_under_the_var_dir(runtime: RuntimeState) -> None:
    path = hosts_stamp(runtime)
    assert path is not None and path.is_relative_to(runtime.settings.var_dir)


def test_layout_urls_follow_each_request_script_prefix(
    runtime: RuntimeState, f2b, administrator_client: Client, settings
) -> None:
    """The layout's URLs are kept per prefix: one request's never appear in another's page."""
    for prefix in ("/first", "/second", "/first"):
        settings.FORCE_SCRIPT_NAME = prefix
        settings.STATIC_URL = f"{prefix}/static/"
        with override_script_prefix(f"{prefix}/"):
            page = administrator_client.get("/jails/").content.decode()
        nav = NAV.search(page)
        assert nav is not None
        links = re.findall(r'href="([^"]+)"', nav.group(1))
        assert links and all(link.startswith(f"{prefix}/") for link in links), links
        assert f'<link rel="stylesheet" href="{prefix}/static/jails/app.' in page
        assert f'hx-get="{prefix}/status-bar/"' in page
        assert f'action="{prefix}/language/"' in page


def test_layout_labels_and_language_choice_follow_each_request_language(
    runtime: RuntimeState, f2b, administrator_client: Client
) -> None:
    for language in ("de", "en", "fr", "de"):
        page = administrator_client.get("/jails/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
        with translation.override(language):
            history = translation.gettext("History")
        nav = NAV.search(page)
        assert nav is not None and f">{history}</a>" in nav.group(1)
        selected = re.findall(r'<option value="([^"]+)" lang="[^"]+" selected>', page)
        assert selected == [language]


# The status bar's sentences as the template wrote them before they were built in Python.
STATUS_BAR_TEMPLATE = (
    "{% load i18n jailadmin %}"
    '<span class="pill ok">fail2ban {{ o.version }}</span>\n      '
    "<span>{% blocktranslate trimmed count counter=o.jail_count|count %}<strong>{{ counter }}"
    "</strong> jail{% plural %}<strong>{{ counter }}</strong> jails{% endblocktranslate %}"
    "</span>\n      "
    "<span>{% blocktranslate trimmed with banned=o.currently_banned|count %}<strong>"
    "{{ banned }}</strong> banned now{% endblocktranslate %}</span>\n      "
    "<span>{% blocktranslate trimmed count counter=o.total_failed|count %}<strong>{{ counter }}"
    "</strong> failure{% plural %}<strong>{{ counter }}</strong> failures{% endblocktranslate %}"
    "</span>\n      "
    "<span>{% blocktranslate trimmed count counter=o.total_banned|count %}<strong>{{ counter }}"
    "</strong> ban since start{% plural %}<strong>{{ counter }}</strong> bans since start"
    "{% endblocktranslate %}</span>"
)


def test_status_bar_counts_print_what_the_template_printed(runtime: RuntimeState) -> None:
    """Same msgids, plural forms, grouping and escaping in every language, for the values
    of each call (the kept text is per language and values, never reused for others)."""
    from django.conf import settings
    from django.template import engines

    from jails.services.jails import JailSummary, Overview
    from jails.templatetags.site_nav import status_bar_counts

    template = engines["django"].from_string(STATUS_BAR_TEMPLATE)

    def overview(jails: int, banned: int, failed: int, bans: int) -> Overview:
        rows = [JailSummary(f"j{n}", (), None, 0, 0, 0, 0, None) for n in range(jails - 1)]
        rows.append(JailSummary("last", (), None, 0, failed, banned, bans, None))
        return Overview(version='1.0.2<b>"', jails=tuple(rows))

    cases = [(1, 1, 1, 1), (2, 3, 5, 21), (5, 1234, 22, 12345678), (1, 0, 0, 0)]
    for language, _name in settings.LANGUAGES:
        with translation.override(language):
            for values in cases:
                shown = overview(*values)
                assert status_bar_counts(shown) == template.render({"o": shown}), (
                    language,
                    values,
                )


def test_status_bar_counts_keep_one_entry_per_language_whatever_the_counters(
    runtime: RuntimeState,
) -> None:
    """A busy host's counters change on every poll: the layout's kept texts (navigation URLs
    and labels) must not grow with them, nor be emptied by them."""
    from jails.services.jails import JailSummary, Overview
    from jails.templatetags.site_nav import status_bar_counts, url_cached

    pages = runtime.pages
    pages.max_texts = 8
    with translation.override("en"):
        url_cached("jails:jail-list")
        kept = dict(pages.texts)
        for failed in range(50):
            row = JailSummary("sshd", (), None, 0, failed, 1, 2, None)
            shown = status_bar_counts(Overview(version="1.0.2", jails=(row,)))
            assert f"<strong>{failed}</strong> failure" in shown
    assert pages.texts == kept
    assert [key for key in pages.stamps if key[0] == "status-bar-counts"] == [
        ("status-bar-counts", "en")
    ]
