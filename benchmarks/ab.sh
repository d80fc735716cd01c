#!/usr/bin/env bash
# A/B of two or more builds of our proxy while working on the hot path (writes no report); see README "Session 13".
#   cp benchmarks/target/benchmarks.jar /tmp/before.jar   # ... change, rebuild ...
#   K=2 ROUNDS=6 benchmarks/ab.sh /tmp/before.jar benchmarks/target/benchmarks.jar
# The upstream and Jetty's proxy (the drift reference) run from the first jar; K ours-tomcat JVMs per jar (default 2:
# two JVMs of one jar can differ by more than a small change, JIT decisions differ) are all up at once, warmed WARM s
# each (20), then ROUNDS (6) rounds of SECS s (10): Jetty's proxy, then every ours JVM in an order rotated per round.
# Same wrk, JVM flags and figures as quick.sh; ours JVMs are named jN.K (jar N, instance K).
set -euo pipefail
jars=("$@"); K=${K:-2}; warm=${WARM:-20}; rounds=${ROUNDS:-6}; secs=${SECS:-10}; body=1k
dir=$(mktemp -d); pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT INT TERM
start() { local name=$1 jar=$2; shift 2
  java -Xms512m -Xmx512m -cp "$jar" "$@" < <(sleep 86400 2>/dev/null) > "$dir/$name.out" 2> "$dir/$name.log" &
  pids+=($!)
  for _ in $(seq 1 600); do grep -q READY "$dir/$name.out" 2>/dev/null && return; sleep 0.1; done
  echo "$name did not start"; cat "$dir/$name.log"; exit 1; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ {n += $2} END {print n}'; }
start upstream "${jars[0]}" dev.upstreamguard.benchmarks.peers.Upstream
upid=${pids[0]}
read -r a b s < <(sed -n 's/.*a=\([0-9]*\).*b=\([0-9]*\).*s=\([0-9]*\).*/\1 \2 \3/p' "$dir/upstream.out")
declare -A port pid
names=(jetty)
start jetty "${jars[0]}" dev.upstreamguard.benchmarks.peers.Target jetty-proxy "$a" "$b" "$s"
pid[jetty]=${pids[-1]}; port[jetty]=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' "$dir/jetty.out")
for k in $(seq 1 "$K"); do for j in "${!jars[@]}"; do
  n="j$j.$k"; names+=("$n")
  start "$n" "${jars[$j]}" dev.upstreamguard.benchmarks.peers.Target ours-tomcat "$a" "$b" "$s"
  pid[$n]=${pids[-1]}; port[$n]=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' "$dir/$n.out")
done; done
echo "jars: ${jars[*]}"
for t in "${names[@]}"; do wrk -t2 -c32 -d"${warm}s" "http://127.0.0.1:${port[$t]}/a/$body" > /dev/null; done
tick_us=$((1000000 / $(getconf CLK_TCK)))
ours=("${names[@]:1}"); m=${#ours[@]}
for r in $(seq 1 "$rounds"); do
  order=(jetty)
  for i in $(seq 0 $((m - 1))); do
    if (( r % 2 )); then order+=("${ours[$(( (i + r) % m ))]}"); else order+=("${ours[$(( (m - 1 - i + r) % m ))]}"); fi
  done
  for t in "${order[@]}"; do
    p0=$(ticks "${pid[$t]}"); u0=$(ticks "$upid"); c0=$(switches "${pid[$t]}")
    out=$(wrk -t2 -c32 -d"${secs}s" --latency "http://127.0.0.1:${port[$t]}/a/$body")
    p1=$(ticks "${pid[$t]}"); u1=$(ticks "$upid"); c1=$(switches "${pid[$t]}")
    n=$(awk '/requests in/ {print $1}' <<< "$out")
    printf '%-6s round %d  %9s req/s  p99 %8s  proxy %6.1f us/req  upstream %5.1f us/req  %s cs/req  load %s\n' \
      "$t" "$r" "$(awk '/Requests\/sec/ {print $2}' <<< "$out")" "$(awk '$1 == "99%" {print $2}' <<< "$out")" \
      "$(awk -v d=$(( (p1 - p0) * tick_us )) -v n="$n" 'BEGIN {printf "%.1f", d / n}')" \
      "$(awk -v d=$(( (u1 - u0) * tick_us )) -v n="$n" 'BEGIN {printf "%.1f", d / n}')" \
      "$(awk -v d=$((c1 - c0)) -v n="$n" 'BEGIN {printf "%.2f", d / n}')" "$(cut -d' ' -f1 /proc/loadavg)"
  done
done
