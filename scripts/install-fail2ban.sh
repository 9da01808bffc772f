#!/usr/bin/env bash
# Unpack Debian's fail2ban package (and pyinotify) into var/fail2ban without installing it:
# no system service is started, no system configuration or firewall is touched.
# var/fail2ban/bin/ gets small wrappers that run the unpacked programs with Debian's python3.
set -euo pipefail
dest=$(realpath -m "${1:-var/fail2ban}")
[ -x "$dest/bin/fail2ban-client" ] && exit 0
command -v apt-get >/dev/null || { echo "apt-get not found: install fail2ban yourself" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
if ! (cd "$tmp" && apt-get download fail2ban python3-pyinotify >/dev/null 2>&1); then
  apt-get update -qq
  (cd "$tmp" && apt-get download fail2ban python3-pyinotify)
fi
mkdir -p "$dest/bin"
for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$dest"; done
for prog in fail2ban-server fail2ban-client fail2ban-regex; do
  cat > "$dest/bin/$prog" <<WRAPPER
#!/bin/sh
PYTHONPATH="$dest/usr/lib/python3/dist-packages" exec /usr/bin/python3 "$dest/usr/bin/$prog" "\$@"
WRAPPER
  chmod 755 "$dest/bin/$prog"
done
"$dest/bin/fail2ban-server" --version
