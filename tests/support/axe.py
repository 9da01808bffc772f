"""axe-core for the accessibility tests: fetched once from the npm registry, never served.

    .venv/bin/python -m tests.support.axe      # `make test-install` runs this

The pinned tarball is checked against the registry's `integrity` (sha512) before anything in
it is used, and only `axe.min.js` and its licence are kept, in .test-vendor/ (git-ignored;
not var/, which is the site's own). The tests inject the script into each page through
Playwright (`page.add_script_tag(content=...)`, which the Content Security Policy does not
see), so no page of the site ever links it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AXE_VERSION = "4.14.1"
# `npm view axe-core@4.14.1 dist.integrity`
AXE_INTEGRITY = (
    "sha512-"
    "FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
)
AXE_URL = f"https://registry.npmjs.org/axe-core/-/axe-core-{AXE_VERSION}.tgz"
VENDOR_DIR = ROOT / ".test-vendor" / f"axe-core-{AXE_VERSION}"
AXE_SCRIPT = VENDOR_DIR / "axe.min.js"
KEEP = {"package/axe.min.js": "axe.min.js", "package/LICENSE": "LICENSE"}


def integrity_matches(data: bytes, integrity: str) -> bool:
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512":
        return False
    return base64.b64encode(hashlib.sha512(data).digest()).decode() == expected


def axe_fetch(
    *, url: str = AXE_URL, integrity: str = AXE_INTEGRITY, target: Path = VENDOR_DIR
) -> Path:
    """Download, verify and unpack axe.min.js into `target` unless it is there already."""
    script = target / "axe.min.js"
    if script.exists():
        return script
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (fixed https URL)
        data = response.read()
    if not integrity_matches(data, integrity):
        raise SystemExit(f"{url}: sha512 does not match the pinned integrity {integrity}")
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        files = {}
        for member in archive.getmembers():
            extracted = archive.extractfile(member) if member.name in KEEP else None
            if extracted is not None:
                files[KEEP[member.name]] = extracted.read()
    if "axe.min.js" not in files:
        raise SystemExit(f"{url}: no package/axe.min.js in the tarball")
    # The script last, each under a temporary name then renamed: an interrupted run leaves
    # no axe.min.js that the next run would take as installed.
    for name in sorted(files, key=lambda n: n == "axe.min.js"):
        partial = target / f".{name}.partial"
        partial.write_bytes(files[name])
        partial.replace(target / name)
    return script


if __name__ == "__main__":
    print(axe_fetch(), file=sys.stderr)
