#!/usr/bin/env bash
# Start or stop an MLflow tracking server on 127.0.0.1 with a SQLite store and a
# local artifact root served through the server (mlflow-artifacts:/).
#   scripts/mlflow-server.sh start STATE_DIR [PORT]  -> prints the tracking URI
#   scripts/mlflow-server.sh stop  STATE_DIR
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="${2:?state dir required}"
PORT="${3:-5055}"
mkdir -p "${STATE}"

case "${1:-}" in
  start)
    nohup "${SPARKMLOPS_VENV:-${ROOT}/.venv}/bin/mlflow" server --host 127.0.0.1 --port "${PORT}" --workers 1 \
      --backend-store-uri "sqlite:///${STATE}/mlflow-server.db" \
      --artifacts-destination "${STATE}/mlflow-server-artifacts" \
      >"${STATE}/mlflow-server.log" 2>&1 &
    echo $! >"${STATE}/mlflow-server.pid"
    for _ in $(seq 120); do
      if curl -fsS "http://127.0.0.1:${PORT}/health" >/dev/null 2>&1; then
        echo "http://127.0.0.1:${PORT}"
        exit 0
      fi
      sleep 1
    done
    echo "mlflow server did not answer on 127.0.0.1:${PORT}; see ${STATE}/mlflow-server.log" >&2
    exit 1
    ;;
  stop)
    if [[ -f "${STATE}/mlflow-server.pid" ]]; then
      pid="$(cat "${STATE}/mlflow-server.pid")"
      pkill -P "${pid}" 2>/dev/null || true
      kill "${pid}" 2>/dev/null || true
      rm -f "${STATE}/mlflow-server.pid"
    fi
    ;;
  *)
    echo "usage: $0 start|stop STATE_DIR [PORT]" >&2
    exit 2
    ;;
esac
