"""Tests for jails.history.geo: offline country/ASN lookups (geoip2fast data and MaxMind .mmdb)."""

import gzip
import json
import os
import pickle
import socket
import subprocess
import sys
import threading
from pathlib import Path

import maxminddb
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from jails.history import geo
from jails.history.geo import NOT_FOUND, GeoDataError, GeoInfo, GeoLocator

REPO = Path(__file__).resolve().parents[2]

# Values in the GeoLite2 2024-06-18 data that geoip2fast 1.2.2 ships. That data set has AS
# names but no AS numbers, so asn is None for the geoip2fast backend.
GOOGLE_V4 = GeoInfo("US", "United States", None, "GOOGLE")
CLOUDFLARE_V4 = GeoInfo("AU", "Australia", None, "CLOUDFLARENET")
GOOGLE_V6 = GeoInfo("US", "United States", None, "GOOGLE")
CLOUDFLARE_V6 = GeoInfo("US", "United States", None, "CLOUDFLARENET")
QUAD9 = GeoInfo("US", "United States", None, "QUAD9-AS-1")

PRIVATE_AND_SPECIAL = [
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "127.0.0.1",
    "169.254.1.1",
    "100.64.0.1",  # carrier-grade NAT
    "192.0.2.1",  # documentation
    "198.51.100.7",
    "203.0.113.7",
    "0.0.0.0",
    "255.255.255.255",
    "224.0.0.1",  # multicast
    "240.0.0.1",  # reserved
    "::1",
    "::",
    "fe80::1",
    "fe80::1%eth0",
    "fd00::1",
    "2001:db8::1",
    "ff02::1",
    "::ffff:10.0.0.1",
    "fec0::1",  # old site-local
    "100::1",  # discard prefix
    "64:ff9b::808:808",  # NAT64
    "2001:0:4136:e378::1",  # Teredo
    "2002:c000:204::1",  # 6to4
    "3fff::1",  # documentation
]

GARBAGE = [
    "",
    "garbage",
    "999.1.1.1",
    "1.2.3",
    "example.com",
    "--all",
    "1.2.3.4/24",
    "::g",
    "x" * 5000,
]


@pytest.fixture(scope="module")
def locator():
    """The default geoip2fast-backed locator, loaded once (about 100 MB) for the module."""
    loc = GeoLocator()
    loc.load()
    yield loc
    loc.close()


@pytest.fixture(scope="module")
def mmdb_file(tmp_path_factory):
    """A small MaxMind DB with made-up answers that differ from the geoip2fast data."""
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="GeoLite2-Test",
        languages=["en"],
        description="jailadmin test database",
    )
    writer.insert_network(
        IPSet(["8.8.8.0/24", "2001:4860::/32"]),
        {
            "country": {"iso_code": "DE", "names": {"en": "Germany"}},
            "autonomous_system_number": 64500,
            "autonomous_system_organization": "Example AS",
        },
    )
    # Country only (GeoLite2-Country shape): the AS must come from geoip2fast.
    writer.insert_network(
        IPSet(["1.1.1.0/24"]), {"country": {"iso_code": "FR", "names": {"en": "France"}}}
    )
    # ASN only (GeoLite2-ASN shape): the country must come from geoip2fast.
    writer.insert_network(
        IPSet(["9.9.9.0/24"]),
        {"autonomous_system_number": 19281, "autonomous_system_organization": "Quad9 test"},
    )
    path = tmp_path_factory.mktemp("mmdb") / "test.mmdb"
    writer.to_db_file(str(path))
    return path


@pytest.fixture(scope="module")
def mmdb_locator(mmdb_file):
    """mmdb first, geoip2fast for what the mmdb lacks (a second full load)."""
    loc = GeoLocator(mmdb_path=mmdb_file)
    loc.load()
    yield loc
    loc.close()


def test_geoinfo_not_found_is_all_none():
    assert GeoInfo(None, None, None, None) == NOT_FOUND
    assert not NOT_FOUND.found
    assert GOOGLE_V4.found


def test_default_path_is_the_bundled_asn_ipv6_file():
    path = geo.default_geoip2fast_path()
    assert path.name == "geoip2fast-asn-ipv6.dat.gz"
    assert path.is_file()


def test_lookup_well_known_ipv4(locator):
    assert locator.lookup("8.8.8.8") == GOOGLE_V4
    assert locator.lookup("1.1.1.1") == CLOUDFLARE_V4
    assert locator.lookup("9.9.9.9") == QUAD9


def test_lookup_well_known_ipv6(locator):
    assert locator.lookup("2001:4860:4860::8888") == GOOGLE_V6
    assert locator.lookup("2606:4700:4700::1111") == CLOUDFLARE_V6


def test_lookup_ipv4_mapped_ipv6_uses_the_ipv4_answer(locator):
    assert locator.lookup("::ffff:8.8.8.8") == GOOGLE_V4


def test_lookup_ignores_an_ipv6_zone_id(locator):
    assert locator.lookup("2001:4860:4860::8888%eth0") == GOOGLE_V6


def test_lookup_strips_whitespace(locator):
    assert locator.lookup(" 8.8.8.8\n") == GOOGLE_V4


def test_lookup_as_outside_any_as_range_is_none(locator):
    # 129.72.0.0/16 belongs to an AS, 129.73.0.0/16 does not (geoip2fast's own lookup
    # wrongly stretches the previous AS range over such gaps in the IPv6 data file).
    assert locator.lookup("129.72.1.1").as_name == "WN-WY-AS"
    info = locator.lookup("129.73.102.117")
    assert info.country_code == "DE"
    assert info.as_name is None


@pytest.mark.parametrize("ip", PRIVATE_AND_SPECIAL)
def test_lookup_private_and_special_ranges_are_not_found(locator, ip):
    assert locator.lookup(ip) == NOT_FOUND


@pytest.mark.parametrize("ip", GARBAGE)
def test_lookup_garbage_is_not_found(locator, ip):
    assert locator.lookup(ip) == NOT_FOUND


@pytest.mark.parametrize("value", [None, 8, b"8.8.8.8", ["8.8.8.8"]])
def test_lookup_non_string_is_not_found(locator, value):
    assert locator.lookup(value) == NOT_FOUND


def test_lookup_many_maps_each_distinct_address(locator):
    result = locator.lookup_many(["8.8.8.8", "10.0.0.1", "8.8.8.8", "nonsense"])
    assert result == {"8.8.8.8": GOOGLE_V4, "10.0.0.1": NOT_FOUND, "nonsense": NOT_FOUND}


def test_lookup_is_cached_per_instance(locator):
    locator.cache_clear()
    locator.lookup("8.8.4.4")
    locator.lookup("8.8.4.4")
    info = locator.cache_info()
    assert (info.hits, info.misses, info.maxsize) == (1, 1, geo.DEFAULT_CACHE_SIZE)
    assert GeoLocator(use_geoip2fast=False).cache_info().currsize == 0


def test_describe_names_the_data_set(locator):
    assert locator.describe() == "geoip2fast:MAXMIND:GeoLite2-CountryASN-IPv4IPv6-en-20240618"


def test_locator_uses_no_network_in_a_fresh_process():
    # An audit hook sees every socket, DNS and urllib call, even ones a library would swallow.
    script = """
import json, sys
events = []
def hook(event, args):
    if event.startswith(("socket.", "urllib.", "http.", "ftplib.", "smtplib.")):
        events.append(event)
        raise RuntimeError("network use: " + event)
sys.addaudithook(hook)
from jails.history.geo import GeoLocator
loc = GeoLocator()
info = loc.lookup_many(["8.8.8.8", "2001:4860:4860::8888", "10.0.0.1"])
rows = {k: [v.country_code, v.country_name, v.asn, v.as_name] for k, v in info.items()}
print(json.dumps({"events": events, "info": rows}))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["events"] == []
    assert out["info"] == {
        "8.8.8.8": ["US", "United States", None, "GOOGLE"],
        "2001:4860:4860::8888": ["US", "United States", None, "GOOGLE"],
        "10.0.0.1": [None, None, None, None],
    }


def test_locator_works_with_sockets_disabled(monkeypatch, mmdb_file):
    def refuse(*args, **kwargs):
        raise AssertionError("network used")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    loc = GeoLocator(mmdb_path=mmdb_file, use_geoip2fast=False)
    assert loc.lookup("8.8.8.8") == GeoInfo("DE", "Germany", 64500, "Example AS")
    loc.close()


def test_mmdb_values_are_read(mmdb_file):
    loc = GeoLocator(mmdb_path=mmdb_file, use_geoip2fast=False)
    assert loc.lookup("8.8.8.8") == GeoInfo("DE", "Germany", 64500, "Example AS")
    assert loc.lookup("2001:4860:4860::8888") == GeoInfo("DE", "Germany", 64500, "Example AS")
    assert loc.lookup("1.1.1.1") == GeoInfo("FR", "France", None, None)
    assert loc.lookup("9.9.9.9") == GeoInfo(None, None, 19281, "Quad9 test")
    assert loc.lookup("4.4.4.4") == NOT_FOUND
    assert loc.lookup("10.0.0.1") == NOT_FOUND
    loc.close()


def test_mmdb_takes_precedence_over_geoip2fast(mmdb_locator):
    assert mmdb_locator.lookup("8.8.8.8") == GeoInfo("DE", "Germany", 64500, "Example AS")
    assert mmdb_locator.lookup("2001:4860:4860::8888") == GeoInfo(
        "DE", "Germany", 64500, "Example AS"
    )


def test_mmdb_missing_fields_fall_back_to_geoip2fast(mmdb_locator):
    assert mmdb_locator.lookup("1.1.1.1") == GeoInfo("FR", "France", None, "CLOUDFLARENET")
    assert mmdb_locator.lookup("9.9.9.9") == GeoInfo("US", "United States", 19281, "Quad9 test")
    assert mmdb_locator.lookup("2606:4700:4700::1111") == CLOUDFLARE_V6


def test_mmdb_separate_country_and_asn_files_are_combined(tmp_path):
    country = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    country.insert_network(
        IPSet(["5.5.0.0/16"]), {"country": {"iso_code": "NL", "names": {"en": "Netherlands"}}}
    )
    country.to_db_file(str(tmp_path / "country.mmdb"))
    asn = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    asn.insert_network(
        IPSet(["5.5.5.0/24"]),
        {"autonomous_system_number": 65001, "autonomous_system_organization": "Five"},
    )
    asn.to_db_file(str(tmp_path / "asn.mmdb"))
    loc = GeoLocator(
        mmdb_path=[tmp_path / "country.mmdb", tmp_path / "asn.mmdb"], use_geoip2fast=False
    )
    assert loc.lookup("5.5.5.5") == GeoInfo("NL", "Netherlands", 65001, "Five")
    assert loc.describe() == "mmdb:GeoLite2-Country, mmdb:GeoLite2-ASN"
    loc.close()


def test_mmdb_missing_file_raises_geo_data_error(tmp_path):
    loc = GeoLocator(mmdb_path=tmp_path / "missing.mmdb", use_geoip2fast=False)
    with pytest.raises(GeoDataError):
        loc.load()
    # Input that cannot be looked up never touches the data, so it still answers.
    assert loc.lookup("not an ip") == NOT_FOUND


def test_load_happens_once_under_concurrency(monkeypatch, mmdb_file):
    opened = []
    real_open = maxminddb.open_database

    def counting_open(path, *args, **kwargs):
        opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(geo.maxminddb, "open_database", counting_open)
    loc = GeoLocator(mmdb_path=mmdb_file, use_geoip2fast=False)
    assert not loc.is_loaded
    results = []
    barrier = threading.Barrier(8)

    def work():
        barrier.wait()
        results.append(loc.lookup("8.8.8.8"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(opened) == 1
    assert results == [GeoInfo("DE", "Germany", 64500, "Example AS")] * 8
    assert loc.is_loaded
    loc.close()
    assert not loc.is_loaded


def test_geoip2fast_loader_refuses_classes_in_the_data_file(tmp_path):
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.dat.gz"
    with gzip.open(path, "wb") as fh:
        pickle.dump((120, {"country": True, "asn": True}, 1, Evil()), fh)
    with pytest.raises(GeoDataError):
        geo.load_geoip2fast_data(path)
    assert not marker.exists()


def test_geoip2fast_loader_rejects_a_non_asn_data_file():
    country_only = geo.default_geoip2fast_path().with_name("geoip2fast.dat.gz")
    with pytest.raises(GeoDataError, match="not a country\\+ASN"):
        geo.load_geoip2fast_data(country_only)


def test_geoip2fast_loader_rejects_garbage(tmp_path):
    path = tmp_path / "garbage.dat.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(GeoDataError):
        geo.load_geoip2fast_data(path)
