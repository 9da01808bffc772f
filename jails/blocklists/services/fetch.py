"""Fetching a blocklist over HTTP(S) with urllib3: bounded, conditional, and never at ourselves.

urllib3 (not httpx): it is already what most of the Python ecosystem sits on, has no
dependencies of its own, streams with a bounded read, decodes gzip as it streams, and lets a
connection class check the socket it has just connected — which is where the server-side
request forgery check belongs. A check of a DNS answer before connecting is defeated by
DNS rebinding (the name resolves to a public address for the check and to 127.0.0.1 for
the connection); the address a socket actually connected to cannot be. Both are done: the
check before connecting refuses literal and resolved private destinations without touching
them, the check after connecting is the one that holds.

Redirects are followed here, one by one (at most five, http and https only), so every hop
goes through the same checks. Retries (5xx, 429, timeouts, dropped connections) back off
exponentially; a 4xx other than 429 fails at once, since asking again changes nothing.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error

from jails.fail2ban.validation import IPNetwork

if TYPE_CHECKING:  # typing-only protocols in urllib3
    from urllib3._base_connection import BaseHTTPConnection, BaseHTTPSConnection

logger = logging.getLogger(__name__)

MAX_BYTES = 50 * 1024 * 1024
MAX_REDIRECTS = 5
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 64 * 1024


def user_agent() -> str:
    """`jailadmin/<version>`: a list's operator can tell who is asking and whom to contact."""
    try:
        version = metadata.version("jailadmin")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        version = "dev"
    return f"jailadmin/{version}"


class FetchError(Exception):
    """The list could not be fetched; `status` is the last HTTP status, if there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RefusedDestination(FetchError):
    """The destination is one the site must not reach (loopback, private, link-local...)."""


class TooLarge(FetchError):
    """The list is larger than the cap (checked as it streams, after decompression)."""


@dataclass(frozen=True)
class FetchPolicy:
    connect_timeout: float = 10.0
    read_timeout: float = 30.0  # between two reads
    total_timeout: float = 300.0  # the whole fetch, retries included: a trickling server ends
    max_bytes: int = MAX_BYTES
    max_redirects: int = MAX_REDIRECTS
    attempts: int = 3
    backoff: float = 2.0  # seconds before the second attempt; doubled each time
    allow_private: bool = False
    # Destinations allowed although not public, for a site that knows its own list server
    # (and the tests' local one); everything else private stays refused.
    allowed_networks: tuple[IPNetwork, ...] = ()


@dataclass(frozen=True)
class FetchResult:
    status: int
    body: bytes | None  # None: 304, unchanged since the ETag / Last-Modified we sent
    url: str  # after redirects
    etag: str = ""
    last_modified: str = ""

    @property
    def not_modified(self) -> bool:
        return self.body is None


def destination_refusal(address: str, policy: FetchPolicy) -> str:
    """Why the site must not connect to `address` ("" if it may)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is no IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if policy.allow_private or ip.is_global:
        return ""
    if any(ip.version == net.version and ip in net for net in policy.allowed_networks):
        return ""
    return (
        f"{ip} is not a public address (loopback, private, link-local or reserved); "
        "allow private sources to fetch from it"
    )


class _PeerChecked:
    """Mixin: refuse the socket just connected if its peer is not allowed (before any byte)."""

    policy: FetchPolicy = FetchPolicy()

    def _checked(self, sock: socket.socket) -> socket.socket:
        peer = str(sock.getpeername()[0])
        reason = destination_refusal(peer, self.policy)
        if reason:
            sock.close()
            raise RefusedDestination(f"refused to connect: {reason}")
        return sock


class CheckedHTTPConnection(_PeerChecked, HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return self._checked(super()._new_conn())


class CheckedHTTPSConnection(_PeerChecked, HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return self._checked(super()._new_conn())


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = CheckedHTTPConnection
    policy: FetchPolicy = FetchPolicy()

    def _new_conn(self) -> BaseHTTPConnection:
        conn = super()._new_conn()
        if isinstance(conn, _PeerChecked):
            conn.policy = self.policy
        return conn


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = CheckedHTTPSConnection
    policy: FetchPolicy = FetchPolicy()

    def _new_conn(self) -> BaseHTTPSConnection:
        conn = super()._new_conn()
        if isinstance(conn, _PeerChecked):
            conn.policy = self.policy
        return conn


def _precheck(host: str, port: int, policy: FetchPolicy) -> None:
    """Refuse a destination whose name resolves to a refused address, before connecting."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError(f"cannot resolve {host}: {exc.strerror}") from None
    for info in infos:
        reason = destination_refusal(str(info[4][0]), policy)
        if reason:
            raise RefusedDestination(f"refused {host}: {reason}")


def _pool(url: str, policy: FetchPolicy) -> tuple[HTTPConnectionPool, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchError(f"only http and https URLs are fetched, not {parts.scheme or 'none'}")
    if not parts.hostname:
        raise FetchError("the URL names no host")
    if parts.username or parts.password:
        raise FetchError("user names and passwords in URLs are not supported")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    _precheck(parts.hostname, port, policy)
    timeout = urllib3.Timeout(connect=policy.connect_timeout, read=policy.read_timeout)
    pool_class = _CheckedHTTPSPool if parts.scheme == "https" else _CheckedHTTPPool
    pool = pool_class(parts.hostname, port, timeout=timeout, maxsize=1, retries=False)
    pool.policy = policy
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return pool, path


def list_fetch(
    url: str,
    *,
    policy: FetchPolicy,
    etag: str = "",
    last_modified: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> FetchResult:
    """GET the list at `url` (conditionally, if an ETag or Last-Modified is known)."""
    deadline = time.monotonic() + policy.total_timeout
    headers = {"User-Agent": user_agent(), "Accept-Encoding": "gzip", "Accept": "text/plain, */*"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    last_error: FetchError | None = None
    for attempt in range(max(policy.attempts, 1)):
        if attempt:
            pause = policy.backoff * 2 ** (attempt - 1)
            if time.monotonic() + pause > deadline:
                break
            sleep(pause)
        try:
            return _follow(url, headers, policy, deadline)
        except _Retryable as exc:
            last_error = FetchError(str(exc), status=exc.status)
            logger.info("blocklist fetch %s: attempt %d failed: %s", url, attempt + 1, exc)
    assert last_error is not None or policy.attempts < 1
    raise last_error or FetchError("not fetched")


class _Retryable(FetchError):
    """A failure worth another attempt: 5xx, 429, a timeout, a dropped connection."""


def _follow(url: str, headers: dict[str, str], policy: FetchPolicy, deadline: float) -> FetchResult:
    for _hop in range(policy.max_redirects + 1):
        pool, path = _pool(url, policy)
        try:
            response = pool.urlopen(
                "GET",
                path,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=True,
            )
        except RefusedDestination:
            raise
        except Urllib3Error as exc:
            raise _Retryable(f"{type(exc).__name__}: {_short(exc)}") from None
        try:
            status = response.status
            if status in REDIRECT_STATUSES:
                location = response.headers.get("Location", "")
                if not location:
                    raise FetchError(f"HTTP {status} without a Location", status=status)
                url = urljoin(url, location)
                if urlsplit(url).scheme not in ("http", "https"):
                    raise FetchError(f"redirected to a non-HTTP URL: {url[:200]}", status=status)
                continue
            if status == 304:
                return FetchResult(304, None, url, _header(response, "ETag"), "")
            if status in RETRY_STATUSES:
                raise _Retryable(f"HTTP {status}", status=status)
            if status != 200:
                raise FetchError(f"HTTP {status}", status=status)
            body = _read_capped(response, policy, deadline)
            return FetchResult(
                status,
                _gunzip_if_needed(body, policy.max_bytes),
                url,
                _header(response, "ETag"),
                _header(response, "Last-Modified"),
            )
        finally:
            response.release_conn()
            pool.close()
    raise FetchError(f"more than {policy.max_redirects} redirects")


def _header(response: Any, name: str) -> str:
    return str(response.headers.get(name, ""))[:500]


def _short(exc: BaseException) -> str:
    return str(exc)[:300]


def _read_capped(response: Any, policy: FetchPolicy, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > policy.max_bytes:
        raise TooLarge(
            f"the list is {int(declared):,} bytes, over the {policy.max_bytes:,}-byte cap",
            status=response.status,
        )
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.stream(CHUNK, decode_content=True):
            size += len(chunk)
            if size > policy.max_bytes:  # counted after gzip: a small bomb is refused too
                raise TooLarge(
                    f"the list is over the {policy.max_bytes:,}-byte cap (stopped reading)",
                    status=response.status,
                )
            if time.monotonic() > deadline:
                raise FetchError(
                    f"the fetch took longer than {policy.total_timeout:g} s", status=response.status
                )
            chunks.append(chunk)
    except Urllib3Error as exc:
        raise _Retryable(f"{type(exc).__name__}: {_short(exc)}", status=response.status) from None
    return b"".join(chunks)


def _gunzip_if_needed(body: bytes, max_bytes: int) -> bytes:
    """A `.gz` file served as is (no Content-Encoding) is unpacked here, with the same cap."""
    if not body.startswith(GZIP_MAGIC):
        return body
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise FetchError(f"a damaged gzip file: {exc}") from None
    if len(data) > max_bytes:
        raise TooLarge(f"the list unpacks to over the {max_bytes:,}-byte cap")
    return data
