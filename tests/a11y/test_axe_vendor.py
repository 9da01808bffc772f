"""The axe-core fetcher keeps only a tarball whose sha512 is the pinned integrity."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile

import pytest

from tests.support.axe import axe_fetch

# No test database here (README, "Tests": the PostgreSQL pass leaves these out).
pytestmark = pytest.mark.no_site_database


def tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def test_axe_fetch_unpacks_the_script_and_licence_of_a_matching_tarball(tmp_path):
    data = tarball(
        {"package/axe.min.js": b"window.axe={}", "package/LICENSE": b"MPL", "package/x.js": b"?"}
    )
    (tmp_path / "axe.tgz").write_bytes(data)
    target = tmp_path / "vendor"
    script = axe_fetch(
        url=(tmp_path / "axe.tgz").as_uri(), integrity=integrity(data), target=target
    )
    assert script.read_bytes() == b"window.axe={}"
    assert sorted(p.name for p in target.iterdir()) == ["LICENSE", "axe.min.js"]


def test_axe_fetch_refuses_a_tarball_that_does_not_match_the_pin(tmp_path):
    data = tarball({"package/axe.min.js": b"window.axe={}"})
    (tmp_path / "axe.tgz").write_bytes(data)
    target = tmp_path / "vendor"
    with pytest.raises(SystemExit, match="does not match"):
        axe_fetch(
            url=(tmp_path / "axe.tgz").as_uri(), integrity=integrity(data + b"x"), target=target
        )
    assert not target.exists()
