#!/usr/bin/env bash
# The platforms' own checkers, for `make bundle-check`: the official Databricks CLI and
# actionlint, built from the Go module proxy at pinned versions, and Debian's shellcheck.
#   scripts/platform-tools.sh [TOOLS_DIR]   (default: .tools/ of the repo)
#   PLATFORM_TOOLS="actionlint" scripts/platform-tools.sh   (only those; default: both)
# Leaves TOOLS_DIR/bin/{databricks,actionlint} (symlinks to versioned binaries) and prints
# that bin folder. A tool already built at its version is not built again; a version bump
# here builds the new one beside the old. Go's own module and build caches are used
# (GOMODCACHE, GOCACHE), so a second checkout on the same machine builds from cache.
# Measured on 2 cores (go 1.26.8), empty caches, downloads included: the CLI 138 s (and
# 0.8 GB of modules plus 0.8 GB of build cache), actionlint 11 s alone; with the binaries
# present this script takes 0.01 s.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="$(mkdir -p "${1:-${ROOT}/.tools}" && cd "${1:-${ROOT}/.tools}" && pwd)"
# v0.298.0: later tags, v1.x and @latest are refused by the module proxy (checked 2026-12-04)
DATABRICKS_CLI_VERSION="${DATABRICKS_CLI_VERSION:-v0.298.0}"
ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-v1.7.12}"
mkdir -p "${TOOLS}/bin"

# go_tool NAME VERSION BINARY BUILD...: run BUILD (which writes the binary into $OUT) unless
# TOOLS/go/NAME@VERSION/BINARY exists (a build is renamed there only once it finished),
# then link it as TOOLS/bin/NAME
go_tool() {
    local name="$1" version="$2" binary="$3"
    shift 3
    local dir="${TOOLS}/go/${name}@${version}"
    if [[ ! -x "${dir}/${binary}" ]]; then
        if ! command -v go >/dev/null; then  # the toolchain from the Go module proxy
            PATH="$(python3 "${ROOT}/scripts/toolchain.py" go "${TOOLS}"):${PATH}"
        fi
        echo "platform-tools: building ${name} ${version} into ${dir}" >&2
        local start=${SECONDS}
        rm -rf "${dir}.partial" && mkdir -p "${dir}.partial"
        OUT="${dir}.partial" "$@"
        rm -rf "${dir}" && mv "${dir}.partial" "${dir}"
        echo "platform-tools: built ${name} in $((SECONDS - start)) s" >&2
    fi
    ln -sfn "../go/${name}@${version}/${binary}" "${TOOLS}/bin/${name}"
}

# `go install github.com/databricks/cli@v0.298.0` stops here (go 1.26.8) before building: it
# looks up the module's deprecation in the proxy's version list, which answers 403. Built
# instead as the one requirement of a throwaway module: the same dependency versions (every
# one `go version -m` lists matches the CLI's go.mod) and the version stamp a release has.
build_databricks_cli() {
    local src
    src="$(mktemp -d)"
    printf 'module sparkmlops.tools/databricks\n\ngo 1.25.0\n\nrequire github.com/databricks/cli %s\n' \
        "${DATABRICKS_CLI_VERSION}" >"${src}/go.mod"
    (cd "${src}" && GOFLAGS=-mod=mod go build -o "${OUT}/cli" \
        -ldflags "-X github.com/databricks/cli/internal/build.buildVersion=${DATABRICKS_CLI_VERSION#v}" \
        github.com/databricks/cli)
    rm -rf "${src}"
}

# GOFLAGS replaced, not extended: a -mod=vendor from the caller's environment would refuse
build_actionlint() {
    GOFLAGS=-mod=mod GOBIN="${OUT}" \
        go install "github.com/rhysd/actionlint/cmd/actionlint@${ACTIONLINT_VERSION}"
}

# `make test` builds actionlint only (11 s cold): the CLI is `make bundle-check`'s
for tool in ${PLATFORM_TOOLS:-databricks actionlint}; do
    case "${tool}" in
        databricks) go_tool databricks "${DATABRICKS_CLI_VERSION}" cli build_databricks_cli ;;
        actionlint) go_tool actionlint "${ACTIONLINT_VERSION}" actionlint build_actionlint ;;
        *) echo "platform-tools: unknown tool ${tool} (databricks, actionlint)" >&2; exit 2 ;;
    esac
done

if ! command -v shellcheck >/dev/null; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        echo "platform-tools: installing Debian's shellcheck" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends shellcheck >/dev/null
    else
        echo "platform-tools: no shellcheck: install Debian's shellcheck" >&2
        exit 1
    fi
fi
echo "${TOOLS}/bin"
