"""The /blocklists/ pages: GET, POST with CSRF, roles (a viewer cannot import), the admin,
the status bar's failing notice; fail2ban's real state after an import from the page."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from jails.blocklists.models import BlocklistSource, ImportRun
from jails.blocklists.services.imports import FAILING_AFTER
from jails.models import AuditEntry, SiteSettings
from tests.blocklists.conftest import Route, banned

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.fail2ban]

LIST = "# list\n61.1.1.1\n61.1.1.9\nnot-an-ip\n"


@pytest.fixture(autouse=True)
def _set_up(bl_state, bl_f2b):
    SiteSettings.objects.update_or_create(
        singleton=1,
        defaults={"setup_complete": True, "fail2ban_socket": str(bl_f2b.socket_path)},
    )


def source_for(list_server, **fields) -> BlocklistSource:
    list_server.routes["/l.txt"] = Route(LIST.encode(), etag='"1"')
    defaults = {"name": "feed", "url": list_server.url("/l.txt"), "allow_private": True}
    return BlocklistSource.objects.create(**{**defaults, **fields})


def test_pages_list_shows_sources_and_how_to_create_a_missing_jail(role_client, list_server):
    source_for(list_server, jail="nosuchjail")
    page = role_client("viewer").get(reverse("jails:blocklists:list"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "feed" in html and "preview first" in html
    assert "Create the <code>nosuchjail</code> jail" in html
    assert "Create the <code>blocklist</code> jail" not in html  # it exists here
    assert "Add a source" not in html  # viewers do not add sources


def test_pages_nav_links_to_blocklists(role_client):
    page = role_client("viewer").get(reverse("jails:blocklists:list"))
    assert f'href="{reverse("jails:blocklists:list")}" aria-current="page"' in page.content.decode()


def test_pages_administrator_adds_a_url_source_with_csrf(role_client, list_server):
    client = role_client("administrator", csrf=True)
    url = reverse("jails:blocklists:add")
    data = {
        "name": "drop",
        "url": list_server.url("/l.txt"),
        "jail": "blocklist",
        "schedule": "daily",
        "enabled": "on",
    }
    assert client.post(url, data).status_code == 403  # no CSRF token
    page = client.get(reverse("jails:blocklists:list"))
    data["csrfmiddlewaretoken"] = page.context["csrf_token"]
    response = client.post(url, data)
    assert response.status_code == 302
    source = BlocklistSource.objects.get(name="drop")
    assert not source.confirmed and source.url.endswith("/l.txt")
    assert AuditEntry.objects.filter(action="blocklist_add", actor="administrator-user").exists()


def test_pages_add_an_uploaded_file_and_refuse_bad_forms(role_client):
    client = role_client("administrator")
    url = reverse("jails:blocklists:add")
    upload = SimpleUploadedFile("mine.txt", b"62.2.2.2\n")
    response = client.post(
        url, {"name": "mine", "upload": upload, "jail": "blocklist", "schedule": "manual"}
    )
    assert response.status_code == 302
    assert BlocklistSource.objects.get(name="mine").content == "62.2.2.2\n"
    both_missing = client.post(url, {"name": "x", "jail": "blocklist", "schedule": "manual"})
    assert (
        both_missing.status_code == 400
        and "either a URL or a file" in both_missing.content.decode()
    )
    bad = client.post(
        url, {"name": "y", "url": "ftp://example.org/l", "jail": "bad jail!", "schedule": "daily"}
    )
    assert bad.status_code == 400 and not BlocklistSource.objects.filter(name="y").exists()


def test_pages_operator_cannot_add_and_viewer_cannot_preview_or_import(
    role_client, list_server, bl_f2b
):
    source = source_for(list_server)
    operator = role_client("operator")
    assert operator.post(reverse("jails:blocklists:add"), {"name": "z"}).status_code == 403
    viewer = role_client("viewer", username="v2")
    for name in ("preview", "import", "delete"):
        assert (
            viewer.post(reverse(f"jails:blocklists:{name}", args=[source.name])).status_code == 403
        )
    assert operator.post(reverse("jails:blocklists:delete", args=[source.name])).status_code == 403
    assert not ImportRun.objects.exists() and banned(bl_f2b) == set()


def test_pages_preview_then_confirmed_import_bans_in_fail2ban(role_client, list_server, bl_f2b):
    source = source_for(list_server)
    client = role_client("operator")
    detail = reverse("jails:blocklists:detail", args=[source.name])
    # Without confirmation, the first import is refused.
    response = client.post(reverse("jails:blocklists:import", args=[source.name]))
    assert response.status_code == 302 and banned(bl_f2b) == set()
    preview = client.post(reverse("jails:blocklists:preview", args=[source.name]))
    html = preview.content.decode()
    assert preview.status_code == 200
    assert '<strong id="preview-to-ban">2</strong>' in html and "not-an-ip" in html
    assert banned(bl_f2b) == set()
    response = client.post(
        reverse("jails:blocklists:import", args=[source.name]), {"confirm": "yes"}
    )
    assert response.status_code == 302 and response["Location"] == detail
    assert banned(bl_f2b) == {"61.1.1.1", "61.1.1.9"}
    page = client.get(detail).content.decode()
    assert "imported" in page and "not-an-ip" in page
    run = ImportRun.objects.get()
    assert (run.banned, run.invalid, run.actor, run.trigger) == (2, 1, "operator-user", "web")


def test_pages_failing_source_shows_on_the_list_and_in_the_status_bar(role_client, list_server):
    source_for(list_server, consecutive_failures=FAILING_AFTER, confirmed=True)
    client = role_client("viewer")
    assert "failing" in client.get(reverse("jails:blocklists:list")).content.decode()
    bar = client.get(reverse("jails:status-bar")).content.decode()
    assert "blocklist failing: feed" in bar


def test_pages_delete_unbans_what_the_source_alone_banned(role_client, list_server, bl_f2b):
    source = source_for(list_server)
    client = role_client("administrator")
    client.post(reverse("jails:blocklists:import", args=[source.name]), {"confirm": "yes"})
    assert len(banned(bl_f2b)) == 2
    response = client.post(reverse("jails:blocklists:delete", args=[source.name]))
    assert response.status_code == 302
    assert banned(bl_f2b) == set() and not BlocklistSource.objects.exists()
    assert AuditEntry.objects.filter(action="blocklist_delete").get().parameters["unbanned"] == 2


def test_admin_lists_sources_and_runs_and_imports(role_client, list_server, bl_f2b):
    source = source_for(list_server, confirmed=True)
    admin = role_client("administrator", staff=True)
    assert admin.get(reverse("admin:blocklists_blocklistsource_changelist")).status_code == 200
    response = admin.post(
        reverse("admin:blocklists_blocklistsource_changelist"),
        {"action": "import_now", "_selected_action": [source.pk]},
    )
    assert response.status_code == 302
    assert banned(bl_f2b) == {"61.1.1.1", "61.1.1.9"}
    runs = admin.get(reverse("admin:blocklists_importrun_changelist"))
    assert runs.status_code == 200 and "feed" in runs.content.decode()
    viewer = role_client("viewer", username="staffviewer", staff=True)
    assert viewer.get(reverse("admin:blocklists_blocklistsource_changelist")).status_code == 200
    assert viewer.get(reverse("admin:blocklists_blocklistsource_add")).status_code == 403


def test_admin_change_of_url_asks_for_a_new_preview(role_client, list_server):
    source = source_for(list_server, confirmed=True, etag='"1"')
    admin = role_client("administrator", staff=True)
    url = reverse("admin:blocklists_blocklistsource_change", args=[source.pk])
    data = {
        "name": "feed",
        "url": list_server.url("/other.txt"),
        "jail": "blocklist",
        "schedule": "daily",
        "enabled": "on",
        "allow_private": "on",
    }
    assert admin.post(url, data).status_code == 302
    source.refresh_from_db()
    assert source.url.endswith("/other.txt") and not source.confirmed and source.etag == ""
    assert AuditEntry.objects.filter(action="admin_change").exists()
