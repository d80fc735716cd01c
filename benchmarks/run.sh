#!/usr/bin/env bash
# Runs every benchmark scenario and rewrites benchmarks/README.md (results section) and benchmarks/results.png.
#   benchmarks/run.sh            full run (about 20 minutes on 2 cores)
#   benchmarks/run.sh --quick    smoke run (a few minutes; figures not comparable)
# Further options are passed to the harness: --skip-jmh, --skip-memory, --targets direct,jetty-proxy,...
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk is missing: installing it from Debian's packages"
  if [ "$(id -u)" = 0 ]; then apt-get update && apt-get install -y wrk
  else sudo apt-get update && sudo apt-get install -y wrk; fi
fi

if [ "${SKIP_BUILD:-}" != 1 ]; then
  mvn -B -q -pl benchmarks -am package -DskipTests
fi

ulimit -n 65536 2>/dev/null || true

# The harness stops its server JVMs itself (their stdin is their lifeline, and each has a hard time limit);
# this trap is the last resort if the harness itself is killed.
harness_pid=""
cleanup() {
  if [ -n "$harness_pid" ] && kill -0 "$harness_pid" 2>/dev/null; then
    kill "$harness_pid" 2>/dev/null || true
    wait "$harness_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT INT TERM

java -Dbench.command="benchmarks/run.sh${*:+ $*}" -Djava.awt.headless=true -Xmx512m \
  -cp benchmarks/target/benchmarks.jar dev.upstreamguard.benchmarks.peers.Harness --dir benchmarks "$@" &
harness_pid=$!
wait "$harness_pid"
