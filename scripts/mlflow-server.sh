#!/usr/bin/env bash
# Start or stop an MLflow tracking server on 127.0.0.1 with a SQLite store and a
# local artifact root served through the server (mlflow-artifacts:/).
#   scripts/mlflow-server.sh start STATE_DIR [PORT] [--auth] [--tls CERT KEY]
#                                                     -> prints the tracking URI
#   scripts/mlflow-server.sh stop  STATE_DIR
#
# --auth runs MLflow's basic-auth app (`mlflow server --app-name basic-auth`, which needs
# the `mlflow[auth]` extra: Flask-WTF). The admin's name and password come from the
# environment only, SPARKMLOPS_MLFLOW_ADMIN_USER and SPARKMLOPS_MLFLOW_ADMIN_PASSWORD
# (12 characters at least): the admin is created with them on the first start against an
# empty auth db (STATE_DIR/mlflow-auth.db), and later starts keep the stored password.
# Both are handed to the server in its environment (MLflow's MLFLOW_AUTH_ADMIN_USERNAME and
# MLFLOW_AUTH_ADMIN_PASSWORD), never written to a file; STATE_DIR/basic_auth.ini (mode 600)
# holds the rest. SPARKMLOPS_MLFLOW_DEFAULT_PERMISSION
# (READ unless set; NO_PERMISSIONS, READ, USE, EDIT or MANAGE) is what a user may do on
# what another user created. MLFLOW_FLASK_SERVER_SECRET_KEY (the CSRF key of the sign-up
# form) is a fresh random key per start unless set. A checked password is cached for
# SPARKMLOPS_MLFLOW_AUTH_CACHE_SECONDS (60; 0 turns the cache off): without it every request
# hashes the password again (werkzeug's scrypt: 5 s a request was measured on a loaded
# 2-core machine), and logging one Spark model is some 60 requests. With one worker, a
# password changed or a user deleted through the API is seen at once (MLflow's
# basic_auth.ini says so; not tested here).
#
# --tls CERT KEY serves HTTPS with that PEM certificate and private key (uvicorn's
# --ssl-certfile/--ssl-keyfile); the URI printed is then https://. Clients trust a
# self-signed certificate through MLFLOW_TRACKING_SERVER_CERT_PATH=CERT.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${SPARKMLOPS_VENV:-${ROOT}/.venv}/bin/python"
ACTION="${1:-}"
STATE="${2:?state dir required}"
shift 2
PORT=5055
AUTH=0
CERT=""
KEY=""
while (($#)); do
  case "$1" in
    --auth) AUTH=1; shift ;;
    --tls)
      CERT="${2:?--tls needs CERT and KEY}"; KEY="${3:?--tls needs CERT and KEY}"; shift 3 ;;
    [0-9]*) PORT="$1"; shift ;;
    *) echo "mlflow-server.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "${STATE}"

case "${ACTION}" in
  start)
    args=(--host 127.0.0.1 --port "${PORT}" --workers 1
          --backend-store-uri "sqlite:///${STATE}/mlflow-server.db"
          --artifacts-destination "${STATE}/mlflow-server-artifacts")
    if ((AUTH)); then
      if [[ -z "${SPARKMLOPS_MLFLOW_ADMIN_USER:-}" || -z "${SPARKMLOPS_MLFLOW_ADMIN_PASSWORD:-}" ]]; then
        echo "mlflow-server.sh: --auth needs SPARKMLOPS_MLFLOW_ADMIN_USER and SPARKMLOPS_MLFLOW_ADMIN_PASSWORD in the environment" >&2
        exit 2
      fi
      if ! "${PYTHON}" -c 'import flask_wtf' 2>/dev/null; then
        echo "mlflow-server.sh: --auth needs the mlflow[auth] extra (Flask-WTF) in ${PYTHON}" >&2
        exit 2
      fi
      (
        umask 077
        cat >"${STATE}/basic_auth.ini" <<EOF
[mlflow]
default_permission = ${SPARKMLOPS_MLFLOW_DEFAULT_PERMISSION:-READ}
database_uri = sqlite:///${STATE}/mlflow-auth.db
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = ${SPARKMLOPS_MLFLOW_AUTH_CACHE_SECONDS:-60}
EOF
      )
      chmod 600 "${STATE}/basic_auth.ini"
      export MLFLOW_AUTH_CONFIG_PATH="${STATE}/basic_auth.ini"
      export MLFLOW_AUTH_ADMIN_USERNAME="${SPARKMLOPS_MLFLOW_ADMIN_USER}"
      export MLFLOW_AUTH_ADMIN_PASSWORD="${SPARKMLOPS_MLFLOW_ADMIN_PASSWORD}"
      if [[ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]]; then
        MLFLOW_FLASK_SERVER_SECRET_KEY="$("${PYTHON}" -c 'import secrets; print(secrets.token_hex(32))')"
        export MLFLOW_FLASK_SERVER_SECRET_KEY
      fi
      args+=(--app-name basic-auth)
    fi
    scheme=http
    if [[ -n "${CERT}" ]]; then
      for file in "${CERT}" "${KEY}"; do
        [[ -r "${file}" ]] || { echo "mlflow-server.sh: --tls: cannot read ${file}" >&2; exit 2; }
      done
      # mlflow splits --uvicorn-opts with shlex: %q quotes the paths for it
      args+=(--uvicorn-opts "$(printf -- '--ssl-certfile %q --ssl-keyfile %q' "${CERT}" "${KEY}")")
      scheme=https
    fi
    # the stores (the auth db holds the password hashes) are the server user's alone
    umask 077
    # setsid: the server and everything it starts form one process group, which stop ends
    launcher=()
    if command -v setsid >/dev/null; then launcher=(setsid); fi
    nohup "${launcher[@]}" "${PYTHON}" -m mlflow server "${args[@]}" >"${STATE}/mlflow-server.log" 2>&1 &
    echo $! >"${STATE}/mlflow-server.pid"
    # /health answers without credentials; --insecure: this probe only asks whether the
    # server is up (the certificate may name a host, not 127.0.0.1), clients verify it
    for _ in $(seq 120); do
      if curl -fsS --insecure "${scheme}://127.0.0.1:${PORT}/health" >/dev/null 2>&1; then
        echo "${scheme}://127.0.0.1:${PORT}"
        exit 0
      fi
      if ! kill -0 "$(cat "${STATE}/mlflow-server.pid")" 2>/dev/null; then
        break
      fi
      sleep 1
    done
    echo "mlflow server did not answer on 127.0.0.1:${PORT}; see ${STATE}/mlflow-server.log" >&2
    exit 1
    ;;
  stop)
    if [[ -f "${STATE}/mlflow-server.pid" ]]; then
      pid="$(cat "${STATE}/mlflow-server.pid")"
      # the server leads its own process group (setsid at start): uvicorn, the job runner
      # and its huey consumers get SIGTERM together, what is left after 5 s SIGKILL.
      # (Killing the children first, as before, left `mlflow server` running, its SIGTERM
      # handler finding no child to forward to, and the huey consumers orphaned.)
      target="${pid}"
      if kill -0 -- "-${pid}" 2>/dev/null; then target="-${pid}"; fi
      kill -TERM -- "${target}" 2>/dev/null || true
      for _ in $(seq 10); do
        kill -0 -- "${target}" 2>/dev/null || break
        sleep 0.5
      done
      kill -KILL -- "${target}" 2>/dev/null || true
      rm -f "${STATE}/mlflow-server.pid"
    fi
    ;;
  *)
    echo "usage: $0 start STATE_DIR [PORT] [--auth] [--tls CERT KEY] | stop STATE_DIR" >&2
    exit 2
    ;;
esac
