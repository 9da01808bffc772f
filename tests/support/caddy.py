"""A private Caddy for tests: Debian's binary, the shipped deploy/caddy/Caddyfile.

The test's global options keep it to one temp directory: no admin endpoint, its own storage
and internal certificate authority (never installed into the system's trust store), no
HTTP-to-HTTPS listener on port 80. The site block is the shipped one with the test's address
for the host name (and `tls internal` for the certificate a public name would get) and the
test's gunicorn as upstream.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CADDYFILE = ROOT / "deploy" / "caddy" / "Caddyfile"
CADDY = shutil.which("caddy") or "/usr/bin/caddy"
SNIPPET_VALUES = {"f2b.example.org {": 1, "reverse_proxy 127.0.0.1:8000": 1}


def caddyfile_render(*, port: int, upstream: str, data: Path) -> str:
    """deploy/caddy/Caddyfile for this test: global options, address, upstream."""
    text = CADDYFILE.read_text()
    for value, count in SNIPPET_VALUES.items():
        assert text.count(value) == count, f"{CADDYFILE.name}: {value!r} not found {count}x"
    options = f"""{{
\tadmin off
\tskip_install_trust
\tauto_https disable_redirects
\tdefault_sni 127.0.0.1
\tstorage file_system {data}
}}
"""
    site = f"https://127.0.0.1:{port} {{\n\ttls internal"
    return options + text.replace("f2b.example.org {", site).replace(
        "reverse_proxy 127.0.0.1:8000", f"reverse_proxy {upstream}"
    )


@contextmanager
def caddy_serving(directory: Path, *, port: int, upstream: str) -> Iterator[Path]:
    """Caddy with the shipped Caddyfile on 127.0.0.1:`port`; yields its root certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "data"
    config = directory / "Caddyfile"
    config.write_text(caddyfile_render(port=port, upstream=upstream, data=data))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(directory),
        "XDG_DATA_HOME": str(directory / "xdg-data"),
        "XDG_CONFIG_HOME": str(directory / "xdg-config"),
    }
    command = [CADDY, "run", "--config", str(config), "--adapter", "caddyfile"]
    log_path = directory / "caddy.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    root = data / "pki" / "authorities" / "local" / "root.crt"
    try:
        # Caddy binds the port, then makes its authority and the site's certificate: ready
        # once a TLS handshake checked against that authority succeeds (a loaded box is slow).
        deadline = time.monotonic() + 60
        while True:
            try:
                context = ssl.create_default_context(cafile=str(root))
                with (
                    socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                    context.wrap_socket(raw, server_hostname="127.0.0.1"),
                ):
                    break
            except (OSError, ssl.SSLError):  # not listening, no authority or certificate yet
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log_path.read_text()[-3000:])
            time.sleep(0.05)
        yield root
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
