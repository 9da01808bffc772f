"""Fetching against a real local HTTP server: every case of the issue's Tests section."""

from __future__ import annotations

import gzip
import ipaddress
import socket
import threading

import pytest

from jails.blocklists.services.fetch import (
    CheckedHTTPConnection,
    FetchError,
    FetchPolicy,
    RefusedDestination,
    TooLarge,
    list_fetch,
    user_agent,
)
from tests.blocklists.conftest import Route

LOCAL = (ipaddress.ip_network("127.0.0.1/32"),)
# The tests' server is on loopback: allowed by name, everything else private stays refused.
POLICY = FetchPolicy(
    connect_timeout=5.0, read_timeout=5.0, attempts=3, backoff=0.01, allowed_networks=LOCAL
)
VALID = b"# a list\n11.1.1.1\n12.0.0.0/16 ; SBL1\n"


def test_fetch_valid_list_with_user_agent_and_gzip_accepted(list_server):
    list_server.routes["/list.txt"] = Route(VALID)
    result = list_fetch(list_server.url("/list.txt"), policy=POLICY)
    assert result.status == 200 and result.body == VALID
    seen = list_server.requests[-1].headers
    assert seen["User-Agent"] == user_agent() and user_agent().startswith("jailadmin/")
    assert "gzip" in seen["Accept-Encoding"]


def test_fetch_decodes_gzip_content_encoding_and_gz_files(list_server):
    list_server.routes["/enc"] = Route(VALID, gzip=True)
    list_server.routes["/file.gz"] = Route(gzip.compress(VALID))
    assert list_fetch(list_server.url("/enc"), policy=POLICY).body == VALID
    assert list_fetch(list_server.url("/file.gz"), policy=POLICY).body == VALID


def test_fetch_second_fetch_with_etag_is_a_304(list_server):
    list_server.routes["/etag"] = Route(VALID, etag='"v1"', headers={"Last-Modified": "x"})
    first = list_fetch(list_server.url("/etag"), policy=POLICY)
    assert first.etag == '"v1"' and first.body == VALID
    second = list_fetch(list_server.url("/etag"), policy=POLICY, etag=first.etag)
    assert second.status == 304 and second.not_modified and second.body is None
    assert list_server.requests[-1].headers["If-None-Match"] == '"v1"'


def test_fetch_refuses_a_list_over_the_cap_while_streaming(list_server):
    # 60 MB without a Content-Length: only the streamed count can stop it.
    list_server.routes["/big"] = Route(stream=60 * 1024 * 1024)
    with pytest.raises(TooLarge, match="cap"):
        list_fetch(list_server.url("/big"), policy=POLICY)


def test_fetch_refuses_a_declared_length_over_the_cap_before_reading(list_server):
    list_server.routes["/declared"] = Route(b"x" * 2000)
    with pytest.raises(TooLarge):
        list_fetch(
            list_server.url("/declared"),
            policy=FetchPolicy(**{**POLICY.__dict__, "max_bytes": 1000}),
        )


def test_fetch_refuses_a_gzip_bomb_at_the_cap(list_server):
    list_server.routes["/bomb"] = Route(b"0" * 5_000_000, gzip=True)
    small = FetchPolicy(**{**POLICY.__dict__, "max_bytes": 1_000_000})
    with pytest.raises(TooLarge):
        list_fetch(list_server.url("/bomb"), policy=small)


def test_fetch_slow_server_times_out_after_retries(list_server):
    list_server.routes["/slow"] = Route(VALID, delay=2.0)
    impatient = FetchPolicy(**{**POLICY.__dict__, "read_timeout": 0.3, "attempts": 2})
    with pytest.raises(FetchError, match="(?i)timeout|timed out"):
        list_fetch(list_server.url("/slow"), policy=impatient)
    assert list_server.hits("/slow") == 2


def test_fetch_retries_500_then_fails_with_the_status(list_server):
    list_server.routes["/500"] = Route(b"oops", status=500)
    pauses = []
    with pytest.raises(FetchError) as failure:
        list_fetch(list_server.url("/500"), policy=POLICY, sleep=pauses.append)
    assert failure.value.status == 500
    assert list_server.hits("/500") == 3
    assert pauses == [0.01, 0.02]  # exponential backoff


def test_fetch_404_fails_without_retrying(list_server):
    with pytest.raises(FetchError) as failure:
        list_fetch(list_server.url("/missing"), policy=POLICY)
    assert failure.value.status == 404
    assert list_server.hits("/missing") == 1


def test_fetch_follows_redirects_and_limits_them(list_server):
    list_server.routes["/list.txt"] = Route(VALID)
    list_server.routes["/r1"] = Route(status=302, headers={"Location": "/list.txt"})
    assert list_fetch(list_server.url("/r1"), policy=POLICY).body == VALID
    for i in range(7):
        list_server.routes[f"/loop{i}"] = Route(status=301, headers={"Location": f"/loop{i + 1}"})
    with pytest.raises(FetchError, match="more than 5 redirects"):
        list_fetch(list_server.url("/loop0"), policy=POLICY)
    assert list_server.hits("/loop5") == 1 and list_server.hits("/loop6") == 0


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/list",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/list",
        "http://127.0.0.2:9/list",
        "http://192.168.1.1/list",
    ],
)
def test_fetch_refuses_a_redirect_to_a_private_address(list_server, target):
    list_server.routes["/evil"] = Route(status=302, headers={"Location": target})
    with pytest.raises(RefusedDestination):
        list_fetch(list_server.url("/evil"), policy=POLICY)


def test_fetch_refuses_a_redirect_to_another_scheme(list_server):
    list_server.routes["/file"] = Route(status=302, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(FetchError, match="non-HTTP"):
        list_fetch(list_server.url("/file"), policy=POLICY)


def test_fetch_refuses_loopback_unless_private_sources_are_allowed(list_server):
    list_server.routes["/list.txt"] = Route(VALID)
    with pytest.raises(RefusedDestination):
        list_fetch(list_server.url("/list.txt"), policy=FetchPolicy())
    assert list_server.hits("/list.txt") == 0
    allowed = list_fetch(list_server.url("/list.txt"), policy=FetchPolicy(allow_private=True))
    assert allowed.body == VALID


def test_fetch_checks_the_address_actually_connected_to():
    """DNS rebinding: whatever a lookup said before, the connected peer is checked, and the
    connection is closed before a single byte of the request is sent."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    received = []

    def accept():
        conn, _ = listener.accept()
        conn.settimeout(2)
        try:
            received.append(conn.recv(100))
        except OSError:
            received.append(b"")
        conn.close()

    thread = threading.Thread(target=accept)
    thread.start()
    conn = CheckedHTTPConnection("127.0.0.1", listener.getsockname()[1], timeout=2)
    conn.policy = FetchPolicy()
    with pytest.raises(RefusedDestination, match="127.0.0.1"):
        conn.request("GET", "/")
    thread.join(5)
    listener.close()
    assert received == [b""]


def test_fetch_only_http_and_https():
    with pytest.raises(FetchError, match="only http and https"):
        list_fetch("ftp://example.org/list", policy=POLICY)
