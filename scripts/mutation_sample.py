"""A uniform random sample of mutmut's mutants, and its score with a 95 % interval.

The whole `make mutation` run (about 7 700 mutants of jails/fail2ban/ and jails/agent/) needs
several hours of both cores here: more than one working session on a fresh machine, and
mutmut's results live in mutants/, which a fresh machine does not have. A uniform sample
measures the score of the whole within a known margin in under an hour (README, "Mutation
testing"):

    make mutation MUTANTS='jails.fail2ban.errors*'       # makes every mutant, maps the tests
    make mutation MUTANTS="$(.venv/bin/python scripts/mutation_sample.py pick 1000)"
    .venv/bin/python scripts/mutation_sample.py score 1000

`pick` prints the sample's names that have no result yet (mutmut runs only those; with
`--again`, also its survivors and mutants without tests, to judge them again once tests were
added: mutmut keeps a verdict unless the mutant is named). `score` counts killed and
timed-out mutants as caught, survivors and mutants no test reaches as not caught, and says
how many are not run yet. The same size and seed over the same mutants give the same
sample; `--sample-file` keeps it (written by the first `pick`, read afterwards), so a
change that renumbers some mutants does not redraw it. Standard library only; reads
mutants/**/*.meta as mutmut writes them.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections import Counter
from pathlib import Path

CAUGHT = {1: "killed", -24: "timeout"}
MISSED = {0: "survived", 33: "no tests"}
SEED = 20261202


def results(mutants: Path) -> dict[str, int | None]:
    """Every mutant's exit code (None: not run yet), from mutmut's .meta files."""
    found: dict[str, int | None] = {}
    for meta in sorted(mutants.glob("**/*.meta")):
        found.update(json.loads(meta.read_text())["exit_code_by_key"])
    return found


def sample(names: list[str], size: int, seed: int) -> list[str]:
    return sorted(random.Random(seed).sample(sorted(names), min(size, len(names))))


def wilson(caught: int, judged: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % by default)."""
    if judged == 0:
        return 0.0, 1.0
    p = caught / judged
    centre = (p + z * z / (2 * judged)) / (1 + z * z / judged)
    half = z * math.sqrt(p * (1 - p) / judged + z * z / (4 * judged * judged))
    return centre - half / (1 + z * z / judged), centre + half / (1 + z * z / judged)


def module(name: str) -> str:
    """jails.agent.client.xǁAgentLinkǁhealth__mutmut_3 -> jails.agent.client"""
    return name.split(".x")[0]


def kind(code: int | None) -> str:
    if code is None:
        return "not run"
    return CAUGHT.get(code) or MISSED.get(code) or str(code)


def score(found: dict[str, int | None], names: list[str]) -> str:
    per: dict[str, Counter[str]] = {}
    for name in names:
        per.setdefault(module(name), Counter())[kind(found.get(name))] += 1
    lines = []
    total: Counter[str] = Counter()
    for mod, counts in sorted(per.items()):
        total.update(counts)
        lines.append(f"{mod:32} {_summary(counts)}")
    lines.append(f"{'all':32} {_summary(total)}")
    caught, judged = _tally(total)
    low, high = wilson(caught, judged)
    lines.append(
        f"caught {caught} of {judged} judged: {100 * caught / max(judged, 1):.1f} % "
        f"(95 % interval {100 * low:.1f}-{100 * high:.1f} %); not run {total['not run']}"
    )
    return "\n".join(lines)


def _tally(counts: Counter[str]) -> tuple[int, int]:
    """(caught, judged): judged leaves out what has not run."""
    caught = sum(counts[k] for k in CAUGHT.values())
    return caught, caught + sum(counts[k] for k in MISSED.values())


def _summary(counts: Counter[str]) -> str:
    caught, judged = _tally(counts)
    rate = f"{100 * caught / judged:5.1f} %" if judged else "    - "
    detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return f"{rate}  ({detail})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("pick", "score"))
    parser.add_argument("size", type=int, help="how many mutants the sample holds")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--mutants", type=Path, default=Path("mutants"))
    parser.add_argument("--sample-file", type=Path, help="the sample's names, one a line")
    parser.add_argument("--again", action="store_true", help="pick: survivors and no tests too")
    args = parser.parse_args(argv)
    found = results(args.mutants)
    if not found:
        print(f"no mutants in {args.mutants}/: run `make mutation` first", file=sys.stderr)
        return 2
    if args.sample_file and args.sample_file.exists():
        names = args.sample_file.read_text().split()
    else:
        names = sample(list(found), args.size, args.seed)
        if args.sample_file:
            args.sample_file.write_text("\n".join(names) + "\n")
    if args.action == "pick":
        wanted = {None, *MISSED} if args.again else {None}
        print(" ".join(name for name in names if found.get(name) in wanted))
    else:
        print(score(found, names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
