"""Large request bodies only where a long list is the point: the bulk ban, for operators.

Everybody else keeps Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB), the anonymous login
form first of all; the global setting is never changed per request.
"""
# Fixtures imported by name from tests/support/fixtures_bans.py are redefined as arguments.
# ruff: noqa: F811

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from jails.models import AuditEntry
from jails.uploads import multipart_parse
from tests.support.fixtures_bans import quiet_f2b, quiet_server  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]

DJANGO_DEFAULT = 2_621_440  # 2.5 MB
ADDRESSES = [f"203.0.113.{i}" for i in range(1, 251)] + [f"198.51.100.{i}" for i in range(1, 251)]


def big_list(size: int = 3 * 1024 * 1024) -> str:
    """500 addresses with Spamhaus-style comments, together larger than Django's limit.

    (The quiet fail2ban: the session server's recording action is too slow for 500 bans.)
    """
    padding = "x" * (size // len(ADDRESSES))
    return "\r\n".join(f"{ip} ; SBL listing {padding}" for ip in ADDRESSES)


def banned(f2b, jail: str) -> set[str]:
    return {str(ip) for ip in f2b.client().send("get", jail, "banip")}


def test_django_default_limit_is_kept_globally():
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == DJANGO_DEFAULT


def test_anonymous_large_login_post_is_refused_400(client):
    body = "username=admin&password=" + "x" * (3 * 1024 * 1024)
    response = client.post("/login/", body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert not AuditEntry.objects.exists()


def test_operator_bulk_ban_of_a_large_pasted_list_works(quiet_f2b, role_client):
    text = big_list()
    assert len(text) > DJANGO_DEFAULT
    # As a browser does it: CSRF checked, so CsrfViewMiddleware reads the large POST too.
    client = role_client("operator", csrf=True)
    client.get("/jails/bulk/bulk-ban/")
    token = client.cookies["csrftoken"].value
    response = client.post("/jails/bulk/bulk-ban/", {"text": text, "csrfmiddlewaretoken": token})
    assert response.status_code == 200
    assert "fail2ban banned 500 new" in response.content.decode()
    assert banned(quiet_f2b, "bulk") == set(ADDRESSES)
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == DJANGO_DEFAULT


def test_operator_large_confirmation_post_url_encoded_works(quiet_f2b, role_client):
    from urllib.parse import urlencode

    body = urlencode({"text": big_list(), "confirm": "True"})
    assert len(body) > DJANGO_DEFAULT
    response = role_client("operator").post(
        "/jails/bulk/bulk-ban/", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    assert banned(quiet_f2b, "bulk") == set(ADDRESSES)


def test_viewer_large_bulk_ban_post_is_refused_400(quiet_f2b, role_client):
    # CSRF checked as for a browser (cookie set by a page): its check reads the POST first.
    client = role_client("viewer", csrf=True)
    client.get("/jails/")
    response = client.post("/jails/bulk/bulk-ban/", {"text": big_list()})
    assert response.status_code == 400
    assert banned(quiet_f2b, "bulk") == set()


def test_operator_large_post_elsewhere_is_refused_400(quiet_f2b, role_client):
    response = role_client("operator").post("/jails/bulk/ban/", {"ip": big_list()})
    assert response.status_code == 400
    assert banned(quiet_f2b, "bulk") == set()


def test_operator_bulk_ban_beyond_the_large_limit_is_refused_400(quiet_f2b, role_client):
    text = big_list(settings.JAILADMIN_LARGE_LIST_MAX_BYTES + 1024)
    response = role_client("operator").post("/jails/bulk/bulk-ban/", {"text": text})
    assert response.status_code == 400
    assert banned(quiet_f2b, "bulk") == set()


def test_large_list_parser_matches_djangos_parser():
    """The parser used for the allowed large bodies gives what Django's own would."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.http.multipartparser import MultiPartParser

    data = {
        "text": "203.0.113.1\r\n2001:db8::1 # ünïcode comment\r\n",
        "confirm": "True",
        "empty": "",
        "upload": SimpleUploadedFile("../dir/list.txt", b"198.51.100.7\n\x00binary\r\n"),
    }
    body = encode_multipart(BOUNDARY, data)
    meta = {"CONTENT_TYPE": MULTIPART_CONTENT, "CONTENT_LENGTH": str(len(body))}
    from io import BytesIO

    from django.core.files.uploadhandler import MemoryFileUploadHandler

    expected_post, expected_files = MultiPartParser(
        meta, BytesIO(body), [MemoryFileUploadHandler()], "utf-8"
    ).parse()
    post, files = multipart_parse(body, content_type=MULTIPART_CONTENT, encoding="utf-8")
    assert dict(post.lists()) == dict(expected_post.lists())
    assert list(files) == list(expected_files) == ["upload"]
    assert files["upload"].name == expected_files["upload"].name == "list.txt"
    assert files["upload"].read() == expected_files["upload"].read()
    assert not post._mutable


def test_operator_large_upload_and_small_forms_still_work(quiet_f2b, role_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client: Client = role_client("operator")
    upload = SimpleUploadedFile("list.txt", big_list().encode())
    response = client.post("/jails/bulk/bulk-ban/", {"upload": upload})
    assert "fail2ban banned 500 new" in response.content.decode()
    response = client.post("/jails/other/bulk-ban/", {"text": "192.0.2.9"})
    assert response.status_code == 200
    assert banned(quiet_f2b, "other") == {"192.0.2.9"}
