#!/usr/bin/env bash
# `make bundle-check`: what `sparkmlops deploy` writes, checked by the platforms' own tools.
#   scripts/bundle-check.sh [WORK_DIR]   (default: a new temp dir, kept for reading)
# 1. builds the official Databricks CLI and actionlint (scripts/platform-tools.sh);
# 2. renders two projects outside the repo, from the repo's conf/ and the packaged env
#    overlays: databricks (bundle + workflows) and emr (requests, bootstrap.sh, workflows);
# 3. actionlint on every generated workflow, shellcheck on emr/bootstrap.sh;
# 4. `databricks bundle validate -t dev|prod -o json` against scripts/stub_workspace.py, once
#    as each of two users, into WORK_DIR/validate/<target>-<user>.json;
# 5. pytest tests/platform/ on that output (dev paused and per user, prod fixed and run as a
#    service principal).
# Every check runs even when an earlier one fails; the exit code is non-zero if any failed.
# BUNDLE_CHECK_SET: extra `--set key=value` pairs (space-separated) for the databricks render.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-${SPARKMLOPS_VENV:-${ROOT}/.venv}/bin/python}"
WORK="${1:-$(mktemp -d)}"
WORK="$(mkdir -p "${WORK}" && cd "${WORK}" && pwd)"
# a fixed application id: the prod target's run_as (the packaged databricks.yml leaves it
# null, and a project deploying prod sets it)
SERVICE_PRINCIPAL="6a1f3b2c-0d4e-4f5a-9b8c-7d6e5f4a3b2c"
USERS=(dev.user@example.com ops.user@example.com)

TOOLS_BIN="$(bash "${ROOT}/scripts/platform-tools.sh")"
failed=()
check() {  # check NAME COMMAND...: run it, remember a failure, go on
    local name="$1"
    shift
    echo "bundle-check: ${name}" >&2
    "$@" || { echo "bundle-check: FAILED: ${name}" >&2; failed+=("${name}"); }
}

render() {  # render PROJECT ENV ARGS...: sparkmlops deploy in a fresh project with conf/
    local project="${WORK}/$1" env="$2"
    shift 2
    rm -rf "${project}" && mkdir -p "${project}" && cp -r "${ROOT}/conf" "${project}/conf"
    (cd "${project}" && env -u SPARKMLOPS_CONF_DIR "${PY}" -m sparkmlops.cli deploy \
        --env "${env}" --dataset penguins --conf-dir conf --out . "$@" >/dev/null)
}

databricks_set=(--set "deploy.databricks.run_as_service_principal=${SERVICE_PRINCIPAL}"
    --set dataset.source.path=/Volumes/main/sparkmlops/landing/penguins)
for pair in ${BUNDLE_CHECK_SET:-}; do databricks_set+=(--set "${pair}"); done
render databricks databricks --target databricks,github "${databricks_set[@]}"
render emr emr --target emr,github --set storage.root=s3a://acme-ml/sparkmlops/lake \
    --set tracking.tracking_uri=http://mlflow.internal:5000 \
    --set dataset.source.path=s3a://acme-ml/landing/penguins

# actionlint also runs shellcheck on each `run:` script (shellcheck is on PATH)
check "actionlint" env PATH="${TOOLS_BIN}:${PATH}" "${TOOLS_BIN}/actionlint" -no-color \
    "${WORK}"/databricks/.github/workflows/*.yml "${WORK}"/emr/.github/workflows/*.yml
check "shellcheck emr/bootstrap.sh" shellcheck "${WORK}/emr/emr/bootstrap.sh"

cli_validate() {  # cli_validate PORT TARGET OUT: the CLI's JSON to OUT, its messages to OUT.err
    local port="$1" target="$2" out="$3"
    # env -i: no profile, token or config of the caller's reaches the CLI
    if ! (cd "${WORK}/databricks/databricks" && env -i PATH="${PATH}" \
            HOME="${WORK}/validate/home" DATABRICKS_HOST="http://127.0.0.1:${port}" \
            DATABRICKS_TOKEN=stub-token \
            "${TOOLS_BIN}/databricks" bundle validate -t "${target}" -o json \
            >"${out}" 2>"${out}.err"); then
        cat "${out}.err" >&2
        return 1
    fi
}

validate() {  # validate USER: bundle validate -t dev and -t prod as USER, on a fresh stub
    local user="$1" port_file="${WORK}/validate/stub-${1}.port" stub target
    rm -f "${port_file}"
    "${PY}" "${ROOT}/scripts/stub_workspace.py" --user "${user}" --port-file "${port_file}" \
        --log "${WORK}/validate/stub-${user}.jsonl" >/dev/null 2>"${WORK}/validate/stub-${user}.err" &
    stub=$!
    for _ in $(seq 100); do [[ -s "${port_file}" ]] && break; sleep 0.1; done
    for target in dev prod; do
        check "bundle validate -t ${target} as ${user}" \
            cli_validate "$(cat "${port_file}")" "${target}" "${WORK}/validate/${target}-${user}.json"
    done
    kill "${stub}"
    wait "${stub}" 2>/dev/null || true
}

stub_knew_every_request() { ! grep -h '"known": false' "${WORK}"/validate/stub-*.jsonl >&2; }
mkdir -p "${WORK}/validate/home"
# the schema the suite's fixture must equal (tests/fixtures/databricks/)
"${TOOLS_BIN}/databricks" bundle schema >"${WORK}/validate/bundle-schema.json"
for user in "${USERS[@]}"; do validate "${user}"; done
# a request the stub does not know is a new call of the CLI's: the stub must learn it
check "the stub answered every request of the CLI" stub_knew_every_request

check "pytest tests/platform" env SPARKMLOPS_BUNDLE_CHECK_DIR="${WORK}" \
    BUNDLE_CHECK_USERS="${USERS[*]}" BUNDLE_CHECK_SERVICE_PRINCIPAL="${SERVICE_PRINCIPAL}" \
    "${PY}" -m pytest "${ROOT}/tests/platform" -q -p no:cacheprovider --rootdir "${ROOT}"

echo "bundle-check: rendered files and the CLI's output in ${WORK}" >&2
if ((${#failed[@]})); then
    printf 'bundle-check: failed: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "bundle-check: all passed" >&2
