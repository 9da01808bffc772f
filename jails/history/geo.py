"""Offline IP geolocation: country and autonomous system, with no network access.

Two backends, both read from local files only:

- geoip2fast's bundled ``geoip2fast-asn-ipv6.dat.gz`` (GeoLite2 country + AS name, IPv4 and
  IPv6). We read the file ourselves instead of calling ``geoip2fast.GeoIP2Fast``: that class
  keeps the loaded tables in *module globals*, so a second instance (or anyone else in the
  process loading the default IPv4-only file) silently replaces the data under the first;
  importing it sets ``os.environ["PYTHONWARNINGS"]``; and with this file its AS lookup
  stretches each range over the gap after it (about 9% of random public addresses got the AS
  of a neighbouring network). The file is a pickle of plain lists; we unpickle it with a
  loader that refuses every class, so it can only ever produce data. The data set has AS
  *names* but no AS numbers, so ``asn`` stays ``None`` unless a MaxMind database supplies it.
- An optional MaxMind ``.mmdb`` (GeoLite2-Country/City and/or GeoLite2-ASN shape) read with
  ``maxminddb``. Its fields take precedence; fields it lacks fall back to geoip2fast.

No module-level state: all data, the cache and the load lock live on the instance, which the
caller (the per-process state) owns.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import ipaddress
import os
import pickle
import threading
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import maxminddb

StrPath = str | os.PathLike[str]

GEOIP2FAST_ASN_IPV6_FILE = "geoip2fast-asn-ipv6.dat.gz"
DEFAULT_CACHE_SIZE = 65536

# Longer strings cannot be an IP address (45 chars max for IPv6 plus a short zone id); refusing
# them early keeps attacker-supplied junk out of the cache.
_MAX_IP_TEXT = 64
_MAX_IPV4_INT = 2**32
# geoip2fast's country table starts with 16 pseudo-countries (private, reserved, "not found").
_G2F_FIRST_REAL_COUNTRY = 16
_G2F_SUPPORTED_VERSIONS = frozenset({120})


class GeoDataError(Exception):
    """A geo data file is missing, unreadable or not in the expected format."""


@dataclass(frozen=True, slots=True)
class GeoInfo:
    """What is known about where an address is; every field None when nothing is."""

    country_code: str | None = None
    country_name: str | None = None
    asn: int | None = None
    as_name: str | None = None

    @property
    def found(self) -> bool:
        """True when any field is known."""
        return any(
            v is not None for v in (self.country_code, self.country_name, self.asn, self.as_name)
        )


NOT_FOUND = GeoInfo()


def default_geoip2fast_path() -> Path:
    """Path of the country+ASN IPv4/IPv6 data file shipped inside the geoip2fast package."""
    # find_spec locates the package without importing it (the import has side effects).
    spec = importlib.util.find_spec("geoip2fast")
    if spec is None or not spec.submodule_search_locations:
        raise GeoDataError("the geoip2fast package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / GEOIP2FAST_ASN_IPV6_FILE


def _ranges(*cidrs: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    nets = sorted(ipaddress.ip_network(c) for c in cidrs)
    return (
        tuple(int(n.network_address) for n in nets),
        tuple(int(n.broadcast_address) for n in nets),
    )


# Addresses with no location, from the IANA special-purpose registries. Spelled out rather
# than taken from ipaddress's is_global/is_private, whose answers changed between 3.11
# patch releases, and checked with one bisect instead of a scan over network objects.
_NO_LOCATION_V4 = _ranges(
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",  # carrier-grade NAT
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",  # documentation
    "192.88.99.0/24",  # 6to4 relay anycast
    "192.168.0.0/16",
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation
    "203.0.113.0/24",  # documentation
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, broadcast
)
# Only 2000::/3 is allocated as global unicast; inside it these have no location (6to4 and
# Teredo embed an IPv4 address rather than belong to a network of their own).
_GLOBAL_V6 = ipaddress.ip_network("2000::/3")
_NO_LOCATION_V6 = _ranges(
    "2001::/23",  # IETF protocol assignments, Teredo
    "2001:db8::/32",  # documentation
    "2002::/16",  # 6to4
    "3fff::/20",  # documentation
)


def _listed(n: int, ranges: tuple[tuple[int, ...], tuple[int, ...]]) -> bool:
    starts, ends = ranges
    i = bisect_right(starts, n) - 1
    return i >= 0 and n <= ends[i]


_OCTETS = frozenset(str(octet) for octet in range(256))  # as ipaddress writes them


def public_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parse ``text`` as an IP address; None if invalid or not a public unicast address."""
    if not isinstance(text, str) or len(text) > _MAX_IP_TEXT:
        return None
    parts = text.split(".")
    if (
        len(parts) == 4
        and parts[0] in _OCTETS
        and parts[1] in _OCTETS
        and parts[2] in _OCTETS
        and parts[3] in _OCTETS
    ):
        # A canonical IPv4 address (nearly every archived ban) from its integer: the string
        # parse cost more than the lookup itself when the history sync locates 100 000.
        n = int(parts[0]) << 24 | int(parts[1]) << 16 | int(parts[2]) << 8 | int(parts[3])
        return None if _listed(n, _NO_LOCATION_V4) else ipaddress.IPv4Address(n)
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        else:
            if addr.scope_id is not None:
                addr = ipaddress.IPv6Address(int(addr))
            if addr not in _GLOBAL_V6 or _listed(int(addr), _NO_LOCATION_V6):
                return None
            return addr
    return None if _listed(int(addr), _NO_LOCATION_V4) else addr


class _DataOnlyUnpickler(pickle.Unpickler):
    """Builds lists, tuples, dicts, strings and numbers; refuses every class or function."""

    def find_class(self, module: str, name: str) -> Any:
        raise GeoDataError(f"geo data file refers to {module}.{name}; only plain data allowed")


@dataclass(frozen=True, slots=True)
class _RangeTable:
    """geoip2fast's two-level sorted index: first IPs split into chunks, one id per network."""

    index: list[int]
    first_ips: list[list[int]]
    ids: list[list[int]]
    netlens: list[list[int]]

    def find(self, n: int) -> int | None:
        root = bisect_right(self.index, n) - 1
        if root < 0:
            return None
        chunk = self.first_ips[root]
        i = bisect_right(chunk, n) - 1
        if i < 0:
            return None
        bits = 32 if n < _MAX_IPV4_INT else 128
        if n >= chunk[i] + (1 << (bits - self.netlens[root][i])):
            return None
        return self.ids[root][i]


@dataclass(frozen=True, slots=True)
class _Geoip2FastData:
    info: str
    countries: _RangeTable
    asns: _RangeTable
    country_names: list[tuple[str, str]]
    as_names: list[str]

    def lookup(self, n: int) -> GeoInfo:
        code: str | None = None
        name: str | None = None
        cid = self.countries.find(n)
        if cid is not None and cid >= _G2F_FIRST_REAL_COUNTRY:
            code, name = self.country_names[cid]
        as_name: str | None = None
        aid = self.asns.find(n)
        if aid is not None:
            candidate = self.as_names[aid]
            if candidate and candidate not in ("<unknown>", "IANA.ORG"):
                as_name = candidate
        if code is None and as_name is None:
            return NOT_FOUND
        return GeoInfo(country_code=code, country_name=name, as_name=as_name)


def load_geoip2fast_data(path: StrPath) -> _Geoip2FastData:
    """Read a geoip2fast country+ASN ``.dat.gz`` file into memory (about 100 MB for IPv6)."""
    try:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rb") as fh:
            version, source, _total, tables = _DataOnlyUnpickler(fh).load()
    except GeoDataError:
        raise
    except (OSError, EOFError, ValueError, TypeError, pickle.UnpicklingError) as exc:
        raise GeoDataError(f"cannot read geoip2fast data {path}: {exc}") from exc
    if version not in _G2F_SUPPORTED_VERSIONS:
        raise GeoDataError(f"{path}: unsupported geoip2fast data version {version!r}")
    if not (isinstance(source, dict) and source.get("country") and source.get("asn")):
        raise GeoDataError(f"{path}: not a country+ASN geoip2fast file ({source!r})")
    try:
        (
            index,
            index_asn,
            country_names,
            as_names,
            first_ips,
            first_ips_asn,
            country_ids,
            asn_ids,
            netlens,
            netlens_asn,
        ) = tables
        names = [tuple(item.split(":", 1)) for item in country_names]
    except (TypeError, ValueError, AttributeError) as exc:
        raise GeoDataError(f"{path}: unexpected geoip2fast table layout") from exc
    return _Geoip2FastData(
        info=str(source.get("info", "")),
        countries=_RangeTable(index, first_ips, country_ids, netlens),
        asns=_RangeTable(index_asn, first_ips_asn, asn_ids, netlens_asn),
        country_names=names,
        as_names=as_names,
    )


def _mmdb_info(record: object) -> GeoInfo:
    """Pick country and AS fields out of a GeoLite2 Country/City/ASN-shaped record."""
    if not isinstance(record, Mapping):
        return NOT_FOUND
    code: str | None = None
    name: str | None = None
    for key in ("country", "registered_country"):
        country = record.get(key)
        if isinstance(country, Mapping) and isinstance(country.get("iso_code"), str):
            code = country["iso_code"].upper()
            names = country.get("names")
            if isinstance(names, Mapping) and isinstance(names.get("en"), str):
                name = names["en"]
            break
    asn = record.get("autonomous_system_number")
    org = record.get("autonomous_system_organization")
    return GeoInfo(
        country_code=code,
        country_name=name,
        asn=asn if isinstance(asn, int) and not isinstance(asn, bool) else None,
        as_name=org if isinstance(org, str) and org else None,
    )


def _merge(first: GeoInfo, second: GeoInfo) -> GeoInfo:
    """Fields of ``first`` win; country code and name travel together, as do AS number/name."""
    code: str | None  # declared: the first branch alone would narrow it to str
    if first.country_code is not None:
        code, name = first.country_code, first.country_name
    else:
        code, name = second.country_code, second.country_name
    if first.asn is not None or first.as_name is not None:
        asn, as_name = first.asn, first.as_name
    else:
        asn, as_name = second.asn, second.as_name
    return GeoInfo(code, name, asn, as_name)


@dataclass(frozen=True, slots=True)
class _Loaded:
    mmdb_readers: tuple[Any, ...]
    geoip2fast: _Geoip2FastData | None


class GeoLocator:
    """Country and AS lookups from local files; loads them on first use, thread-safe."""

    def __init__(
        self,
        *,
        mmdb_path: StrPath | Sequence[StrPath] | None = None,
        use_geoip2fast: bool = True,
        geoip2fast_path: StrPath | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if mmdb_path is None:
            self._mmdb_paths: tuple[StrPath, ...] = ()
        elif isinstance(mmdb_path, str | os.PathLike):
            self._mmdb_paths = (mmdb_path,)
        else:
            self._mmdb_paths = tuple(mmdb_path)
        self._use_geoip2fast = use_geoip2fast
        self._geoip2fast_path = geoip2fast_path
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        # A per-instance cache: lru_cache around the bound method, so nothing is shared
        # between locators and the cache dies with the instance.
        self._cached_lookup = functools.lru_cache(maxsize=cache_size)(self._lookup_uncached)

    def load(self) -> None:
        """Load the data files now; raises GeoDataError if one is missing or broken."""
        self._data()

    @property
    def is_loaded(self) -> bool:
        """True once the data files have been read."""
        return self._loaded is not None

    def describe(self) -> str:
        """A short description of the data sources in use (loads them)."""
        data = self._data()
        parts = [f"mmdb:{r.metadata().database_type}" for r in data.mmdb_readers]
        if data.geoip2fast is not None:
            parts.append(f"geoip2fast:{data.geoip2fast.info}")
        return ", ".join(parts) or "no geo data"

    def lookup(self, ip: str) -> GeoInfo:
        """Geo data for one address; all-None for invalid, private or unknown addresses."""
        if not isinstance(ip, str) or len(ip) > _MAX_IP_TEXT:
            return NOT_FOUND
        return self._cached_lookup(ip)

    def lookup_many(self, ips: Iterable[str]) -> dict[str, GeoInfo]:
        """Geo data for each distinct address in ``ips``."""
        return {ip: self.lookup(ip) for ip in ips}

    def cache_info(self) -> functools._CacheInfo:
        """Hits, misses and size of this locator's lookup cache."""
        return self._cached_lookup.cache_info()

    def cache_clear(self) -> None:
        """Forget cached answers (for example after swapping data files)."""
        self._cached_lookup.cache_clear()

    def close(self) -> None:
        """Release the data; a later lookup loads it again."""
        with self._lock:
            loaded, self._loaded = self._loaded, None
        self.cache_clear()
        if loaded is not None:
            for reader in loaded.mmdb_readers:
                reader.close()

    def _data(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is None:
                self._loaded = self._read_files()
            return self._loaded

    def _read_files(self) -> _Loaded:
        readers = []
        try:
            for path in self._mmdb_paths:
                try:
                    readers.append(maxminddb.open_database(os.fspath(path)))
                except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
                    raise GeoDataError(f"cannot open MaxMind database {path}: {exc}") from exc
            g2f = None
            if self._use_geoip2fast:
                g2f = load_geoip2fast_data(self._geoip2fast_path or default_geoip2fast_path())
        except BaseException:
            for reader in readers:
                reader.close()
            raise
        return _Loaded(mmdb_readers=tuple(readers), geoip2fast=g2f)

    def _lookup_uncached(self, ip: str) -> GeoInfo:
        addr = public_address(ip)
        if addr is None:
            return NOT_FOUND
        data = self._data()
        info = NOT_FOUND
        for reader in data.mmdb_readers:
            try:
                record = reader.get(addr)
            except (ValueError, maxminddb.InvalidDatabaseError):
                continue
            info = _merge(info, _mmdb_info(record))
        complete = info.country_code is not None and (
            info.asn is not None or info.as_name is not None
        )
        if data.geoip2fast is not None and not complete:
            info = _merge(info, data.geoip2fast.lookup(int(addr)))
        return info if info.found else NOT_FOUND
