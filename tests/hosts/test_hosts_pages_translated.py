"""The /hosts/ pages in a pseudo-locale (issue 16): every text the site writes comes out
wrapped in ⟦…⟧, so what is left unwrapped is English nobody marked, or data.

tests/i18n's pseudo-locale (every translation is its English text inside ⟦…⟧, built from
what `make messages` finds in today's code) covers the hosts list there; this walks the
pages behind it: an SSH host's page with its install steps, the check of a host that is not
contacted, the key page, the add and edit forms with their errors, and the remove page with
its summary. No host is contacted (an SSH host whose key is not confirmed never is), so no
sshd is needed. The data on these pages (names, addresses, commands, the key line) is
taken out by value."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from jails.hosts.models import Host
from jails.hosts.services import hosts as host_service
from jails.services.audit import Actor
from tests.i18n.conftest import (  # noqa: F401 (fixtures, used by name)
    PSEUDO_OPEN,
    fresh_locale_dir,
    pseudo_locale,
    pseudo_locale_dir,
)
from tests.i18n.test_pseudo_locale import data_phrases, english_left

pytestmark = [pytest.mark.django_db]

ACTOR = Actor(name="tester", source="command")


def _in_language(client: Client, language: str) -> None:
    response = client.post(reverse("jails:language"), {"language": language, "next": "/"})
    assert response.status_code == 302


def _english_left(
    client: Client, url: str, language: str, data: set[str], **post: str
) -> list[str]:
    response = client.post(url, post) if post else client.get(url)
    assert response.status_code in (200, 400, 502), (url, response.status_code)
    html = response.content.decode()
    assert f'<html lang="{language}"' in html and PSEUDO_OPEN in html
    return english_left(html, frozenset(data_phrases(language) | data))


def test_hosts_pages_have_no_unmarked_english(
    runtime,
    f2b,
    administrator_client: Client,
    pseudo_locale: str,  # noqa: F811
) -> None:
    ssh_host = host_service.host_create(
        name="web9", kind=Host.Kind.SSH, address="root@192.0.2.9:2222", actor=ACTOR
    )
    Host.objects.create(
        name="off", kind=Host.Kind.SOCKET, address="/tmp/jailadmin-off.sock", enabled=False
    )
    steps = host_service.install_steps(ssh_host)
    data = {
        "web9",
        "off",
        "root@192.0.2.9:2222",
        "192.0.2.9",
        "/tmp/jailadmin-off.sock",
        steps.authorized_keys_line,
        *steps.on_site,
        *steps.on_host,
        "hosts install-agent web9 --perform --login-key PATH",
        "hosts install-agent web9",
        "ssh-keygen -lf",
        "SHA256:…",
        "--version",
        "jailadmin-agent",
        "python3",
        "authorized_keys",
        "manage.py",
    }
    _in_language(administrator_client, pseudo_locale)
    pages = {
        "list": (reverse("jails:hosts:list"), {}),
        "detail": (reverse("jails:hosts:detail", args=["web9"]), {}),
        # Not contacted (its key is not confirmed): the check says why.
        "check": (reverse("jails:hosts:check", args=["web9"]), {"go": "1"}),
        "key": (reverse("jails:hosts:confirm-key", args=["web9"]), {}),
        "bad key": (
            reverse("jails:hosts:confirm-key", args=["web9"]),
            {"fingerprint": "not-a-fingerprint"},
        ),
        "add": (reverse("jails:hosts:add"), {}),
        "add errors": (
            reverse("jails:hosts:add"),
            {"name": "add", "kind": "socket", "address": "relative.sock", "time_zone": "Mars/Base"},
        ),
        "edit": (reverse("jails:hosts:edit", args=["web9"]), {}),
        "edit local": (reverse("jails:hosts:edit", args=["local"]), {}),
        "remove": (reverse("jails:hosts:remove", args=["web9"]), {}),
        "remove local": (reverse("jails:hosts:remove", args=["local"]), {}),
    }
    left = {
        name: found
        for name, (url, post) in pages.items()
        if (found := _english_left(administrator_client, url, pseudo_locale, data, **post))
    }
    assert not left, "unmarked English:\n" + "\n".join(
        f"{name}: {line}" for name, lines in left.items() for line in lines
    )
