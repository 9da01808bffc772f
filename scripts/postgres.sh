#!/usr/bin/env bash
# A private PostgreSQL cluster for the tests, the history benchmark and the load test.
#
#   scripts/postgres.sh start          start it (initdb first if needed); a no-op if it runs
#   scripts/postgres.sh stop           stop it; a no-op if it does not run
#   scripts/postgres.sh status         exit 0 if it runs
#   scripts/postgres.sh url [DB]       the JAILADMIN_DATABASE_URL of database DB (default jailadmin)
#   scripts/postgres.sh run CMD...     start it if needed, run CMD, stop it again if this started it
#
# Debian's PostgreSQL binaries, not its service: the cluster lives in $JAILADMIN_PG_DIR
# (default var/postgres), is owned by the unprivileged system user jailadmin-pg (PostgreSQL
# refuses to run as root; the user is created once, no home, no login shell) and listens on a
# Unix socket in $JAILADMIN_PG_DIR/run only (no TCP). The system's own cluster, if Debian made
# one, is never started, stopped or read. Authentication is `trust` for that socket, which
# only root and jailadmin-pg may open (socket and directory mode 0700).
# It is a throw-away test cluster: fsync, full-page writes and synchronous commit are off
# (a crash may lose it; the tests create every database they use anyway).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PG_DIR=${JAILADMIN_PG_DIR:-$ROOT/var/postgres}
OS_USER=jailadmin-pg
DB_ROLE=jailadmin
DATA=$PG_DIR/data
RUN=$PG_DIR/run
LOG=$PG_DIR/postgres.log
PORT=5432 # only names the socket file: there is no TCP listener

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$dir" ] || [ ! -x "$dir/pg_ctl" ]; then
    echo "postgres.sh: PostgreSQL is not installed (make install adds Debian's postgresql)" >&2
    exit 1
  fi
  echo "$dir"
}

# Everything the cluster's user runs: its own uid and groups, a clean environment.
as_pg() {
  setpriv --reuid="$OS_USER" --regid="$OS_USER" --init-groups -- \
    env -i PATH=/usr/bin:/bin LANG=C.UTF-8 "$@"
}

user_ensure() {
  if ! id -u "$OS_USER" >/dev/null 2>&1; then
    # 9: made meanwhile by a concurrent start: the same user, fine.
    useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$OS_USER" ||
      [ $? -eq 9 ]
  fi
}

# The user must traverse every directory above the cluster. A checkout in a private (0700)
# directory, like CI's mktemp -d, gets o+x (traverse, not list) on exactly the ancestors
# that block it; they are named, and stay so while the cluster may run.
traverse_ensure() {
  local dir=$PG_DIR parents=()
  while [ "$dir" != / ]; do
    dir=$(dirname "$dir")
    parents=("$dir" "${parents[@]}")
  done
  for dir in "${parents[@]}"; do
    if ! as_pg test -x "$dir"; then
      echo "postgres.sh: granting o+x on $dir so $OS_USER can reach $PG_DIR" >&2
      chmod o+x "$dir"
    fi
  done
}

close_inherited_fds() {
  local fd n
  for fd in /proc/$BASHPID/fd/*; do
    n=${fd##*/}
    if [ "$n" -gt 2 ]; then eval "exec $n>&-" 2>/dev/null || true; fi
  done
}

running() {
  [ -f "$DATA/PG_VERSION" ] && as_pg "$(pg_bin)/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

start() {
  local bin
  bin=$(pg_bin)
  if [ ${#RUN} -gt 90 ]; then # sun_path holds 107 bytes, the name adds /.s.PGSQL.5432.lock
    echo "postgres.sh: $RUN is too long for a Unix socket path; set JAILADMIN_PG_DIR" >&2
    exit 1
  fi
  user_ensure
  mkdir -p "$PG_DIR"
  traverse_ensure
  install -d -o "$OS_USER" -g "$OS_USER" -m 0700 "$DATA" "$RUN"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$DATA" -U "$DB_ROLE" --auth=trust --encoding=UTF8 \
      --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 ||
      { cat "$PG_DIR/initdb.log" >&2; exit 1; }
    cat >>"$DATA/postgresql.conf" <<EOF

# scripts/postgres.sh: a private, throw-away cluster on a Unix socket only.
listen_addresses = ''
port = $PORT
unix_socket_directories = '$RUN'
unix_socket_permissions = 0700
fsync = off
full_page_writes = off
synchronous_commit = off
EOF
  fi
  if running; then
    return 0
  fi
  touch "$LOG" && chown "$OS_USER:$OS_USER" "$LOG"
  # -w: return once it accepts connections; the timeout is sized for a loaded 1-core box.
  # The server outlives this script: it must not inherit the lock or a caller's pipe (a
  # `$(…)` or a test harness would wait for it to end).
  (
    close_inherited_fds
    as_pg "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 120 start </dev/null >/dev/null 2>&1
  ) || { tail -n 20 "$LOG" >&2; exit 1; }
}

stop() {
  if running; then
    as_pg "$(pg_bin)/pg_ctl" -D "$DATA" -m fast -w -t 120 stop >/dev/null
  fi
}

url() {
  local db=${1:-jailadmin}
  # The socket directory as the URL's host, percent-encoded (dj-database-url decodes it).
  local host
  host=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$RUN")
  echo "postgres://$DB_ROLE@$host/$db"
}

# Serialise start/stop between concurrent callers (two `make` runs, xdist controllers).
lock() {
  mkdir -p "$PG_DIR"
  exec 9>"$PG_DIR/.lock"
  flock 9
}

case "${1:-}" in
  start) lock; start ;;
  stop) lock; stop ;;
  status) running ;;
  url) url "${2:-}" ;;
  run)
    shift
    started=0
    (lock; running) || { (lock; start); started=1; }
    status=0
    "$@" || status=$?
    if [ $started = 1 ]; then (lock; stop); fi
    exit $status
    ;;
  *)
    echo "usage: $0 start|stop|status|url [DB]|run CMD..." >&2
    exit 2
    ;;
esac
