#!/usr/bin/env bash
# Build sparkmlops-<version>-py3-none-any.whl (code + packaged conf defaults) into OUT_DIR,
# offline: pip wheel with no dependencies and no build isolation, so the venv's pinned
# setuptools/wheel (deps/bootstrap.txt) build it and nothing is fetched.
#   scripts/build-wheel.sh [OUT_DIR]   (default: dist/) -> prints the wheel's path
# Built from a staged copy of the sources: a stale build/ or egg-info in the checkout can
# never leak into the wheel, and the checkout is not written to. SOURCE_DATE_EPOCH (the
# last commit's time) makes the zip's timestamps, hence the wheel's sha256, reproducible.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$(mkdir -p "${1:-${ROOT}/dist}" && cd "${1:-${ROOT}/dist}" && pwd)"
PY="${PYTHON:-${SPARKMLOPS_VENV:-${ROOT}/.venv}/bin/python}"
STAGE="$(mktemp -d)"
trap 'rm -rf "${STAGE}"' EXIT

mkdir -p "${STAGE}/lib"
cp "${ROOT}/setup.cfg" "${ROOT}/pyproject.toml" "${ROOT}/README.md" "${STAGE}/"
cp -r "${ROOT}/lib/sparkmlops" "${STAGE}/lib/"
find "${STAGE}" \( -name __pycache__ -o -name '*.pyc' \) -prune -exec rm -rf {} +
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "${ROOT}" log -1 --format=%ct 2>/dev/null || echo 315532800)}"
version="$(cd "${STAGE}/lib" && "${PY}" -c 'import sparkmlops; print(sparkmlops.__version__)')"
rm -f "${OUT}/sparkmlops-${version}-py3-none-any.whl"
"${PY}" -m pip wheel --quiet --no-deps --no-build-isolation --no-index -w "${OUT}" "${STAGE}" >&2
echo "${OUT}/sparkmlops-${version}-py3-none-any.whl"
