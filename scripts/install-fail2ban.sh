#!/usr/bin/env bash
# Unpack Debian's fail2ban package (and pyinotify) into DEST without installing it:
# no system service is started, no system configuration or firewall is touched.
# DEST/bin/ gets small wrappers that run the unpacked programs with Debian's python3.
#
#   install-fail2ban.sh [DEST] [RELEASE]
#
# Without RELEASE: the machine's own Debian release (1.0.2 on Debian 12), through the
# system's apt configuration. With RELEASE (e.g. `trixie`, Debian 13's fail2ban 1.1.0):
# a private apt configuration under DEST's parent directory (apt-RELEASE/: its own
# sources.list, lists and cache), so the system's apt lists are never touched.
set -euo pipefail
dest=$(realpath -m "${1:-var/fail2ban}")
release=${2:-}
[ -x "$dest/bin/fail2ban-client" ] && exit 0
command -v apt-get >/dev/null || { echo "apt-get not found: install fail2ban yourself" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"

# The Debian mirror this machine already uses (the first non-security URI of either
# sources format), so a host that may only reach its own mirror still works.
debian_mirror() {
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '/^URIs:/ {for (i = 2; i <= NF; i++) if ($i !~ /security/) {print $i; exit}}')
  if [ -z "$uri" ]; then
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) {if ($i !~ /security/) print $i; break}}' \
      | head -n1)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

if [ -z "$release" ]; then
  if ! (cd "$tmp" && apt-get download fail2ban python3-pyinotify >/dev/null 2>&1); then
    apt-get update -qq
    (cd "$tmp" && apt-get download fail2ban python3-pyinotify)
  fi
else
  apt_dir="$(dirname "$dest")/apt-$release"
  mkdir -p "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial" \
    "$apt_dir/sources.list.d" "$apt_dir/preferences.d"
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  echo "deb [signed-by=$keyring] $(debian_mirror) $release main" > "$apt_dir/sources.list"
  # Every path apt writes to is private; preferences are emptied so a system pin cannot
  # pick another version; the sandbox user stays root because _apt may not be able to
  # write into the project directory.
  apt_opts=(
    -o "Dir::State=$apt_dir/state"
    -o "Dir::Cache=$apt_dir/cache"
    -o "Dir::Etc::SourceList=$apt_dir/sources.list"
    -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
    -o "Dir::Etc::Preferences=$apt_dir/preferences"
    -o "Dir::Etc::PreferencesParts=$apt_dir/preferences.d"
    -o "APT::Sandbox::User=root"
  )
  if ! (cd "$tmp" && apt-get "${apt_opts[@]}" download fail2ban python3-pyinotify >/dev/null 2>&1); then
    apt-get "${apt_opts[@]}" update -qq
    (cd "$tmp" && apt-get "${apt_opts[@]}" download fail2ban python3-pyinotify)
  fi
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
