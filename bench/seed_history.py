"""Seed a ban archive: 1 000 000 ban events over a year, 20 jails, 200 000 addresses.

    .venv/bin/python bench/seed_history.py --db /tmp/some-dir/history.sqlite3 [--events N]
    .venv/bin/python bench/seed_history.py --url postgres://…/bench_history_x [--events N]

Writes a separate SQLite database, or an empty throw-away PostgreSQL database the caller
made (`bench_…`, in the private cluster; bench/bench_history.py), never the site's own:
every JAILADMIN_* setting is pointed into a throw-away directory (bench/common.py), then
builds the summaries with the same code the sync uses for a repair. Addresses are random
public IPv4 (and 10% IPv6) addresses, located with the bundled offline geo data, so the
countries and AS names are real ones. A few addresses are heavy hitters (banned hundreds
of times), most are banned once or twice, like real attack traffic.
"""

from __future__ import annotations

import argparse
import atexit
import ipaddress
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
JAILS = [
    "sshd",
    "nginx-http-auth",
    "postfix",
    "dovecot",
    "recidive",
    "nginx-botsearch",
    "apache-auth",
    "postfix-sasl",
    "proftpd",
    "vsftpd",
    "named-refused",
    "asterisk",
    "mysqld-auth",
    "sogo-auth",
    "roundcube-auth",
    "wordpress",
    "gitlab",
    "grafana",
    "openvpn",
    "courier-auth",
]
V6_PREFIXES = ["2a01:4f8", "2400:cb00", "2800:3f0", "2c0f:fb50", "2a02:598", "2604:a880", "240e:"]


def setup_django(work: Path, url: str) -> None:
    sys.path.insert(0, str(REPO))
    from bench.common import isolate_environment

    isolate_environment(work)
    os.environ["JAILADMIN_DATABASE_URL"] = url
    import django

    django.setup()


def random_public_ipv4(rng: random.Random) -> str:
    while True:
        address = ipaddress.IPv4Address(rng.getrandbits(32))
        if address.is_global and not address.is_multicast and not address.is_reserved:
            return str(address)


def random_ipv6(rng: random.Random) -> str:
    prefix = rng.choice(V6_PREFIXES)
    groups = ":".join(f"{rng.randrange(0x10000):x}" for _ in range(4))
    text = f"{prefix}::{groups}" if not prefix.endswith(":") else f"{prefix}{groups}::1"
    return str(ipaddress.ip_address(text))


def make_addresses(rng: random.Random, count: int) -> list[str]:
    addresses: set[str] = set()
    while len(addresses) < count:
        if rng.random() < 0.1:
            addresses.add(random_ipv6(rng))
        else:
            # Attackers cluster: a quarter of the addresses share a few thousand /24s.
            if rng.random() < 0.25 and addresses:
                base = random_public_ipv4(rng).rsplit(".", 1)[0]
                addresses.add(f"{base}.{rng.randrange(1, 255)}")
            addresses.add(random_public_ipv4(rng))
    return list(addresses)[:count]


def seed(*, events: int, addresses: int, days: int, now: int, seed_value: int = 7) -> None:
    from django.db import connection, transaction

    from jails.history.geo import GeoLocator
    from jails.history.models import BanEvent
    from jails.history.services.summaries import summaries_rebuild
    from jails.history.services.sync import network_of

    rng = random.Random(seed_value)
    started = time.perf_counter()
    ips = make_addresses(rng, addresses)
    geo = GeoLocator().lookup_many(ips)
    print(f"{len(ips)} addresses located in {time.perf_counter() - started:.1f} s")
    # Jails and addresses are drawn from skewed distributions: a few jails and a few
    # addresses take most bans. Every address gets at least one ban.
    jail_weights = [1 / (i + 1) ** 1.1 for i in range(len(JAILS))]
    span = days * 86400
    table = BanEvent._meta.db_table
    columns = (
        "jail, ip, network, timeofban, bantime, bancount, failures, matches, origin, "
        "banned_by, country_code, country_name, asn, as_name, archived_at"
    )
    # ON CONFLICT DO NOTHING: SQLite's INSERT OR IGNORE, in the SQL PostgreSQL speaks too.
    placeholders = ", ".join(["%s"] * 15)
    sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) ON CONFLICT DO NOTHING"
    archived_at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now))
    rows = []
    written = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for n in range(events):
            # Every address once, then a heavy tail: a few addresses take most bans.
            ip = ips[n] if n < len(ips) else ips[int(len(ips) * rng.random() ** 4)]
            jail = rng.choices(JAILS, weights=jail_weights)[0]
            age = rng.randrange(span)
            when = now - age
            roll = rng.random()
            origin = "jail" if roll < 0.93 else ("manual" if roll < 0.98 else "blocklist")
            failures = rng.randint(3, 8) if origin == "jail" else 0
            matches = "\n".join(
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(when - k))} "
                f"{jail}: AUTH FAIL user=admin{k} from {ip}"
                for k in range(min(failures, 3))
            )
            info = geo[ip]
            rows.append(
                (
                    jail,
                    ip,
                    network_of(ip),
                    when,
                    600 if jail != "recidive" else 604800,
                    1 + (n % 7 == 0),
                    failures,
                    matches,
                    origin,
                    "admin" if origin == "manual" else "",
                    info.country_code or "",
                    (info.country_name or "")[:64],
                    info.asn,
                    (info.as_name or "")[:255],
                    archived_at,
                )
            )
            if len(rows) >= 20000:
                cursor.executemany(sql, rows)
                written += len(rows)
                rows = []
                if written % 200000 == 0:
                    print(f"  {written} events written ({time.perf_counter() - started:.0f} s)")
        cursor.executemany(sql, rows)
        # Draws that repeated a (jail, address, time) key were ignored: top up to the count.
        while (missing := events - BanEvent.objects.count()) > 0:
            extra = []
            for _ in range(missing):
                ip = rng.choice(ips)
                info = geo[ip]
                when = now - rng.randrange(span)
                extra.append(
                    (
                        rng.choice(JAILS),
                        ip,
                        network_of(ip),
                        when,
                        600,
                        1,
                        3,
                        "top-up",
                        "jail",
                        "",
                        info.country_code or "",
                        (info.country_name or "")[:64],
                        info.asn,
                        (info.as_name or "")[:255],
                        archived_at,
                    )
                )
            cursor.executemany(sql, extra)
    print(f"{BanEvent.objects.count()} events in {time.perf_counter() - started:.1f} s")
    step = time.perf_counter()
    summaries_rebuild()
    print(f"summaries built in {time.perf_counter() - step:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", type=Path, help="an SQLite file (replaced)")
    where.add_argument("--url", help="an empty throw-away PostgreSQL database (bench_…)")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--addresses", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    if args.db is not None:
        if args.db.exists():
            args.db.unlink()
        setup_django(args.db.parent, f"sqlite:///{args.db}")
    else:
        if not args.url.rsplit("/", 1)[-1].startswith("bench_"):
            raise SystemExit(f"refusing to seed {args.url}: not a bench_ database")
        work = Path(tempfile.mkdtemp(prefix="jailadmin-seed-"))
        atexit.register(shutil.rmtree, work, ignore_errors=True)
        setup_django(work, args.url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    seed(events=args.events, addresses=args.addresses, days=args.days, now=int(time.time()))


if __name__ == "__main__":
    main()
