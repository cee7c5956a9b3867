#!/usr/bin/env bash
# The EMR stand-in: a node of Amazon EMR's release emr-spark-8.0.0 (Spark 4.0.2, Scala 2.13,
# Delta 4.0.0, Python 3.11) built from public artifacts into one cached folder, so the
# wheel is tested on the versions EMR runs, not the suite's Spark 4.1 / Delta 4.4.
#   scripts/emr-standin.sh build [DIR]           -> prints DIR (default: .emr-standin)
#   scripts/emr-standin.sh s3a-jars PYTHON OUT   -> hadoop-aws + AWS SDK jars for PYTHON's pyspark
# DIR holds:
#   venv/        python3.11 + pyspark==4.0.2 ("the cluster's Spark") + the dependencies of
#                sparkmlops[aws] (not sparkmlops itself: the bootstrap installs it from the
#                bucket), constrained by deps/requirements.lock (minus pyspark and
#                delta-spark), + boto3 (EMR's Python has it); no pip delta-spark
#   jars/delta/  delta-spark_2.13 + delta-storage 4.0.0 (deps/pom-emr.xml), also under EMR's
#                names in aws/delta/lib/ (EMR's /usr/share/aws/delta/lib/)
#   jars/s3a/    hadoop-aws at the Hadoop version inside pyspark 4.0.2 (deps/pom-s3a.xml)
#   conf/spark-defaults.conf   what the cluster's own configuration adds to every job
#                (delta-defaults, EMRFS's classpath and s3:// scheme); a test copies it and
#                adds its endpoint and master (tests/e2e/conftest.py `emr_node`)
# Rebuilt only when this script, the poms, the lock, setup.cfg or bootstrap.txt change.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v mvn >/dev/null; then  # Maven's binary distribution from Maven Central
  PATH="$(python3 "${ROOT}/scripts/toolchain.py" mvn "${ROOT}/.tools"):${PATH}"
fi
SPARK_VERSION=4.0.2                       # emr-spark-8.0.0's Spark
PYTHON_BIN="${EMR_STANDIN_PYTHON:-python3.11}"
# what Spark already ships (netty, Apache HttpClient, commons-codec/logging, slf4j): two
# copies on one classpath is a conflict, and the SDK works with Spark's
SPARK_PROVIDED="io.netty,org.apache.httpcomponents,commons-codec,commons-logging,org.slf4j"

spark_home() {
  "$1" -c 'from pyspark.find_spark_home import _find_spark_home; print(_find_spark_home())'
}

# AWS SDK v2 modules to resolve for a hadoop-aws version. Not hadoop's own pin where Maven
# Central lacks it: hadoop 3.4.1 pins 2.24.6, whose s3-transfer-manager is not served.
sdk_version() {
  case "$1" in
    3.4.1) echo 2.24.8 ;;
    3.4.2) echo 2.29.52 ;;
    *) echo "emr-standin.sh: no AWS SDK version known for hadoop-aws $1: add it to" \
            "sdk_version() (hadoop-aws's pom names its bundle version)" >&2; return 1 ;;
  esac
}

s3a_jars() {  # PYTHON OUT_DIR
  local home api hadoop
  home="$(spark_home "$1")"
  api=("${home}"/jars/hadoop-client-api-*.jar)
  [[ -f "${api[0]}" ]] || { echo "no hadoop-client-api jar in ${home}/jars" >&2; return 1; }
  hadoop="${api[0]##*/hadoop-client-api-}"
  hadoop="${hadoop%.jar}"
  rm -rf "$2" && mkdir -p "$2"
  mvn -q -B -f "${ROOT}/deps/pom-s3a.xml" dependency:copy-dependencies \
    -Dhadoop.version="${hadoop}" -Daws.sdk.version="$(sdk_version "${hadoop}")" \
    -DincludeScope=runtime -DexcludeGroupIds="${SPARK_PROVIDED}" -DoutputDirectory="$2" >&2
}

inputs_hash() {
  cat "$0" "${ROOT}/deps/pom-emr.xml" "${ROOT}/deps/pom-s3a.xml" "${ROOT}/deps/requirements.lock" \
      "${ROOT}/deps/bootstrap.txt" "${ROOT}/setup.cfg" | sha256sum | cut -d' ' -f1
}

build() {  # DIR
  local dir="$1" stamp python wheel
  stamp="$(inputs_hash)"
  if [[ -f "${dir}/.built" && "$(cat "${dir}/.built")" == "${stamp}" ]]; then
    echo "${dir}"
    return 0
  fi
  local started=${SECONDS}
  if [[ -n "$(ls -A "${dir}")" && ! -f "${dir}/.built" && ! -d "${dir}/venv" ]]; then
    echo "emr-standin.sh: ${dir} is not empty and not a stand-in; not replacing it" >&2
    return 1
  fi
  rm -rf "${dir}" && mkdir -p "${dir}/jars" "${dir}/conf"
  "${PYTHON_BIN}" -m venv "${dir}/venv"
  python="${dir}/venv/bin/python"
  "${python}" -m pip install -q -r "${ROOT}/deps/bootstrap.txt" >&2
  # Spark is the cluster's, not the lock's
  grep -v -i -E '^(pyspark|delta[-_]spark)==' "${ROOT}/deps/requirements.lock" \
    >"${dir}/constraints.txt"
  "${python}" -m pip install -q -c "${dir}/constraints.txt" "pyspark==${SPARK_VERSION}" >&2
  wheel="$(PYTHON="${python}" "${ROOT}/scripts/build-wheel.sh" "${dir}/dist")"
  "${python}" -m pip install -q -c "${dir}/constraints.txt" "${wheel}[aws]" boto3 >&2
  # the node's Python before the bootstrap action: its dependencies stand in for the package
  # index (offline and fast), sparkmlops itself comes from the bucket (the bootstrap installs it)
  "${python}" -m pip uninstall -q -y sparkmlops >&2
  if "${python}" -c 'import delta' 2>/dev/null; then
    echo "emr-standin.sh: the venv has a pip-installed delta module; EMR's comes from the jar" >&2
    return 1
  fi
  mvn -q -B -f "${ROOT}/deps/pom-emr.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -DincludeGroupIds=io.delta -DoutputDirectory="${dir}/jars/delta" >&2
  s3a_jars "${python}" "${dir}/jars/s3a"
  # EMR's own paths (/usr/share/aws/delta/lib/...) under DIR/aws/, so a step's arguments
  # that name them run here with /usr/share/aws/ read as DIR/aws/
  mkdir -p "${dir}/aws/delta/lib"
  ln -s ../../../jars/delta/delta-spark_2.13-4.0.0.jar "${dir}/aws/delta/lib/delta-spark.jar"
  ln -s ../../../jars/delta/delta-storage-4.0.0.jar "${dir}/aws/delta/lib/delta-storage.jar"
  local delta_jar="${dir}/aws/delta/lib/delta-spark.jar"
  local delta_jars="${delta_jar},${dir}/aws/delta/lib/delta-storage.jar"
  cat >"${dir}/conf/spark-defaults.conf" <<EOF
# written by scripts/emr-standin.sh: what an emr-spark-8.0.0 cluster's configuration gives
# every job. delta-defaults (delta.enabled=true): the Delta jars, extension and catalog,
# and the delta-spark jar (which holds the Python delta package) on the Python path.
# A job's own --py-files replaces spark.submit.pyFiles (it is not appended to): such a
# job must name the delta-spark jar in its --py-files to import delta.
spark.jars ${delta_jars}
spark.submit.pyFiles ${delta_jar}
spark.sql.extensions io.delta.sql.DeltaSparkSessionExtension
spark.sql.catalog.spark_catalog org.apache.spark.sql.delta.catalog.DeltaCatalog
# EMRFS's place: the S3 client on the JVM classpath of the driver (spark-submit downloads
# s3:// --py-files and scripts with it) and the executors, s3:// served like s3a://
spark.driver.extraClassPath ${dir}/jars/s3a/*
spark.executor.extraClassPath ${dir}/jars/s3a/*
spark.hadoop.fs.s3.impl org.apache.hadoop.fs.s3a.S3AFileSystem
spark.hadoop.fs.AbstractFileSystem.s3.impl org.apache.hadoop.fs.s3a.S3A
spark.submit.deployMode client
EOF
  echo "${stamp}" >"${dir}/.built"
  echo "emr-standin.sh: built ${dir} in $((SECONDS - started)) s" \
       "(venv $(du -sh "${dir}/venv" | cut -f1), jars $(du -sh "${dir}/jars" | cut -f1))" >&2
  echo "${dir}"
}

case "${1:-}" in
  build)
    mkdir -p "${2:-${ROOT}/.emr-standin}"
    dir="$(cd "${2:-${ROOT}/.emr-standin}" && pwd)"
    # one build at a time: `make test` starts it in the background beside the suite, whose
    # fixture asks for it too; the second waits for the lock, then finds it built. The lock
    # file is beside DIR, not in it: a build empties DIR.
    if command -v flock >/dev/null; then
      exec 9>"${dir}.lock"
      flock 9
    fi
    build "${dir}"
    ;;
  s3a-jars)
    s3a_jars "${2:?python required}" "${3:?output dir required}"
    ;;
  *)
    echo "usage: $0 build [DIR] | s3a-jars PYTHON OUT_DIR" >&2
    exit 2
    ;;
esac
