"""A screenshot of the dashboard with headless Chromium (real gunicorn, real fail2ban)."""

from __future__ import annotations

import shutil
import struct
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium"),
]


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_dashboard_screenshot_is_saved_and_the_page_is_clean(tmp_path):
    pytest.importorskip("playwright")
    sys.path.insert(0, str(REPO / "scripts"))
    from screenshot_dashboard import take_screenshots

    report = take_screenshots(tmp_path, events=8000, addresses=3000)
    dashboard = report["shots"]["dashboard"]
    width, height = png_size(Path(dashboard["file"]))
    assert width == 1440 and height > 1500  # the whole page, not a blank viewport
    assert dashboard["map_countries"] > 150 and dashboard["shaded_countries"] > 10
    assert dashboard["svgs"] >= 4  # trend, jails, countries, map
    # No script error and no Content Security Policy violation (only a missing favicon).
    problems = [m for m in report["console"] if "404" not in m]
    assert problems == []
    # Kept for a person to look at, next to the other test artifacts.
    artifacts = REPO / "artifacts"
    artifacts.mkdir(exist_ok=True)
    shutil.copyfile(dashboard["file"], artifacts / "dashboard-test.png")
