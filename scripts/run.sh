#!/usr/bin/env bash
# `make run`: migrate, pick a fail2ban (the system's socket, or a private demo server with a
# synthetic attacker), start the job runner and serve the site with gunicorn.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
VAR=${JAILADMIN_VAR_DIR:-$PWD/var}
mkdir -p "$VAR"
export JAILADMIN_VAR_DIR=$VAR
if [ -z "${JAILADMIN_SECRET_KEY:-}" ]; then
  [ -s "$VAR/secret-key" ] || (umask 077; $PY -c 'import secrets; print(secrets.token_urlsafe(50))' > "$VAR/secret-key")
  JAILADMIN_SECRET_KEY=$(cat "$VAR/secret-key"); export JAILADMIN_SECRET_KEY
fi
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${demo:-0}" = 1 ]; then $PY manage.py demo_fail2ban stop || true; fi
}
trap cleanup EXIT INT TERM

$PY manage.py migrate --noinput -v0
$PY manage.py collectstatic --noinput -v0

system_socket=${JAILADMIN_FAIL2BAN_SOCKET:-/var/run/fail2ban/fail2ban.sock}
if [ -S "$system_socket" ]; then
  echo "using fail2ban at $system_socket"
  export JAILADMIN_FAIL2BAN_SOCKET=$system_socket
else
  echo "no fail2ban socket at $system_socket: starting the private demo server"
  demo=1
  $PY manage.py demo_fail2ban start
  eval "$($PY manage.py demo_fail2ban env)"
  $PY manage.py demo_fail2ban attack --interval 1.5 & pids+=($!)
fi

# One number for gunicorn and for Django's check that refuses process-local (memory)
# sessions with several workers.
export JAILADMIN_WORKERS=${JAILADMIN_WORKERS:-${WORKERS:-3}}
if $PY manage.py help run_jobs >/dev/null 2>&1; then
  $PY manage.py run_jobs & pids+=($!)
fi
if $PY manage.py help jailadmin_setup >/dev/null 2>&1; then
  # The one-time setup token (created now if missing); a sentence once the setup is complete.
  setup_token=$($PY manage.py jailadmin_setup --print-token)
  case "$setup_token" in
    *" "*) echo "$setup_token" ;;
    *) echo "first launch: open http://${HOST:-127.0.0.1}:${PORT:-8000}/setup/?token=$setup_token to create the administrator" \
         "(or run: .venv/bin/python manage.py jailadmin_setup --username admin --password-stdin)" ;;
  esac
else
  echo "create a login with: .venv/bin/python manage.py createsuperuser"
fi
echo "jailadmin: http://${HOST:-127.0.0.1}:${PORT:-8000}/"
# --forwarded-allow-ips '': gunicorn itself would believe X-Forwarded-Proto from any
# loopback client; jailadmin believes it only from JAILADMIN_TRUSTED_PROXIES.
.venv/bin/gunicorn jailadmin.wsgi:application --bind "${HOST:-127.0.0.1}:${PORT:-8000}" \
  --forwarded-allow-ips '' \
  --workers "$JAILADMIN_WORKERS" --threads 4 --access-logfile - & pids+=($!)
wait "${pids[-1]}"
