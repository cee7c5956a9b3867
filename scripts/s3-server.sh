#!/usr/bin/env bash
# Start or stop an S3-compatible store on 127.0.0.1: moto's server (PyPI `moto`, pinned in
# deps/requirements.lock), in memory. The same endpoint serves Secrets Manager (and any
# other AWS API moto has). Any access key works; the tests use dummy ones.
#   scripts/s3-server.sh start STATE_DIR [PORT]  -> prints the endpoint URL
#   scripts/s3-server.sh stop  STATE_DIR
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="${2:?state dir required}"
PORT="${3:-5056}"
mkdir -p "${STATE}"

case "${1:-}" in
  start)
    nohup "${SPARKMLOPS_VENV:-${ROOT}/.venv}/bin/python" -m moto.server -H 127.0.0.1 -p "${PORT}" \
      >"${STATE}/s3-server.log" 2>&1 &
    echo $! >"${STATE}/s3-server.pid"
    for _ in $(seq 60); do
      # moto's own health route; an S3 ListBuckets would need a signed request
      if curl -fsS "http://127.0.0.1:${PORT}/moto-api/" >/dev/null 2>&1; then
        echo "http://127.0.0.1:${PORT}"
        exit 0
      fi
      sleep 1
    done
    echo "the S3 server did not answer on 127.0.0.1:${PORT}; see ${STATE}/s3-server.log" >&2
    exit 1
    ;;
  stop)
    if [[ -f "${STATE}/s3-server.pid" ]]; then
      kill "$(cat "${STATE}/s3-server.pid")" 2>/dev/null || true
      rm -f "${STATE}/s3-server.pid"
    fi
    ;;
  *)
    echo "usage: $0 start|stop STATE_DIR [PORT]" >&2
    exit 2
    ;;
esac
