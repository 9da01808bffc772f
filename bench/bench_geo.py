"""Benchmark jails.history.geo: load time, memory and lookups per second.

Run: .venv/bin/python bench/bench_geo.py [--count 100000] [--mmdb PATH]
"""

import argparse
import ipaddress
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jails.history.geo import GeoLocator, public_address  # noqa: E402


def rss_mib() -> float:
    # Linux reports ru_maxrss in KiB; the peak is what a worker must be sized for.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_public_ips(count: int, rng: random.Random) -> list[str]:
    ips: list[str] = []
    while len(ips) < count:
        if rng.random() < 0.5:
            text = str(ipaddress.IPv4Address(rng.getrandbits(32)))
        else:
            # 2000::/3 is where the allocated global unicast space is
            text = str(ipaddress.IPv6Address((0b001 << 125) | rng.getrandbits(125)))
        if public_address(text) is not None:
            ips.append(text)
    return ips


def timed_lookups(locator: GeoLocator, ips: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    found = sum(1 for ip in ips if locator.lookup(ip).found)
    return time.perf_counter() - start, found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--mmdb", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    ips = random_public_ips(args.count, random.Random(args.seed))
    base = rss_mib()
    locator = GeoLocator(mmdb_path=args.mmdb, cache_size=0)
    start = time.perf_counter()
    locator.load()
    load_s = time.perf_counter() - start
    print(f"data:        {locator.describe()}")
    print(f"load:        {load_s:.3f} s, peak RSS +{rss_mib() - base:.0f} MiB")

    elapsed, found = timed_lookups(locator, ips)
    print(
        f"uncached:    {len(ips):,} lookups in {elapsed:.3f} s = {len(ips) / elapsed:,.0f}/s "
        f"({found:,} found)"
    )

    cached = GeoLocator(mmdb_path=args.mmdb, cache_size=len(ips))
    cached.load()
    timed_lookups(cached, ips)
    elapsed, _ = timed_lookups(cached, ips)
    print(f"cache hits:  {len(ips):,} lookups in {elapsed:.3f} s = {len(ips) / elapsed:,.0f}/s")


if __name__ == "__main__":
    main()
