#!/usr/bin/env bash
# The fault matrix: every broken-upstream case through every peer (MITRE, Jetty's ProxyServlet, ours in Tomcat and
# in Jetty), judged against DESIGN.md's fault table; rewrites the fault-matrix section of benchmarks/README.md.
#   benchmarks/faults.sh                       about 2 minutes on 2 cores; stops itself after 9 minutes at most
#   benchmarks/faults.sh --no-write --peers ours-tomcat --cases refused,dns   (options go to FaultMatrix)
# Set SKIP_BUILD=1 to reuse benchmarks/target/benchmarks.jar.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${SKIP_BUILD:-}" != 1 ]; then
  mvn -B -q -o -pl benchmarks -am package -DskipTests
fi
# The matrix stops its peer JVMs itself (their stdin is their lifeline, plus a hard time limit); the trap is the
# last resort if the script is interrupted.
matrix_pid=""
cleanup() {
  if [ -n "$matrix_pid" ] && kill -0 "$matrix_pid" 2>/dev/null; then
    kill "$matrix_pid" 2>/dev/null || true
    wait "$matrix_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT INT TERM
timeout 600 java -Xmx256m -cp benchmarks/target/benchmarks.jar dev.upstreamguard.benchmarks.peers.FaultMatrix \
  --dir benchmarks "$@" &
matrix_pid=$!
wait "$matrix_pid"
