#!/usr/bin/env bash
# `sudo make bench-dns` (part of `make bench`): dnsperf against weft's
# node-local DNS proxy and, in the same run and the same lab, against CoreDNS
# (built from its Go module, tests/coredns, with the kubernetes, cache and
# forward plugins) pointed at the same API server.
#
# One --kube lab node n1 runs both: weft's agent answers on 169.254.20.10,
# CoreDNS on 169.254.20.11 (on the node's loopback, with the same NOTRACK
# rules weft puts on its own address). dnsperf runs in pod p1 on n1, as a
# pod's resolver traffic would. Both forward to one upstream, a second
# CoreDNS in the lab's internet namespace (203.0.113.1) whose template
# plugin answers every name under example.test.
#
# Two query sets:
#   cluster    A records of 100 ClusterIP Services (<svc>.default.svc.cluster.local)
#   forwarded  A records of 1,000 names under example.test (cached after the warm-up)
#
# For each server and set: throughput (dnsperf -c $clients for $secs seconds,
# as fast as the server answers) and latency at a fixed offered load
# ($rate queries/s for $secs seconds; p50 and p99 from every query's latency,
# dnsperf -v), with the server's CPU time per query over that run (from
# /proc: on a loaded or small machine dnsperf itself may be what limits QPS,
# and CPU per query still compares the servers). The servers are measured in
# turn, round after round, and each figure is the median of the rounds.
#
# Target: weft >= 2x CoreDNS's QPS on cluster names, with a lower p99.
# A missed target is reported, not fatal.
#
# Settings (environment):
#   BENCH_SECONDS      length of one dnsperf run (default 10)
#   BENCH_RUNS         rounds (default 3)
#   BENCH_CLIENTS      dnsperf clients (sockets) for throughput (default 20)
#   BENCH_OUTSTANDING  dnsperf's most queries in flight for throughput (default 1000)
#   BENCH_LATENCY_QPS  offered load for the latency and CPU runs (default 10000)
#   BENCH_FROM         where dnsperf runs: pod (n1/p1, the default) or node (n1)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

weft=bin/weft
secs=${BENCH_SECONDS:-10}
runs=${BENCH_RUNS:-3}
clients=${BENCH_CLIENTS:-20}
outstanding=${BENCH_OUTSTANDING:-1000}
rate=${BENCH_LATENCY_QPS:-10000}
weftaddr=169.254.20.10
refaddr=169.254.20.11
world=203.0.113.1

die() { echo "bench-dns: $*" >&2; exit 1; }
log() { echo "bench-dns: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "needs root to create network namespaces: sudo make bench-dns"
[ -x "$weft" ] || die "$weft is missing: make build"
command -v jq >/dev/null || die "jq is missing: make deps"
for v in secs runs clients outstanding rate; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH settings must be positive integers ($v=${!v})"
done
if ! command -v dnsperf >/dev/null; then
  log "installing dnsperf"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dnsperf >/dev/null ||
    die "failed to install dnsperf"
fi
scripts/build-coredns.sh bin
coredns=$PWD/bin/coredns

. scripts/lib/benchlab.sh
benchlab_init dnsbench bench-dns

log "starting --kube lab $lab (1 node)"
"$weft" lab up -q --name "$lab" --nodes 1 --kube --kubelets=false --kube-bin-dir bin --manifests deploy/kubernetes \
  --dns-upstream "$world" >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log" >&2; die "failed to start the lab"; }
node=$lab-n1
inet=$lab-inet
pod=$lab-n1-p1
"$weft" lab pod add n1 p1 -q --name "$lab" >/dev/null
from=$pod # where dnsperf runs
[ "${BENCH_FROM:-pod}" = node ] && from=$node

# The upstream both servers forward to.
cat >"$tmp/upstream.Corefile" <<EOT
example.test:53 {
  bind $world
  template IN A example.test {
    answer "{{ .Name }} 3600 IN A 198.51.100.1"
  }
}
EOT
ip netns exec "$inet" "$coredns" -conf "$tmp/upstream.Corefile" -quiet >"$tmp/upstream.log" 2>&1 &
pids+=($!)

# The reference: CoreDNS as a node-local cache would run it.
ip -n "$node" addr add "$refaddr/32" dev lo
nft -f - <<EOT
table ip bench-dns {
  chain prerouting { type filter hook prerouting priority raw; ip daddr $refaddr meta l4proto { udp, tcp } th dport 53 notrack; }
  chain output { type filter hook output priority raw; ip saddr $refaddr meta l4proto { udp, tcp } th sport 53 notrack; }
}
EOT
cat >"$tmp/ref.Corefile" <<EOT
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
  bind $refaddr
  errors
  cache 30
  kubernetes cluster.local in-addr.arpa ip6.arpa {
    kubeconfig $(${weft} lab kubeconfig --name "$lab")
    pods insecure
    fallthrough in-addr.arpa ip6.arpa
    ttl 5
  }
}
.:53 {
  bind $refaddr
  errors
  cache 30
  forward . $world
}
EOT
ip netns exec "$node" "$coredns" -conf "$tmp/ref.Corefile" -quiet >"$tmp/ref.log" 2>&1 &
pids+=($!)

log "creating 100 Services"
for i in $(seq 0 99); do
  printf 'apiVersion: v1\nkind: Service\nmetadata: {name: svc%d, namespace: default}\nspec: {ports: [{name: http, port: 80}]}\n---\n' "$i"
done >"$tmp/services.yaml"
"$weft" lab apply -q --name "$lab" -f "$tmp/services.yaml" >/dev/null
for i in $(seq 0 99); do echo "svc$i.default.svc.cluster.local A"; done >"$tmp/cluster.txt"
for i in $(seq 0 999); do echo "host$i.example.test A"; done >"$tmp/forwarded.txt"

# Both servers answer the last Service before anything is measured.
ready() { # ADDR NAME
  ip netns exec "$from" dnsperf -s "$1" -d <(echo "$2 A") -n 1 -t 1 2>/dev/null | grep -q 'Queries completed:.*1 (100'
}
for addr in $weftaddr $refaddr; do
  for _ in $(seq 30); do
    ready "$addr" svc99.default.svc.cluster.local && ready "$addr" host1.example.test && continue 2
    sleep 0.2
  done
  cat "$tmp/ref.log" "$tmp/upstream.log" >&2
  die "$addr does not answer svc99.default.svc.cluster.local and host1.example.test"
done

# cputicks PID: user + system CPU time of a process, in clock ticks.
cputicks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
# cpu0busy: ticks CPU 0 has spent not idle (dnsperf's CPU when pinned).
cpu0busy() { awk '$1 == "cpu0" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# qps ADDR FILE PID: queries per second at full speed, the share of a CPU
# the server (PID) used meanwhile, and the share of CPU 0 (dnsperf's, when
# pinned) that was busy: a server well under 100% with CPU 0 near 100%
# was answering as fast as dnsperf could ask.
qps() {
  local s0 c0 s1 c1 t0 t1
  s0=$(cputicks "$3"); c0=$(cpu0busy); t0=$(date +%s.%N)
  ip netns exec "$from" "${client[@]}" dnsperf -s "$1" -d "$2" -c "$clients" -l "$secs" -q "$outstanding" >"$tmp/out" 2>&1 ||
    { cat "$tmp/out" >&2; die "dnsperf failed"; }
  s1=$(cputicks "$3"); c1=$(cpu0busy); t1=$(date +%s.%N)
  awk -v s=$((s1 - s0)) -v c=$((c1 - c0)) -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" -v hz="$hz" \
    '/Queries per second:/ { printf "%.0f %.0f %.0f\n", $4, 100 * s / hz / t, 100 * c / hz / t }' "$tmp/out"
}
# latency ADDR FILE PID: p50 and p99 in microseconds at $rate queries/s,
# and the server's CPU time per answered query (microseconds).
latency() {
  local before after
  before=$(cputicks "$3")
  ip netns exec "$from" "${client[@]}" dnsperf -s "$1" -d "$2" -Q "$rate" -l "$secs" -v >"$tmp/out" 2>&1 ||
    { cat "$tmp/out" >&2; die "dnsperf failed"; }
  after=$(cputicks "$3")
  awk '/^> / {print $NF * 1000000}' "$tmp/out" | sort -n | awk -v t=$((after - before)) -v hz="$hz" '
    { v[NR] = $1 }
    END { if (NR == 0) { print "- - -"; exit }
          printf "%.0f %.0f %.1f\n", v[int(NR * 0.50) + 1], v[int(NR * 0.99) + 1], t / hz * 1e6 / NR }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

weftpid=$("$weft" lab status --json --name "$lab" | jq -er '.nodes[] | select(.name == "n1") | .pid') ||
  die "no agent pid for n1"
refpid=${pids[1]}
# With CPUs to spare, dnsperf gets CPU 0 and both servers (every thread)
# CPU 1, so that QPS measures a server on one CPU, not dnsperf's share.
client=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  taskset -a -p -c 1 "$weftpid" >/dev/null && taskset -a -p -c 1 "$refpid" >/dev/null ||
    die "failed to pin the servers to CPU 1"
  client=(taskset -c 0)
  pinned="dnsperf on CPU 0, each server on CPU 1"
else
  pinned="not pinned (one CPU)"
fi
declare -A q l50 l99 cpu qcpu gcpu
for set in cluster forwarded; do
  for srv in weft coredns; do
    addr=$weftaddr; [ $srv = coredns ] && addr=$refaddr
    ip netns exec "$from" dnsperf -s "$addr" -d "$tmp/$set.txt" -l 2 -c "$clients" >/dev/null 2>&1 # warm-up
  done
  for r in $(seq "$runs"); do
    for srv in weft coredns; do
      addr=$weftaddr pid=$weftpid
      [ $srv = coredns ] && addr=$refaddr pid=$refpid
      log "round $r/$runs: $srv, $set names"
      read -r a b c < <(qps "$addr" "$tmp/$set.txt" "$pid")
      q[$srv,$set]+="$a "
      qcpu[$srv,$set]+="$b "
      gcpu[$srv,$set]+="$c "
      read -r a b c < <(latency "$addr" "$tmp/$set.txt" "$pid")
      l50[$srv,$set]+="$a "
      l99[$srv,$set]+="$b "
      cpu[$srv,$set]+="$c "
    done
  done
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
echo
echo "DNS: dnsperf from a pod to its node's resolver; $runs rounds of ${secs}s, medians"
echo "(throughput: $clients clients, $outstanding queries in flight at most, as fast as answered; latency and server CPU per query: $rate queries/s offered; $pinned)"
echo "(server CPU and dnsperf CPU: busy share of a CPU during the throughput runs; dnsperf's is CPU 0's when pinned)"
printf '%-10s %-8s %10s %10s %10s %12s %11s %12s\n' "names" "server" "QPS" "p50 (us)" "p99 (us)" "CPU us/query" "server CPU" "dnsperf CPU"
missed=0
for set in cluster forwarded; do
  for srv in weft coredns; do
    printf '%-10s %-8s %10s %10s %10s %12s %10s%% %11s%%\n' "$set" "$srv" "$(med "${q[$srv,$set]}")" \
      "$(med "${l50[$srv,$set]}")" "$(med "${l99[$srv,$set]}")" "$(med "${cpu[$srv,$set]}")" \
      "$(med "${qcpu[$srv,$set]}")" "$(med "${gcpu[$srv,$set]}")"
  done
  wq=$(med "${q[weft,$set]}"); cq=$(med "${q[coredns,$set]}")
  w99=$(med "${l99[weft,$set]}"); c99=$(med "${l99[coredns,$set]}")
  ratio=$(awk -v a="$wq" -v b="$cq" 'BEGIN { printf "%.2f", a / b }')
  cratio=$(awk -v a="$(med "${cpu[coredns,$set]}")" -v b="$(med "${cpu[weft,$set]}")" 'BEGIN { printf "%.2f", a / b }')
  echo "${set}: weft/CoreDNS QPS ${ratio}x, p99 ${w99}us vs ${c99}us, CoreDNS spends ${cratio}x weft's CPU per query"
  ws=$(med "${qcpu[weft,$set]}"); wg=$(med "${gcpu[weft,$set]}")
  if [ -n "$client" ] && [ "$ws" -lt 90 ] && [ "$wg" -ge 95 ]; then
    echo "${set}: weft used ${ws}% of its CPU while dnsperf's CPU was ${wg}% busy: dnsperf, not weft, set weft's QPS"
  fi
  if [ "$set" = cluster ]; then
    if awk -v r="$ratio" 'BEGIN { exit !(r < 2) }' || [ "$w99" -ge "$c99" ]; then
      echo "target missed: weft >= 2x CoreDNS QPS on cluster names with a lower p99"
      missed=1
    fi
  fi
done
[ $missed -eq 0 ] && echo "target met: weft >= 2x CoreDNS QPS on cluster names with a lower p99"
exit 0
