#!/usr/bin/env bash
# Quick side-by-side rounds for development, outside the report: no README or chart is written.
#   benchmarks/quick.sh ["targets"] [body] [warm-up s] [rounds] [round s]
#   benchmarks/quick.sh "jetty-proxy ours-tomcat async-probe-tomcat" 1k 20 3 10
# Prints per round: req/s, p99, the proxy's and the upstream's CPU per request (/proc/<pid>/stat) and the proxy's
# voluntary context switches per request (/proc/<pid>/task/*/status). Set SKIP_BUILD=1 to reuse benchmarks.jar;
# JAVA_OPTS is passed to the target JVMs (e.g. an -agentpath for a profiler).
set -euo pipefail
cd "$(dirname "$0")/.."
targets=${1:-"jetty-proxy ours-tomcat mitre-tomcat"}; body=${2:-1k}; warm=${3:-20}; rounds=${4:-3}; secs=${5:-10}
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)"; exit 1; }
[ "${SKIP_BUILD:-}" = 1 ] || mvn -B -q -pl benchmarks -am package -DskipTests
jar=benchmarks/target/benchmarks.jar
dir=$(mktemp -d); pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; pkill -P $$ -x sleep 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT INT TERM

start() { # name main-class args...: starts a JVM whose stdin stays open (its lifeline) and waits for READY
  local name=$1; shift
  # shellcheck disable=SC2086
  java -Xms512m -Xmx512m ${JAVA_OPTS:-} -cp "$jar" "$@" < <(sleep 86400 2>/dev/null) > "$dir/$name.out" 2> "$dir/$name.log" &
  pids+=($!)
  for _ in $(seq 1 600); do grep -q READY "$dir/$name.out" 2>/dev/null && return; sleep 0.1; done
  echo "$name did not start; see its log:"; cat "$dir/$name.log"; exit 1
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ {n += $2} END {print n}'; }

start upstream dev.upstreamguard.benchmarks.peers.Upstream
upstream_pid=${pids[0]}
read -r a b s < <(sed -n 's/.*a=\([0-9]*\).*b=\([0-9]*\).*s=\([0-9]*\).*/\1 \2 \3/p' "$dir/upstream.out")
declare -A port pid
for t in $targets; do
  start "$t" dev.upstreamguard.benchmarks.peers.Target "$t" "$a" "$b" "$s"
  pid[$t]=${pids[-1]}
  port[$t]=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' "$dir/$t.out")
done
for t in $targets; do wrk -t2 -c32 -d"${warm}s" "http://127.0.0.1:${port[$t]}/a/$body" > /dev/null; done
tick_us=$((1000000 / $(getconf CLK_TCK)))
for r in $(seq 1 "$rounds"); do
  for t in $targets; do
    p0=$(ticks "${pid[$t]}"); u0=$(ticks "$upstream_pid"); c0=$(switches "${pid[$t]}")
    out=$(wrk -t2 -c32 -d"${secs}s" --latency "http://127.0.0.1:${port[$t]}/a/$body")
    p1=$(ticks "${pid[$t]}"); u1=$(ticks "$upstream_pid"); c1=$(switches "${pid[$t]}")
    n=$(awk '/requests in/ {print $1}' <<< "$out")
    printf '%-20s round %d  %9s req/s  p99 %8s  proxy %4d us/req  upstream %4d us/req  %s cs/req  load %s\n' \
      "$t" "$r" "$(awk '/Requests\/sec/ {print $2}' <<< "$out")" "$(awk '$1 == "99%" {print $2}' <<< "$out")" \
      $(( (p1 - p0) * tick_us / n )) $(( (u1 - u0) * tick_us / n )) \
      "$(awk -v d=$((c1 - c0)) -v n="$n" 'BEGIN {printf "%.2f", d / n}')" "$(cut -d' ' -f1 /proc/loadavg)"
  done
done
