"""scripts/mutation_sample.py: a uniform sample of mutmut's results, scored with its interval.

Run as the README says, as a program, over a mutants/ directory laid out as mutmut lays one
out (a .meta file per mutated module, `exit_code_by_key`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "mutation_sample.py"


def run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def mutants_dir(tmp_path: Path, codes: dict[str, dict[str, int | None]]) -> Path:
    for module, by_key in codes.items():
        meta = tmp_path / "mutants" / (module.replace(".", "/") + ".py.meta")
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps({"exit_code_by_key": by_key}))
    return tmp_path / "mutants"


def test_pick_and_score_a_sample_with_its_interval(tmp_path):
    codes = {
        "jails.fail2ban.validation": {
            f"jails.fail2ban.validation.x_parse_ip__mutmut_{n}": (1 if n % 5 else 0)
            for n in range(1, 101)
        },
        "jails.agent.client": {
            **{f"jails.agent.client.xǁAgentLinkǁhealth__mutmut_{n}": 1 for n in range(1, 41)},
            **{f"jails.agent.client.xǁAgentLinkǁhealth__mutmut_{n}": None for n in range(41, 51)},
            "jails.agent.client.x_describe__mutmut_1": 33,
            "jails.agent.client.x_describe__mutmut_2": -24,
        },
    }
    mutants = mutants_dir(tmp_path, codes)
    everything = str(sum(len(by_key) for by_key in codes.values()))
    # The whole set as the "sample": 80 + 40 + 1 caught (timeout), 20 + 1 not caught.
    report = run("score", everything, "--mutants", str(mutants))
    assert report.splitlines()[-1] == (
        "caught 121 of 142 judged: 85.2 % (95 % interval 78.4-90.1 %); not run 10"
    )
    assert "jails.agent.client                97.6 %" in report
    assert "jails.fail2ban.validation         80.0 %" in report
    # pick names only what has no result yet; --again adds survivors and no-tests.
    assert sorted(run("pick", everything, "--mutants", str(mutants)).split()) == sorted(
        f"jails.agent.client.xǁAgentLinkǁhealth__mutmut_{n}" for n in range(41, 51)
    )
    again = run("pick", everything, "--again", "--mutants", str(mutants)).split()
    assert len(again) == 10 + 20 + 1
    # A sample is the same for the same seed, kept in --sample-file, and another seed differs.
    kept = tmp_path / "sample.txt"
    first = run("score", "30", "--mutants", str(mutants), "--sample-file", str(kept))
    assert len(kept.read_text().split()) == 30
    assert run("score", "30", "--mutants", str(mutants)) == first
    assert run("score", "30", "--seed", "7", "--mutants", str(mutants)) != first


def test_without_mutants_it_says_to_run_mutmut_first(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "score", "10", "--mutants", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "run `make mutation` first" in done.stderr
