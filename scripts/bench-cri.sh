#!/usr/bin/env bash
# `sudo make bench-cri`: the lab with real kubelets (`weft lab up --kube
# --kubelets`), two figures:
#
#   up time     `lab up --kube --kubelets --nodes 3` to every Node Ready and
#               a 3-replica Deployment (agnhost) available, UPS runs, each on
#               a fresh lab. Target: under 60 s.
#   pod setup   on node n1 of the last lab, PODS pods with weft-cni and PODS
#               with the reference bridge + host-local plugins (Debian's
#               containernetworking-plugins) under the same containerd 1.6,
#               created one after another (each waits for the previous one
#               to be Ready), in batches of BATCH that alternate between the
#               two plugins, so that load from elsewhere falls on both
#               alike. The node's CNI configuration is switched between
#               batches, when the node has no pod left. Per pod:
#                 CNI ADD      containerd's "begin cni setup" to its "cni
#                              result" (debug log, ns timestamps): the
#                              go-cni Setup call, which runs the main
#                              plugin and loopback in parallel;
#                 sandbox      the CRI's RunPodSandbox, received to returned
#                              (containerd's log);
#                 to Ready     RunPodSandbox received to the Pod's Ready
#                              condition seen by a watch on the API server.
#               Also containerd's own histogram of the CNI ADD
#               (containerd_cri_network_plugin_operations_duration_seconds,
#               operation_type set_up_pod): its mean is exact, its buckets
#               coarse (5, 10, 25, 50 ms ...). Target: weft's CNI ADD p50
#               <= 0.5x the reference's.
#
# The node's containerd runs with debug logging for the pod setup part (the
# script adds it to that node's containerd.toml and restarts containerd; its
# supervisor starts it again).
#
# Settings (environment):
#   BENCH_CRI_UPS    up-time runs (default 3)
#   BENCH_CRI_PODS   pods per plugin (default 100)
#   BENCH_CRI_BATCH  pods per batch (default 10)
#
# A missed target is reported, not fatal (exit 0); a failed measurement
# exits non-zero. The lab (cri<pid>) is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

ups=${BENCH_CRI_UPS:-3}
pods=${BENCH_CRI_PODS:-100}
batch=${BENCH_CRI_BATCH:-10}
lab=cri$$
node=n1
ns=bench
agnhost=registry.k8s.io/e2e-test-images/agnhost:2.56
refsubnet=10.88.0.0/24

die() { echo "bench-cri: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root to create network namespaces: sudo make bench-cri"
for v in ups pods batch; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_CRI_${v^^} must be a positive integer, not '${!v}'"
done
for f in bin/weft bin/kubectl bin/kubelet; do
  [ -x "$f" ] || die "$f is missing: make build controlplane"
done
for p in bridge host-local; do
  [ -x "/usr/lib/cni/$p" ] || die "/usr/lib/cni/$p is missing (Debian package containernetworking-plugins): make deps"
done
command -v jq >/dev/null || die "jq is missing: make deps"
command -v curl >/dev/null || die "curl is missing: make deps"

tmp=$(mktemp -d /tmp/weft-bench-cri.XXXXXX)
watchpid=
up=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  [ -z "$watchpid" ] || { kill "$watchpid" 2>/dev/null; wait "$watchpid" 2>/dev/null; }
  [ -z "$up" ] || bin/weft lab down -q --name "$lab" >/dev/null 2>&1 || echo "bench-cri: failed to remove lab $lab" >&2
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if bin/weft lab status --name "$lab" >/dev/null 2>&1; then
  die "a lab named $lab exists already; not touching it"
fi

k() { ip netns exec "$lab-cp" bin/kubectl --kubeconfig "$kubeconfig" "$@"; }
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# stats "V1 V2 ...": median min max.
stats() {
  tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '
    { v[NR] = $1 }
    END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
          printf "%.1f %.1f %.1f\n", m, v[1], v[NR] }'
}

echo "weft $(git describe --always --dirty 2>/dev/null || echo dev), $(containerd --version | cut -d' ' -f3), kubelet $(bin/kubelet --version | cut -d' ' -f2)"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ), load average before: $(load)"
echo

# ---- up time ----------------------------------------------------------------

upt=() readyt=() deployt=()
for run in $(seq 1 "$ups"); do
  l0=$(load)
  t0=$(now)
  up=1
  bin/weft lab up -q --kube --kubelets --name "$lab" --nodes 3 --timeout 3m >"$tmp/up.log" 2>&1 ||
    { cat "$tmp/up.log" >&2; die "lab up failed (run $run)"; }
  tu=$(since "$t0")
  kubeconfig=$(bin/weft lab kubeconfig --name "$lab")
  k wait --for=condition=Ready nodes -l "weft.dev/lab=$lab" --timeout=3m >/dev/null || die "Nodes not Ready (run $run)"
  [ "$(k get nodes -l "weft.dev/lab=$lab" -o name | wc -l)" -eq 3 ] || die "not 3 Nodes (run $run)"
  tr=$(since "$t0")
  k create deployment web --image="$agnhost" --replicas=3 >/dev/null
  k rollout status deployment/web --timeout=3m >/dev/null || die "Deployment web not available (run $run)"
  td=$(since "$t0")
  upt+=("$tu") readyt+=("$tr") deployt+=("$td")
  printf 'up %d/%d: lab up %5.1f s, Nodes Ready %5.1f s, Deployment available %5.1f s (load average before: %s)\n' \
    "$run" "$ups" "$tu" "$tr" "$td" "$l0"
  if [ "$run" -lt "$ups" ]; then
    bin/weft lab down -q --name "$lab" >/dev/null || die "lab down failed (run $run)"
    up=
  fi
done
read -r um ulo uhi <<<"$(stats "${upt[*]}")"
read -r rm rlo rhi <<<"$(stats "${readyt[*]}")"
read -r dm dlo dhi <<<"$(stats "${deployt[*]}")"
verdict=MISSED
awk -v d="$dm" 'BEGIN { exit !(d < 60) }' && verdict=met
echo "up time, median of $ups (range): lab up $um s ($ulo-$uhi), Nodes Ready $rm s ($rlo-$rhi), Deployment available $dm s ($dlo-$dhi); target < 60 s: $verdict"
echo

# ---- pod setup through the CRI ----------------------------------------------

k delete deployment web --wait >/dev/null
k wait --for=delete pods -l app=web --timeout=2m >/dev/null 2>&1 || true
labdir=$(bin/weft lab status --json --name "$lab" | jq -er .dir)
rt=$labdir/$node/runtime
netd=$labdir/$node/net.d
cnibin=$labdir/cni-bin
ctrlog=$rt/containerd.log
netnsdir=$rt/containerd/state/io.containerd.grpc.v1.cri/netns

# containerd with debug logging: its supervisor restarts it.
ctrpid=$(pgrep -xf "containerd --config $rt/containerd.toml") || die "no containerd of $node"
printf '\n[debug]\n  level = "debug"\n' >>"$rt/containerd.toml"
ready0=$(grep -c "containerd ready" "$rt/runtime.log" || true)
kill "$ctrpid"
for _ in $(seq 1 120); do
  [ "$(grep -c "containerd ready" "$rt/runtime.log" || true)" -gt "$ready0" ] && break
  sleep 0.5
done
[ "$(grep -c "containerd ready" "$rt/runtime.log" || true)" -gt "$ready0" ] || die "containerd of $node did not come back"
sleep 2
k wait --for=condition=Ready "node/$node" --timeout=2m >/dev/null || die "$node not Ready after the containerd restart"

# The reference: Debian's bridge and host-local, host-local's store beside
# weft-cni's (both on /run). 50-ref sorts after 10-weft: containerd loads
# the first file only (max_conf_num 1), and reloads on a rename or a write
# in the directory (not on a create).
for p in bridge host-local; do ln -sf "/usr/lib/cni/$p" "$cnibin/$p"; done
mtu=$(jq -er .mtu "$labdir/$node/node.json")
cat >"$netd/50-ref.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "ref",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "mtu": $mtu,
      "ipam": {"type": "host-local", "dataDir": "$labdir/$node/host-local", "ranges": [[{"subnet": "$refsubnet"}]]}
    }
  ]
}
EOF
current=weft
use() { # weft|ref
  [ "$1" = "$current" ] && return 0
  local before
  before=$(grep -c "receiving change event from cni conf dir" "$ctrlog" || true)
  if [ "$1" = ref ]; then mv "$netd/10-weft.conflist" "$netd/90-weft.conflist"; else mv "$netd/90-weft.conflist" "$netd/10-weft.conflist"; fi
  for _ in $(seq 1 40); do
    [ "$(grep -c "receiving change event from cni conf dir" "$ctrlog" || true)" -gt "$before" ] && break
    sleep 0.25
  done
  [ "$(grep -c "receiving change event from cni conf dir" "$ctrlog" || true)" -gt "$before" ] || die "containerd did not reload $netd"
  sleep 1
  current=$1
}

k create namespace "$ns" >/dev/null
# Ready as the API server tells it, stamped on arrival. $! is kubectl's pid
# (ip netns exec execs it).
ip netns exec "$lab-cp" bin/kubectl --kubeconfig "$kubeconfig" -n "$ns" get pods -w --output-watch-events -o \
  jsonpath='{.type} {.object.metadata.name} {.object.status.podIP} {.object.status.conditions[?(@.type=="Ready")].status}{"\n"}' \
  > >(while IFS= read -r line; do echo "$EPOCHREALTIME $line"; done >"$tmp/watch") &
watchpid=$!
sleep 1

pod() { # NAME
  k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: $ns}
spec:
  nodeName: $node
  terminationGracePeriodSeconds: 0
  containers:
  - {name: c, image: "$agnhost", imagePullPolicy: Never, args: [pause]}
EOF
  k -n "$ns" wait --for=condition=Ready "pod/$1" --timeout=2m >/dev/null || die "pod $1 not Ready"
}

# setup_hist: containerd's set_up_pod histogram, "le count" lines, then
# "sum S" and "count N".
setup_hist() {
  ip netns exec "$lab-$node" curl -sf "http://127.0.0.1:1338/v1/metrics" | awk '
    !/^containerd_cri_network_plugin_operations_duration_seconds_/ || !/operation_type="set_up_pod"/ { next }
    /_bucket/ { match($0, /le="[^"]*"/); print substr($0, RSTART + 4, RLENGTH - 5), $NF; next }
    /_sum/ { print "sum", $NF; next }
    /_count/ { print "count", $NF }'
}
# clear_node deletes the pods and waits until containerd has torn their
# networks down: it removes a sandbox's netns after the CNI DEL.
clear_node() {
  k -n "$ns" delete pods --all --wait --timeout=2m >/dev/null || die "pods not deleted"
  for _ in $(seq 1 240); do
    [ -z "$(ls -A "$netnsdir" 2>/dev/null)" ] && return 0
    sleep 0.25
  done
  die "containerd left pod network namespaces in $netnsdir"
}

echo "pod setup: $pods pods per plugin on $node, one at a time, batches of $batch alternating (load average before: $(load))"
# One pod of each first, not counted: page cache, the bridge device.
pod warm-w && clear_node
use ref && pod warm-r && clear_node
declare -A count=([weft]=0 [ref]=0)
b=0
while [ "${count[weft]}" -lt "$pods" ] || [ "${count[ref]}" -lt "$pods" ]; do
  p=weft
  [ $((b % 2)) -eq 1 ] && p=ref
  b=$((b + 1))
  [ "${count[$p]}" -lt "$pods" ] || continue
  use "$p"
  setup_hist >"$tmp/h0"
  n=$((pods - count[$p]))
  [ "$n" -gt "$batch" ] && n=$batch
  for _ in $(seq 1 "$n"); do
    count[$p]=$((count[$p] + 1))
    pod "$(printf '%s-%03d' "${p:0:1}" "${count[$p]}")"
  done
  setup_hist >"$tmp/h1"
  awk 'NR == FNR { a[$1] = $2; next } { print $1, $2 - a[$1] }' "$tmp/h0" "$tmp/h1" >>"$tmp/hist-$p"
  clear_node
  printf '  batch %2d: %s, %d pods (%d/%d), load average %s\n' "$b" "$p" "$n" "${count[$p]}" "$pods" "$(load)"
done
use weft
kill "$watchpid" 2>/dev/null
wait "$watchpid" 2>/dev/null || true
watchpid=
sleep 0.5 # the stamper's last lines
echo "load average after: $(load)"

# Per pod, from containerd's log and the watch: plugin name cni sandbox ready
# (ms), and the pod's address.
TZ=UTC awk -v want="^[wr]-[0-9]+$" '
  function ts(s,   d) { # time="2026-12-07T12:37:54.598156816Z"
    d = substr(s, 7, 30); gsub(/[-T:Z"]/, " ", d); split(d, f, " ")
    return mktime(f[1] " " f[2] " " f[3] " " f[4] " " f[5] " " int(f[6])) + (f[6] - int(f[6]))
  }
  FILENAME ~ /watch$/ { if ($5 == "True" && !($3 in ready)) { ready[$3] = $1; ip[$3] = $4 }; next }
  /msg="RunPodSandbox for &PodSandboxMetadata\{Name:/ {
    name = $0; sub(/.*Name:/, "", name); sub(/,.*/, "", name)
    if (name !~ want) next
    if ($0 ~ /returns sandbox id/) { id = $0; sub(/.*returns sandbox id \\"/, "", id); sub(/\\".*/, "", id); ret[name] = ts($1); sid[id] = name }
    else if (!(name in run)) run[name] = ts($1)
    next
  }
  /msg="begin cni setup"/ { id = $NF; sub(/podsandboxid=/, "", id); begin[id] = ts($1); next }
  /msg="cni result: / { id = $NF; sub(/podsandboxid=/, "", id); result[id] = ts($1); next }
  END {
    for (id in sid) {
      n = sid[id]
      if (!(id in begin) || !(id in result) || !(n in ready)) { print "incomplete " n > "/dev/stderr"; continue }
      printf "%s %s %.3f %.3f %.3f %s\n", (n ~ /^w/ ? "weft" : "ref"), n,
        (result[id] - begin[id]) * 1000, (ret[n] - run[n]) * 1000, (ready[n] - run[n]) * 1000, ip[n]
    }
  }' "$ctrlog" "$tmp/watch" | sort >"$tmp/pods"

for p in weft ref; do
  got=$(awk -v p="$p" '$1 == p' "$tmp/pods" | wc -l)
  [ "$got" -eq "$pods" ] || die "$got of $pods $p pods measured (see $ctrlog)"
done
# Each pod has its plugin's address.
awk -v ref="${refsubnet%.*}." '($1 == "ref") != (index($6, ref) == 1) { print "bench-cri: pod " $2 " of " $1 " has address " $6; bad = 1 } END { exit bad }' \
  "$tmp/pods" >&2 || die "a pod was wired by the other plugin"

# quantiles P COLUMN: p50 p99 min max (nearest rank).
quantiles() {
  awk -v p="$1" -v c="$2" '$1 == p { print $c }' "$tmp/pods" | sort -g | awk '
    { v[NR] = $1 }
    END { r50 = int(NR * 0.50 + 0.999999); r99 = int(NR * 0.99 + 0.999999)
          printf "%.1f %.1f %.1f %.1f\n", v[r50], v[r99], v[1], v[NR] }'
}
# hist P: mean (ms) from sum/count, and the buckets p50 and p99 fall in.
hist() {
  awk '{ a[$1] += $2 } END { for (k in a) print k, a[k] }' "$tmp/hist-$1" | sort -g | awk '
    $1 == "sum" { s = $2; next } $1 == "count" { n = $2; next } { le[++k] = $1; c[k] = $2 }
    END { for (i = 1; i <= k; i++) { if (!q50 && c[i] >= 0.5 * n) q50 = le[i]; if (!q99 && c[i] >= 0.99 * n) q99 = le[i] }
          printf "%.1f %s %s %d\n", s / n * 1000, q50 * 1000, q99 * 1000, n }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo
echo "== pod setup through containerd's CRI, $pods pods per plugin, ms (p50 / p99, range), ratios weft/reference"
printf '%-34s %-26s %-26s %s\n' "" weft-cni "bridge + host-local" "weft/ref p50, p99"
for m in "3|CNI ADD (containerd debug log)" "4|RunPodSandbox" "5|sandbox to Pod Ready (watch)"; do
  IFS='|' read -r c lbl <<<"$m"
  read -r w50 w99 wlo whi <<<"$(quantiles weft "$c")"
  read -r r50 r99 rlo rhi <<<"$(quantiles ref "$c")"
  printf '%-34s %-26s %-26s %sx, %sx\n' "$lbl" "$w50 / $w99 ($wlo-$whi)" "$r50 / $r99 ($rlo-$rhi)" "$(ratio "$w50" "$r50")" "$(ratio "$w99" "$r99")"
  [ "$c" = 3 ] && cni="$w50 $r50"
done
read -r wm wq50 wq99 wn <<<"$(hist weft)"
read -r rfm rq50 rq99 rn <<<"$(hist ref)"
printf '%-34s %-26s %-26s %sx (means)\n' "CNI ADD (containerd histogram)" "mean $wm, p50 <= $wq50, p99 <= $wq99" "mean $rfm, p50 <= $rq50, p99 <= $rq99" "$(ratio "$wm" "$rfm")"
[ "$wn" -eq "$pods" ] && [ "$rn" -eq "$pods" ] || echo "bench-cri: the histogram counted $wn and $rn ADDs, not $pods each" >&2
read -r w50 r50 <<<"$cni"
got=$(ratio "$w50" "$r50")
verdict=MISSED
awk -v g="$got" 'BEGIN { exit !(g <= 0.5) }' && verdict=met
echo "target: weft-cni CNI ADD p50 <= 0.5x bridge + host-local: ${got}x $verdict"
