#!/usr/bin/env bash
# Unpack Debian's fail2ban package (and pyinotify) into var/fail2ban without installing it:
# no system service is started, no system configuration or firewall is touched.
set -euo pipefail
dest=${1:-var/fail2ban}
[ -x "$dest/usr/bin/fail2ban-server" ] && exit 0
command -v apt-get >/dev/null || { echo "apt-get not found: install fail2ban yourself" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
cd "$tmp"
if ! apt-get download fail2ban python3-pyinotify >/dev/null 2>&1; then
  apt-get update -qq
  apt-get download fail2ban python3-pyinotify
fi
cd - >/dev/null
mkdir -p "$dest"
for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$dest"; done
PYTHONPATH="$dest/usr/lib/python3/dist-packages" /usr/bin/python3 "$dest/usr/bin/fail2ban-server" --version
