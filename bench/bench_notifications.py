"""Notifications benchmark: evaluating every rule over 10 000 new bans; pages while delivering.

    .venv/bin/python bench/bench_notifications.py [--repeat 7] [--pages-repeat 30]

Everything runs in a throw-away directory whatever JAILADMIN_* says (bench/common.py).

1. Seeds the archive with 50 000 older bans (30 days, 20 jails) and 10 000 new ones (the
   last 10 minutes; a third from addresses already archived, some from a watched country),
   and one rule of every kind (burst overall and per jail, repeat offender within 7 days or
   in 3 jails, countries and networks, fail2ban unreachable, blocklist failures, digest),
   each with a webhook channel and a subscriber.
2. Times `rules_evaluate` over the 10 000 new bans (cursors reset before each run; median
   of --repeat), against a floor: a plain SQL `COUNT(*)` of the same rows. Goal ≤ 1 s.
3. Times pages (dashboard, /notifications/, the delivery log) idle, then while a second
   process evaluates the 10 000-ban burst and delivers its messages to a local webhook
   receiver (a third process) over and over (the worst case: the job runner does this once
   a minute). --child-nice N runs that process at niceness N, as `Nice=` in the job
   runner's systemd unit would. Goal: ratio ≤ 1.1.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import django_setup, median_ms, print_table, ratio  # noqa: E402

OLD_EVENTS = 50_000
NEW_EVENTS = 10_000
JAILS = [f"jail-{n:02d}" for n in range(20)]
EVALUATE_GOAL_S = 1.0
PAGE_RATIO_GOAL = 1.1

RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def _ip(n: int) -> str:
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255 or 1}"


def seed(now: int) -> int:
    """Archive the old and new bans; returns the last old id (the rules' cursor)."""
    from jails.history.models import BanEvent

    rnd = random.Random(7)
    old = [
        BanEvent(
            jail=rnd.choice(JAILS),
            ip=_ip(n % 20_000 + 1),
            network="10.0.0.0/24",
            timeofban=now - rnd.randrange(86400, 30 * 86400),
            bantime=600,
            country_code=rnd.choice(["DE", "FR", "US", "BR"]),
        )
        for n in range(OLD_EVENTS)
    ]
    BanEvent.objects.bulk_create(old, batch_size=5000, ignore_conflicts=True)
    cursor = BanEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    new = [
        BanEvent(
            jail=rnd.choice(JAILS),
            # A third again from archived addresses (repeat offenders), the rest new.
            ip=_ip(rnd.randrange(1, 20_000) if n % 3 == 0 else 100_000 + n),
            network="10.0.0.0/24",
            timeofban=now - rnd.randrange(0, 600),
            bantime=600,
            country_code="CN" if n % 10 == 0 else "US",
        )
        for n in range(NEW_EVENTS)
    ]
    BanEvent.objects.bulk_create(new, batch_size=5000, ignore_conflicts=True)
    return cursor


def rules_make(webhook_url: str) -> None:
    from django.contrib.auth import get_user_model

    from jails.notifications.models import Channel, Rule

    channel = Channel.objects.create(name="hook", kind="webhook", target=webhook_url, secret="k")
    user = get_user_model().objects.create_user("subscriber", email="sub@example.test")
    specs = [
        ("burst-all", "burst", {"threshold": 100, "minutes": 10}),
        ("burst-jail", "burst", {"threshold": 100, "minutes": 10, "per_jail": True}),
        ("repeat", "repeat", {"days": 7, "min_jails": 3}),
        ("origin", "origin", {"countries": ["CN"], "networks": ["10.1.0.0/16"]}),
        ("down", "down", {"minutes": 5}),
        ("blocklist", "blocklist", {}),
        ("digest", "digest", {"period": "daily"}),
    ]
    for name, kind, params in specs:
        rule = Rule.objects.create(name=name, kind=kind, params=params, rate_limit_minutes=0)
        rule.channels.add(channel)
        rule.subscribers.add(user)


def rules_reset(cursor: int) -> None:
    """Every rule back before the 10 000 new bans, with an empty outbox."""
    from jails.notifications.models import Notification, Rule

    Notification.objects.all().delete()
    Rule.objects.update(cursor=cursor, memory={}, last_fired_at=None)
    # The digest has "sent" the period before yesterday: this run sends yesterday's.
    from jails.notifications.services.rules import digest_period

    start, _ = digest_period(datetime.now(UTC) - timedelta(days=1), "daily")
    for rule in Rule.objects.filter(kind="digest"):
        rule.memory = {"sent_period": start}
        rule.save(update_fields=["memory"])


def evaluate_once(cursor: int) -> tuple[float, int]:
    from django.apps import apps

    from jails.notifications.services.delivery import DeliveryConfig
    from jails.notifications.services.rules import rules_evaluate

    rules_reset(cursor)
    state = apps.get_app_config("jails").state
    start = time.perf_counter()
    result = rules_evaluate(state, now=datetime.now(UTC), config=DeliveryConfig())
    return time.perf_counter() - start, result.queued


def child(work: Path, cursor: int) -> None:
    """The delivering process: evaluate the burst and deliver its messages, over and over."""
    from jails.notifications.services.delivery import DeliveryConfig, outbox_deliver

    config = DeliveryConfig(timeout=5.0)
    rounds = 0
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    while not stop:
        evaluate_once(cursor)
        outbox_deliver(now=datetime.now(UTC), owner="bench", config=config)
        rounds += 1
        if rounds == 1:
            print("ready", flush=True)  # the parent measures from here on
    print(f"child rounds: {rounds}", flush=True)


def pages_time(web, repeat: int) -> dict[str, float]:
    from django.urls import reverse

    pages = {
        "dashboard": reverse("jails:dashboard"),
        "notifications": reverse("jails:notifications:index"),
        "delivery log": reverse("jails:notifications:log"),
    }
    out = {}
    for name, url in pages.items():

        def get(url: str = url) -> None:
            response = web.get(url)
            assert response.status_code == 200, (url, response.status_code)

        out[name] = median_ms(get, repeat=repeat)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--pages-repeat", type=int, default=30)
    parser.add_argument("--child", metavar="WORKDIR")
    parser.add_argument("--cursor", type=int, default=0)
    parser.add_argument(
        "--child-nice",
        type=int,
        default=0,
        help="Run the delivering process at this niceness (as systemd's Nice= would).",
    )
    args = parser.parse_args()
    if args.child:
        os.nice(args.child_nice)
        django_setup(Path(args.child))
        child(Path(args.child), args.cursor)
        return

    work = django_setup()
    from django.db import connection

    from bench.common import site_client

    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    procs = [receiver]
    try:
        port = int(receiver.stdout.readline())
        now = int(time.time())
        cursor = seed(now)
        rules_make(f"http://127.0.0.1:{port}/hook")
        web = site_client(str(work / "no-fail2ban.sock"))

        samples, queued = [], 0
        for _ in range(args.repeat):
            seconds, queued = evaluate_once(cursor)
            samples.append(seconds)
        evaluate_s = statistics.median(samples)

        def count() -> None:
            with connection.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM history_banevent WHERE id > %s", [cursor])
                cur.fetchone()

        floor_ms = median_ms(count, repeat=args.repeat)
        print_table(
            f"Evaluating 7 rules over {NEW_EVENTS} new bans ({OLD_EVENTS} archived before)",
            [
                ("rules_evaluate (median)", f"{evaluate_s * 1000:8.1f} ms"),
                ("  spread (min-max)", f"{min(samples) * 1000:.0f}-{max(samples) * 1000:.0f} ms"),
                ("  messages queued", f"{queued}"),
                ("plain SELECT COUNT(*) of the rows", f"{floor_ms:8.2f} ms"),
                ("ratio", ratio(evaluate_s * 1000, floor_ms)),
                ("goal", f"≤ {EVALUATE_GOAL_S:.0f} s: {'met' if evaluate_s <= 1 else 'MISSED'}"),
            ],
        )

        idle = pages_time(web, args.pages_repeat)
        env = dict(os.environ)
        child_proc = subprocess.Popen(
            [
                *(sys.executable, __file__, "--child", str(work), "--cursor", str(cursor)),
                *("--child-nice", str(args.child_nice)),
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(child_proc)
        if child_proc.stdout.readline().strip() != "ready":
            raise SystemExit("the delivering process failed to start (see its error above)")
        busy = pages_time(web, args.pages_repeat)
        if child_proc.poll() is not None:
            raise SystemExit("the delivering process ended during the measurement")
        child_proc.send_signal(signal.SIGTERM)
        out, _ = child_proc.communicate(timeout=120)
        rows = []
        for name in idle:
            rows.append(
                (
                    name,
                    f"idle {idle[name]:7.1f} ms, delivering {busy[name]:7.1f} ms, "
                    f"{ratio(busy[name], idle[name])}",
                )
            )
        rows.append(("delivering process", out.strip()))
        print_table(
            "Pages while a 10 000-ban burst is evaluated and delivered"
            f" (delivering process at nice {args.child_nice})",
            rows,
        )
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)


if __name__ == "__main__":
    main()
