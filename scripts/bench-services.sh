#!/usr/bin/env bash
# `sudo make bench-services` (part of `make bench`): weft's Service proxy
# against kube-proxy in nftables mode (built from the same k8s.io/kubernetes
# module as the lab's control plane), side by side in one --kube lab.
#
# Three nodes, VXLAN between them (kernel datapath: what is measured is the
# proxies, not a userspace tunnel):
#   n1  weft's agent serves Services          client pod c1
#   n2  kube-proxy --proxy-mode nftables; the client pod c2
#       agent there sees kube-proxy's table and stands aside
#   n3  the backends b1 and b2 (probe servers on 8080, iperf3 on 5201)
# Both proxies watch the same API server, so they serve the same Services
# and EndpointSlices. Both run with their production settings: the lab's
# agents check their service table for drift every 2 s, so the script sets
# services.resyncInterval back to the default 60 s (SERVICES_RESYNC) and
# restarts them before any Service exists. The Services have no selector: svcbench
# (tests/bench/svcbench) writes each one's EndpointSlice with both backends,
# so the set is exactly the same for both and is written quickly.
#
# At SERVICES_SMALL and then SERVICES_LARGE Services (the second set added
# to the first):
#   connect latency   blocking connect() from c1 (weft) and c2 (kube-proxy)
#                     to the ClusterIPs of 100 Services picked at random,
#                     and from c1 straight to the pod IPs (no proxy), the
#                     cases taking turns connect by connect; p50 and p99
#                     of all, with the spread of the p50 and p99 of ten
#                     rounds (consecutive tenths).
#                     Target: weft <= 1.0x kube-proxy, p50 and p99.
#   change to enforced  Service probe-0's only endpoint flipped b1 <-> b2
#                     by an EndpointSlice update; from c1 and c2 at once, the
#                     time from the update until a new connection reaches the
#                     new endpoint (probes every ~1 ms).
#                     Target (at SERVICES_LARGE): weft <= 0.5x kube-proxy.
# At SERVICES_LARGE only:
#   throughput        iperf3 through a ClusterIP against the pod IP directly,
#                     from the same client to the same server, back to back
#                     (which goes first alternates), in rounds; the figure
#                     is the median of the rounds' ratios.
#                     Target: >= 0.95x.
#   at rest           CPU (utime+stime, children included) of weft's agent
#                     on n1, kube-proxy on n2 and, for reference, the agent
#                     standing aside on n2, over REST_SECONDS idle; RSS.
#
# A missed target is reported, not fatal (exit 0); a failed measurement
# exits non-zero. The lab and every process the script starts are removed
# when it ends.
#
# Settings (environment):
#   SERVICES_SMALL   first set (default 1000)
#   SERVICES_LARGE   total after the second (default 10000)
#   CONNECTS         connects per case and size (default 2000)
#   CHANGES          endpoint changes per size (default 10)
#   IPERF_SECONDS    one iperf3 run (default 5)
#   IPERF_ROUNDS     rounds of the throughput pairs (default 6)
#   REST_SECONDS     the window at rest (default 60)
#   SERVICES_RESYNC  the agents' services.resyncInterval (default 60s)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

weft=bin/weft
go=go
small=${SERVICES_SMALL:-1000}
large=${SERVICES_LARGE:-10000}
connects=${CONNECTS:-2000}
changes=${CHANGES:-10}
isecs=${IPERF_SECONDS:-5}
irounds=${IPERF_ROUNDS:-6}
rest=${REST_SECONDS:-60}
resync=${SERVICES_RESYNC:-60s}

die() { echo "bench-services: $*" >&2; exit 1; }
log() { echo "bench-services: $(date +%T) $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "needs root to create network namespaces: sudo make bench-services"
[ -x "$weft" ] || die "$weft is missing: make build"
for t in jq iperf3 nft; do command -v $t >/dev/null || die "$t is missing: make deps"; done
for v in small large connects changes isecs irounds rest; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "settings must be positive integers ($v=${!v})"
done
[ "$large" -gt "$small" ] || die "SERVICES_LARGE ($large) must be more than SERVICES_SMALL ($small)"
scripts/build-controlplane.sh bin
[ -x bin/kube-proxy ] || die "bin/kube-proxy is missing: scripts/build-controlplane.sh bin"

. scripts/lib/benchlab.sh
benchlab_init svcbench bench-services
svcbench=$tmp/svcbench
"$go" build -o "$svcbench" ./tests/bench/svcbench || die "failed to build tests/bench/svcbench"

log "starting --kube lab $lab (3 nodes, vxlan)"
"$weft" lab up -q --name "$lab" --nodes 3 --backend vxlan --kube --kubelets=false --kube-bin-dir bin --manifests deploy/kubernetes \
  >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log" >&2; die "failed to start the lab"; }
kc=$("$weft" lab kubeconfig --name "$lab")
podip() { "$weft" lab pod add "$1" "$2" -q --name "$lab" --json | jq -er .ip; }
c1=/run/netns/$lab-n1-c1 c2=/run/netns/$lab-n2-c2
podip n1 c1 >/dev/null
podip n2 c2 >/dev/null
b1=$(podip n3 b1)
b2=$(podip n3 b2)
bench() { ip netns exec "$lab-cp" "$svcbench" "$@"; } # beside the API server
agentpid() { "$weft" lab status --json --name "$lab" | jq -er --arg n "$1" '.nodes[] | select(.name == $n) | .pid'; }
status() { "$weft" lab exec --name "$lab" "$1" -- "$weft" status --socket "/run/weft-lab/$lab/$1/weft.sock"; }

for b in b1 b2; do
  ip netns exec "$lab-n3-$b" "$weft" lab serve 0.0.0.0:8080 >/dev/null 2>&1 &
  pids+=($!)
done
ip netns exec "$lab-n3-b1" iperf3 -s -p 5201 >/dev/null 2>&1 &
pids+=($!)

log "starting kube-proxy (nftables mode) on n2"
ip netns exec "$lab-n2" bin/kube-proxy --kubeconfig "$kc" --hostname-override n2 \
  --proxy-mode nftables --cluster-cidr 10.244.0.0/16 \
  --metrics-bind-address 127.0.0.1:10249 --healthz-bind-address 127.0.0.1:10256 \
  --conntrack-max-per-core 0 --conntrack-tcp-timeout-established 0 --conntrack-tcp-timeout-close-wait 0 \
  --v=1 >"$tmp/kube-proxy.log" 2>&1 </dev/null &
kppid=$!
pids+=($kppid)
for _ in $(seq 100); do
  ip netns exec "$lab-n2" nft list table ip kube-proxy >/dev/null 2>&1 && break
  kill -0 "$kppid" 2>/dev/null || { cat "$tmp/kube-proxy.log" >&2; die "kube-proxy exited"; }
  sleep 0.3
done
# An agent looks for kube-proxy at its start and on every resync: n2's
# sees it when restarted here.
log "services.resyncInterval $resync on every agent"
for n in n1 n2 n3; do
  f=/run/weft-lab/$lab/$n/agent.yaml
  awk -v r="$resync" '/^services:/ { s = 1 } s && /^  resyncInterval:/ { $0 = "  resyncInterval: " r; s = 0 } { print }' "$f" >"$tmp/agent.yaml"
  grep -q "^  resyncInterval: $resync\$" "$tmp/agent.yaml" || die "no services.resyncInterval in $f"
  cat "$tmp/agent.yaml" >"$f"
  "$weft" lab node stop -q --name "$lab" "$n" && "$weft" lab node start -q --name "$lab" "$n" || die "failed to restart the agent of $n"
done
for _ in $(seq 100); do
  status n2 2>/dev/null | grep -q 'served by kube-proxy' && break
  kill -0 "$kppid" 2>/dev/null || { cat "$tmp/kube-proxy.log" >&2; die "kube-proxy exited"; }
  sleep 0.3
done
status n2 | grep -q 'served by kube-proxy' || die "n2's agent did not stand aside for kube-proxy"
[ "$(cat /proc/$kppid/comm)" = kube-proxy ] || die "pid $kppid is not kube-proxy"

bench populate -kubeconfig "$kc" -prefix probe -to 1 -backends "$b1" -node n3
bench populate -kubeconfig "$kc" -prefix iperf -to 1 -backends "$b1" -node n3 -port 5201 -target-port 5201
printf '%s:8080\n%s:8080\n' "$b1" "$b2" >"$tmp/direct"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A lat chg served
missed=()
have=0
for n in "$small" "$large"; do
  log "writing Services $have..$((n - 1)) and their EndpointSlices"
  bench populate -kubeconfig "$kc" -from "$have" -to "$n" -backends "$b1,$b2" -node n3
  have=$n
  bench list -kubeconfig "$kc" >"$tmp/services"
  [ "$(grep -c '^svc-' "$tmp/services")" -eq "$n" ] || die "expected $n Services"
  probe=$(awk '$1 == "probe-0" { print $2 ":80" }' "$tmp/services")
  grep '^svc-' "$tmp/services" | shuf -n 100 | awk '{ print $2 ":80" }' >"$tmp/sample"
  # The Service written last, then the sample: both proxies serve them all.
  grep "^svc-$((n - 1)) " "$tmp/services" | awk '{ print $2 ":80" }' >"$tmp/ready"
  cat "$tmp/sample" >>"$tmp/ready"
  log "waiting until both proxies serve all $n Services"
  bench wait -case "weft=$c1=$tmp/ready" -case "kube-proxy=$c2=$tmp/ready" >"$tmp/wait"
  served[$n]=$(tr '\n' ' ' <"$tmp/wait")
  log "served: ${served[$n]}(seconds after the last write)"
  status n1 | grep 'services:' >&2
  sleep 5
  log "connect latency at $n Services ($connects connects per case)"
  l0=$(cut -d' ' -f1 /proc/loadavg)
  bench latency -n "$connects" -rounds 10 -case "weft=$c1=$tmp/sample" -case "kube-proxy=$c2=$tmp/sample" \
    -case "direct=$c1=$tmp/direct" >"$tmp/lat"
  l1=$(cut -d' ' -f1 /proc/loadavg)
  while read -r label cnt p50 p99 p50lo p50hi p99lo p99hi; do
    lat[$n,$label]="$p50 $p99 $p50lo $p50hi $p99lo $p99hi"
  done <"$tmp/lat"
  lat[$n,load]="$l0-$l1"
  log "EndpointSlice change to enforced at $n Services ($changes changes)"
  l0=$(cut -d' ' -f1 /proc/loadavg)
  bench change -kubeconfig "$kc" -service probe-0 -addr "$probe" -a "$b1" -b "$b2" -node n3 \
    -rounds "$changes" -case "weft=$c1" -case "kube-proxy=$c2" >"$tmp/chg"
  l1=$(cut -d' ' -f1 /proc/loadavg)
  while read -r label cnt p50 mx mn rest_; do
    chg[$n,$label]="$p50 $mn $mx"
  done <"$tmp/chg"
  chg[$n,load]="$l0-$l1"
done

log "throughput through a ClusterIP and to the pod IP ($irounds rounds of ${isecs}s)"
cip=$(awk '$1 == "iperf-0" { print $2 }' "$tmp/services")
declare -A tput
iperf() { # NETNS ADDR: Gbit/s received
  ip netns exec "$1" iperf3 -c "$2" -p 5201 -t "$isecs" -J | jq -er '.end.sum_received.bits_per_second / 1e9'
}
l0=$(cut -d' ' -f1 /proc/loadavg)
for r in $(seq "$irounds"); do
  for c in weft kube-proxy; do
    ns=$lab-n1-c1; [ $c = kube-proxy ] && ns=$lab-n2-c2
    if [ $((r % 2)) -eq 1 ]; then
      x=$(iperf "$ns" "$cip") y=$(iperf "$ns" "$b1")
    else
      y=$(iperf "$ns" "$b1") x=$(iperf "$ns" "$cip")
    fi
    tput[$c,cip]+="$x " tput[$c,pod]+="$y " tput[$c,ratio]+="$(ratio "$x" "$y") "
  done
done
l1=$(cut -d' ' -f1 /proc/loadavg)
tload="$l0-$l1"

log "at rest for ${rest}s"
cputicks() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat"; }
rss() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)
w1=$(agentpid n1) w2=$(agentpid n2)
sleep 10 # let the last changes settle
l0=$(cut -d' ' -f1 /proc/loadavg)
a=$(cputicks "$w1") b=$(cputicks "$kppid") c=$(cputicks "$w2")
sleep "$rest"
a=$(($(cputicks "$w1") - a)) b=$(($(cputicks "$kppid") - b)) c=$(($(cputicks "$w2") - c))
l1=$(cut -d' ' -f1 /proc/loadavg)
pctcpu() { awk -v t="$1" -v hz="$hz" -v s="$rest" 'BEGIN { printf "%.2f", 100 * t / hz / s }'; }

echo
echo "Services: weft's Service proxy against kube-proxy $(bin/kube-proxy --version 2>/dev/null | awk '{ print $2 }') (nftables mode), one --kube lab, $(date -u +%F)"
echo "(3 nodes, VXLAN; clients on n1 (weft) and n2 (kube-proxy), backends on n3; $(nproc) CPUs)"
echo
echo "connect latency, microseconds: all connects' p50 and p99, [spread of the 10 rounds']"
printf '%-8s %-12s %8s %16s %8s %16s %s\n' services proxy p50 "[rounds]" p99 "[rounds]" "load"
for n in "$small" "$large"; do
  for c in weft kube-proxy direct; do
    read -r p50 p99 a1 a2 b1_ b2_ <<<"${lat[$n,$c]}"
    printf '%-8s %-12s %8s %16s %8s %16s %s\n' "$n" "$c" "$p50" "[$a1-$a2]" "$p99" "[$b1_-$b2_]" "${lat[$n,load]}"
  done
  read -r w50 w99 _ <<<"${lat[$n,weft]}"
  read -r k50 k99 _ <<<"${lat[$n,kube-proxy]}"
  echo "$n Services: weft/kube-proxy p50 $(ratio "$w50" "$k50")x, p99 $(ratio "$w99" "$k99")x"
  le "$w50" "$k50" && le "$w99" "$k99" || missed+=("connect latency at $n Services: weft <= 1.0x kube-proxy, p50 and p99")
done
echo
echo "all Services served, seconds after the last one was written: $small: ${served[$small]}; $large: ${served[$large]}"
echo
echo "EndpointSlice change to enforced, milliseconds: median [min-max] of $changes changes"
for n in "$small" "$large"; do
  read -r w wmn wmx <<<"${chg[$n,weft]}"
  read -r k kmn kmx <<<"${chg[$n,kube-proxy]}"
  echo "$n Services: weft $w [$wmn-$wmx], kube-proxy $k [$kmn-$kmx]: $(ratio "$w" "$k")x (load ${chg[$n,load]})"
done
read -r w _ <<<"${chg[$large,weft]}"
read -r k _ <<<"${chg[$large,kube-proxy]}"
le "$w" "$(awk -v k="$k" 'BEGIN { print k / 2 }')" || missed+=("change to enforced at $large Services: weft <= 0.5x kube-proxy")
echo
echo "throughput, Gbit/s: $irounds rounds of ${isecs}s, ClusterIP and pod IP back to back; medians [rounds] (load $tload)"
for c in weft kube-proxy; do
  ci=$(median <<<"${tput[$c,cip]}") po=$(median <<<"${tput[$c,pod]}") ra=$(median <<<"${tput[$c,ratio]}")
  printf '%-11s ClusterIP %.2f [%s]  pod IP %.2f [%s]  ratio %sx [%s]\n' "$c" \
    "$ci" "$(xargs printf '%.1f ' <<<"${tput[$c,cip]}" | sed 's/ $//')" \
    "$po" "$(xargs printf '%.1f ' <<<"${tput[$c,pod]}" | sed 's/ $//')" "$ra" "$(sed 's/ $//' <<<"${tput[$c,ratio]}")"
  [ $c = weft ] && { le 0.95 "$ra" || missed+=("throughput through a ClusterIP >= 0.95x the pod IP"); }
done
echo
echo "at rest with $large Services, ${rest}s (load $l0-$l1): CPU share of one CPU, RSS"
printf '%-38s %6s%% %8s MiB\n' "weft agent, n1 (serving Services)" "$(pctcpu "$a")" "$(rss "$w1")"
printf '%-38s %6s%% %8s MiB\n' "kube-proxy, n2" "$(pctcpu "$b")" "$(rss "$kppid")"
printf '%-38s %6s%% %8s MiB\n' "weft agent, n2 (standing aside)" "$(pctcpu "$c")" "$(rss "$w2")"
echo
if [ ${#missed[@]} -eq 0 ]; then
  echo "targets met"
else
  for m in "${missed[@]}"; do echo "target missed: $m"; done
fi
exit 0
