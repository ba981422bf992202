#!/usr/bin/env bash
# Smoke-test an installed WonderQ: `deploy/smoke.sh BIN` with BIN the directory holding its
# `wonderq` (a fresh venv's bin/). Starts a broker on a free port and a throwaway database,
# waits for /readyz, checks HEAD /healthz, sends and receives one message with the CLI,
# then stops the broker with SIGTERM. Exits non-zero, saying why, if any step fails.
set -euo pipefail
bin=${1:?usage: deploy/smoke.sh BIN_DIR}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$("$bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
"$bin/wonderq" --version
# SQS's digests in AVX2's lanes (src/wonderq/broker/sqs/_md5many.c): built wherever the CPU has it.
lanes=$("$bin/python" -c 'from wonderq.broker.sqs import message_attributes as m; print(m.LANES)')
echo "smoke: MD5 lanes: $lanes"
if grep -qw avx2 /proc/cpuinfo 2>/dev/null && [ "$lanes" = 0 ]; then
    echo "smoke: the wheel was built without its AVX2 digests" >&2; exit 1
fi
"$bin/wonderq" broker --port "$port" --db "$work/smoke.db" 2>"$work/broker.log" &
pid=$!
for _ in $(seq 100); do
    curl -sf "$url/readyz" >/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/broker.log"; echo "smoke: the broker exited" >&2; exit 1; }
    sleep 0.1
done
curl -sf "$url/readyz"; echo
curl -sfI "$url/healthz" | head -1
export WONDERQ_URL=$url
"$bin/wonderq" create smoke
"$bin/wonderq" send smoke "hello from the wheel"
"$bin/wonderq" receive smoke --wait 1 --delete | grep -q "hello from the wheel"
kill -TERM "$pid"
wait "$pid" || true  # the broker ends by the signal, after a clean shutdown
grep -q "INFO stopped" "$work/broker.log" || { cat "$work/broker.log"; echo "smoke: no clean stop" >&2; exit 1; }
echo "smoke: ok"
