"""`manage.py blocklists_import` and `manage.py blocklists list`, with --json, against a real
private fail2ban; permissions like `manage.py jails --as`."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jails.blocklists.models import BlocklistSource, ImportRun
from jails.models import AuditEntry, SiteSettings
from tests.blocklists.conftest import Route, banned
from tests.conftest import user_with_role

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.fail2ban]


@pytest.fixture(autouse=True)
def _set_up(bl_state, bl_f2b):
    # The commands load the stored settings first (RuntimeCommand): point them at our server.
    SiteSettings.objects.update_or_create(
        singleton=1,
        defaults={"setup_complete": True, "fail2ban_socket": str(bl_f2b.socket_path)},
    )


def call(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_command_imports_a_file_into_a_jail_as_json(bl_f2b, tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("71.1.1.1\n71.1.1.0/24\nbogus\n10.9.9.9\n")
    out, _ = call("blocklists_import", "--file", str(path), "--jail", "blocklist", "--json")
    run = json.loads(out)["runs"][0]
    assert (run["status"], run["banned"], run["invalid"], run["skipped"]) == ("ok", 1, 1, 1)
    assert run["duplicates"] == 1 and run["skipped_reasons"] == {"private or reserved": 1}
    assert banned(bl_f2b) == {"71.1.1.0/24"}
    record = AuditEntry.objects.get(action="blocklist_import")
    assert record.actor == "blocklist:list.txt" and record.source == "command"


def test_command_source_import_needs_confirmation_then_imports(bl_f2b, list_server):
    list_server.routes["/c.txt"] = Route(b"72.2.2.2\n", etag='"c"')
    BlocklistSource.objects.create(name="cmd", url=list_server.url("/c.txt"), allow_private=True)
    with pytest.raises(CommandError) as refused:
        call("blocklists_import", "--source", "cmd", "--json")
    assert refused.value.returncode == 1
    out, _ = call("blocklists_import", "--source", "cmd", "--confirm", "--json")
    assert json.loads(out)["runs"][0]["banned"] == 1
    assert banned(bl_f2b) == {"72.2.2.2"}
    out, _ = call("blocklists_import", "--json")  # every source: unchanged now (304)
    run = json.loads(out)["runs"][0]
    assert (run["status"], run["http_status"]) == ("unchanged", 304)


def test_command_failed_import_exits_1_and_is_recorded(bl_f2b, list_server):
    list_server.routes["/bad.txt"] = Route(b"x", status=404)
    BlocklistSource.objects.create(
        name="bad", url=list_server.url("/bad.txt"), allow_private=True, confirmed=True
    )
    with pytest.raises(CommandError) as failed:
        call("blocklists_import", "--source", "bad")
    assert failed.value.returncode == 1
    assert ImportRun.objects.get().status == ImportRun.Status.FAILED


def test_command_usage_errors_and_as_user_permissions(bl_f2b, tmp_path, django_user_model):
    for args in (["--file", "x"], ["--jail", "blocklist"], ["--source", "nope"]):
        with pytest.raises(CommandError) as usage:
            call("blocklists_import", *args)
        assert usage.value.returncode == 2
    user_with_role(django_user_model, "viewer", username="vic")
    path = tmp_path / "l.txt"
    path.write_text("73.3.3.3\n")
    with pytest.raises(CommandError, match="operate permission") as denied:
        call("blocklists_import", "--file", str(path), "--jail", "blocklist", "--as", "vic")
    assert denied.value.returncode == 2 and banned(bl_f2b) == set()
    user_with_role(django_user_model, "operator", username="olga")
    call("blocklists_import", "--file", str(path), "--jail", "blocklist", "--as", "olga")
    assert banned(bl_f2b) == {"73.3.3.3"}
    assert ImportRun.objects.get().actor == "olga"


def test_command_list_as_json_and_text(list_server):
    BlocklistSource.objects.create(name="one", url="https://example.org/l.txt", schedule="weekly")
    BlocklistSource.objects.create(name="two", content="1.1.1.1\n", consecutive_failures=5)
    out, _ = call("blocklists", "list", "--json")
    sources = {s["name"]: s for s in json.loads(out)["sources"]}
    assert sources["one"]["schedule"] == "weekly" and sources["one"]["last_run"] is None
    assert sources["two"]["failing"] and sources["two"]["uploaded"]
    text, _ = call("blocklists", "list")
    assert "FAILING" in text and "https://example.org/l.txt" in text
