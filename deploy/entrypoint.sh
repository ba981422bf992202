#!/bin/sh
# The container's entry point (deploy/Dockerfile): `wonderq-entrypoint [VERB [FLAG...]]`.
#
# With no arguments it runs `wonderq broker`; a wonderq verb (or a flag) runs `wonderq` with
# them; anything else is run as a command (`sh`, say). The settings come from WONDERQ_*
# variables (README: every flag has one). Before `broker` or `up` on PostgreSQL it waits up to
# WONDERQ_DB_WAIT seconds (default 60) for the database's port to accept connections, since a
# compose file starts the database and the brokers together; then wonderq replaces this shell
# (exec), so it is PID 1 and receives SIGTERM itself.
set -eu

VERBS=" broker up dev user ready migrate backup keys queues stats create send receive tail purge delete-queue "
if [ $# -eq 0 ]; then
    set -- broker
fi
case "$1" in
    -*) exec wonderq "$@" ;;
esac
case "$VERBS" in
    *" $1 "*) ;;
    *) exec "$@" ;;
esac

wait_for_database() {
    python3 - <<'PY'
import os, socket, sys, time
from urllib.parse import urlsplit

url = os.environ.get("WONDERQ_DB", "")
if not url.startswith(("postgresql://", "postgres://")):
    sys.exit(0)
parts = urlsplit(url)
host, port = parts.hostname or "localhost", parts.port or 5432
wait = float(os.environ.get("WONDERQ_DB_WAIT", "60"))
deadline = time.monotonic() + wait
while True:
    try:
        socket.create_connection((host, port), timeout=2).close()
        sys.exit(0)
    except OSError as exc:
        if time.monotonic() >= deadline:
            print(f"wonderq-entrypoint: the database at {host}:{port} did not accept connections"
                  f" within {wait:g} s ({exc}); check WONDERQ_DB", file=sys.stderr)
            sys.exit(5)
        time.sleep(0.5)
PY
}

case "$1" in
    broker|up) wait_for_database ;;
esac
exec wonderq "$@"
