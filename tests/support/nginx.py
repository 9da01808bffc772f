"""A private nginx for tests: Debian's binary, the shipped deploy/nginx/jailadmin.conf.

Everything lives in one temp directory: the main configuration, the pid file, the logs, the
temp directories and a self-signed certificate made with the openssl CLI. It listens on a
free loopback port; the system's nginx service, configuration and logs are never touched.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SNIPPET = ROOT / "deploy" / "nginx" / "jailadmin.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# What the shipped snippet says for a real host, and how many times; the tests substitute
# each (a changed snippet fails loudly here instead of being half-rendered).
SNIPPET_VALUES = {
    "listen 443 ssl;": 1,
    "/etc/letsencrypt/live/f2b.example.org/fullchain.pem": 1,
    "/etc/letsencrypt/live/f2b.example.org/privkey.pem": 1,
    "proxy_pass http://127.0.0.1:8000;": 1,
}


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


def certificate_make(directory: Path, *, host: str = "127.0.0.1") -> Certificate:
    """A self-signed certificate for `host` (an IP address), valid for two days."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={host}",
            "-addext",
            f"subjectAltName=IP:{host}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return Certificate(cert=cert, key=key)


def snippet_render(*, port: int, upstream: str, certificate: Certificate) -> str:
    """deploy/nginx/jailadmin.conf for this test: loopback port, certificate, upstream."""
    text = SNIPPET.read_text()
    for value, count in SNIPPET_VALUES.items():
        assert text.count(value) == count, f"{SNIPPET.name}: {value!r} not found {count}x"
    return (
        text.replace("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
        .replace("/etc/letsencrypt/live/f2b.example.org/fullchain.pem", str(certificate.cert))
        .replace("/etc/letsencrypt/live/f2b.example.org/privkey.pem", str(certificate.key))
        .replace("proxy_pass http://127.0.0.1:8000;", f"proxy_pass http://{upstream};")
    )


def _main_config(directory: Path, site: Path) -> str:
    # Like Debian's /etc/nginx/nginx.conf, reduced to what the site needs, with every path in
    # `directory`. One process (no master): as root, nginx's workers would switch to the
    # `nobody` user, which cannot read a test's private temp directory.
    return f"""
daemon off;
master_process off;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    access_log {directory}/access.log;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    include {site};
}}
"""


@contextmanager
def nginx_serving(
    directory: Path, *, port: int, upstream: str, certificate: Certificate
) -> Iterator[subprocess.Popen[bytes]]:
    """nginx with the shipped snippet on 127.0.0.1:`port`, until the block ends."""
    directory.mkdir(parents=True, exist_ok=True)
    site = directory / "jailadmin.conf"
    site.write_text(snippet_render(port=port, upstream=upstream, certificate=certificate))
    main = directory / "nginx.conf"
    main.write_text(_main_config(directory, site))
    # -e: nginx writes to its compiled-in error log (/var/log/nginx) before it has read the
    # configuration; this keeps even that in the directory.
    command = [NGINX, "-p", str(directory), "-c", str(main), "-e", str(directory / "error.log")]
    test = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=60)
    assert test.returncode == 0, test.stderr
    log = (directory / "nginx.out").open("wb")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        # nginx binds its port before it serves; on a loaded box that may take a moment.
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((directory / "error.log").read_text()[-3000:]) from None
                time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
