#!/usr/bin/env bash
# Start or stop a local Spark standalone cluster (one master, one worker) from the
# pyspark distribution in the venv. Binds to 127.0.0.1 only.
#   scripts/spark-cluster.sh start [STATE_DIR]   -> prints the master URL
#   scripts/spark-cluster.sh stop  [STATE_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${SPARKMLOPS_VENV:-${ROOT}/.venv}/bin/python"  # make exports the venv it built
STATE="${2:-${ROOT}/.sparkmlops/cluster}"
MASTER_PORT="${SPARK_MASTER_PORT:-7077}"
WORKER_CORES="${SPARK_WORKER_CORES:-2}"
WORKER_MEMORY="${SPARK_WORKER_MEMORY:-3g}"
SPARK_HOME="$("$PY" -c 'from pyspark.find_spark_home import _find_spark_home; print(_find_spark_home())')"
export SPARK_HOME SPARK_LOCAL_IP=127.0.0.1 SPARK_LOG_DIR="${STATE}/logs" SPARK_WORKER_DIR="${STATE}/work"
export PYSPARK_PYTHON="$PY"
mkdir -p "${STATE}/logs" "${STATE}/work"

wait_for_port() {  # host port seconds
  for _ in $(seq "$3"); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 1
  done
  echo "port $1:$2 did not open in $3 s" >&2
  return 1
}

case "${1:-}" in
  start)
    nohup "${SPARK_HOME}/bin/spark-class" org.apache.spark.deploy.master.Master \
      --host 127.0.0.1 --port "${MASTER_PORT}" --webui-port 0 \
      >"${STATE}/logs/master.out" 2>&1 &
    echo $! >"${STATE}/master.pid"
    wait_for_port 127.0.0.1 "${MASTER_PORT}" 90
    nohup "${SPARK_HOME}/bin/spark-class" org.apache.spark.deploy.worker.Worker \
      "spark://127.0.0.1:${MASTER_PORT}" --host 127.0.0.1 --webui-port 0 \
      --cores "${WORKER_CORES}" --memory "${WORKER_MEMORY}" --work-dir "${STATE}/work" \
      >"${STATE}/logs/worker.out" 2>&1 &
    echo $! >"${STATE}/worker.pid"
    for _ in $(seq 90); do
      if grep -q "Successfully registered with master" "${STATE}/logs/worker.out" 2>/dev/null; then
        echo "spark://127.0.0.1:${MASTER_PORT}"
        exit 0
      fi
      sleep 1
    done
    echo "the worker did not register with the master; see ${STATE}/logs" >&2
    exit 1
    ;;
  stop)
    for name in worker master; do
      if [[ -f "${STATE}/${name}.pid" ]]; then
        kill "$(cat "${STATE}/${name}.pid")" 2>/dev/null || true
        rm -f "${STATE}/${name}.pid"
      fi
    done
    ;;
  *)
    echo "usage: $0 start|stop [STATE_DIR]" >&2
    exit 2
    ;;
esac
