#!/usr/bin/env bash
# `sudo make bench`: TCP throughput between pods on different nodes over
# weft's WireGuard and VXLAN backends, and in the same run, between the same
# lab nodes and the same kind of pods, the references they are judged
# against:
#
#   underlay      node eth0 -> node eth0, no tunnel
#   wireguard-go  standalone wireguard-go, built from the module version in
#                 go.mod, as device bwg0 (port 51999, 10.99.0.0/24, MTU 1440)
#   kernel VXLAN  ip link ... type vxlan, device bvx0 (VNI 99, port 4799,
#                 10.98.0.0/24, MTU 1450)
#
# Two labs of 2 nodes run side by side, one per backend. Every node has pods
# p1 and p2: p1 reaches the other node's p1 through weft's tunnel, p2 reaches
# the other node's p2 through the reference tunnel (a /32 route on bwg0 or
# bvx0), so both pod-to-pod paths cross the same veths and forwarding.
# Node-to-node paths through each tunnel are measured too. The paths are
# measured in turn, round after round, so that load from elsewhere on the
# machine falls on all of them alike; each figure is the median of the rounds.
# Odd rounds take the paths in one order and even rounds in the reverse, so
# no path always runs right after another.
#
# Targets: weft WireGuard pod->pod >= 1.0x wireguard-go pod->pod, and
# weft VXLAN pod->pod >= 0.9x kernel VXLAN pod->pod.
#
# Settings (environment):
#   BENCH_SECONDS  length of one iperf3 run (default 5)
#   BENCH_RUNS     rounds; the table shows the median and the range (default 3)
#   BENCH_STREAMS  parallel TCP streams, a list: "1 2" measures every path with
#                  1 and with 2 streams (default "1 2")
#   BENCH_PATHS    the paths to measure, a list of ids (default all): underlay,
#                  wggo, weftwgn, wggop, weftwg, kvx, weftvxn, kvxp, weftvx. A
#                  path's reference is measured with it. "wggop weftwg" is the
#                  WireGuard target alone, for long runs.
#   BENCH_REFERENCE_PGO  a profile to build the standalone wireguard-go with
#                  (default off, as its module builds). With
#                  cmd/weft/default.pgo both sides run the same code built
#                  alike, which compares weft's agent with its device alone.
#
# A missed target is reported, not fatal: the exit status is 0 then. It is
# non-zero when the setup or any measurement fails. Everything the script
# starts (labs, namespaces, processes, files) is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

weft=bin/weft
go=${GO:-go}
secs=${BENCH_SECONDS:-5}
runs=${BENCH_RUNS:-3}
streams_list=${BENCH_STREAMS:-1 2}
all_paths="underlay wggo weftwgn wggop weftwg kvx weftvxn kvxp weftvx"
only_paths=${BENCH_PATHS:-$all_paths}
ref_pgo=${BENCH_REFERENCE_PGO:-off}
port=5201

die() { echo "bench: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root to create network namespaces: sudo make bench"
[ -x "$weft" ] || die "$weft is missing: make build"
[[ $secs =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS must be a positive integer, not '$secs'"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$runs'"
for s in $streams_list; do
  [[ $s =~ ^[1-9][0-9]*$ ]] || die "BENCH_STREAMS must list positive integers, not '$streams_list'"
done
for p in $only_paths; do
  [[ " $all_paths " == *" $p "* ]] || die "BENCH_PATHS names '$p', not one of: $all_paths"
done
if [ "$ref_pgo" != off ]; then
  [ -f "$ref_pgo" ] || die "BENCH_REFERENCE_PGO names '$ref_pgo', which is not a file"
  ref_pgo=$(realpath "$ref_pgo")
fi
for cmd in ip wg iperf3 ss; do
  command -v "$cmd" >/dev/null || die "$cmd is missing: make deps"
done
command -v jq >/dev/null || die "jq is missing: run make deps (make bench does)"

# Lab names carry this shell's pid, so two benches, or a bench and anyone
# else's lab, never share a namespace. A name already taken is left alone.
wlab=benchwg$$
vlab=benchvx$$
labs=()
pids=()
tmp=$(mktemp -d /tmp/weft-bench.XXXXXX)

cleanup() {
  local rc=$? p l ns
  trap - EXIT INT TERM
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  # An iperf3 left running in one of our namespaces (interrupted mid-run).
  for l in "${labs[@]}"; do
    for ns in $(ip netns list | awk -v pre="$l-" 'index($1, pre) == 1 {print $1}'); do
      for p in $(ip netns pids "$ns" 2>/dev/null); do
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = iperf3 ] && kill "$p" 2>/dev/null
      done
    done
  done
  for l in "${labs[@]}"; do
    "$weft" lab down -q --name "$l" >/dev/null 2>&1 || echo "bench: failed to remove lab $l" >&2
  done
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- standalone wireguard-go, the same module version weft embeds ----------

. scripts/lib/benchlab.sh
wgver=$(wireguard_go_version)
if [ "$ref_pgo" = off ]; then
  echo "bench: building standalone wireguard-go $wgver (as its module builds: no profile)"
else
  echo "bench: building standalone wireguard-go $wgver with the profile $ref_pgo (BENCH_REFERENCE_PGO)"
fi
build_wireguard_go "$wgver" "$tmp/bin" "$ref_pgo"
wggo=$tmp/bin/wireguard

# ---- labs -------------------------------------------------------------------

lab_up() { # NAME BACKEND
  if "$weft" lab status --name "$1" >/dev/null 2>&1; then
    die "a lab named $1 exists already; not touching it"
  fi
  labs+=("$1")
  echo "bench: starting lab $1 ($2, 2 nodes, 2 pods each)"
  "$weft" lab up -q --name "$1" --nodes 2 --backend "$2" --mtu 1500 --pods-per-node 2 \
    >"$tmp/up-$1.log" 2>&1 || { cat "$tmp/up-$1.log" >&2; die "failed to start lab $1"; }
}

pod_ip() { # LAB NODE POD
  "$weft" lab status --json --name "$1" |
    jq -er --arg n "$2" --arg p "$3" '.pods[] | select(.node == $n and .name == $p) | .ip' ||
    die "lab $1 has no pod $2/$3"
}

# gateway NETNS: the node's address on the pod network (the pod's default
# gateway), which the other node reaches through the tunnel.
gateway() {
  local gw
  gw=$(ip -n "$1" -4 route show default | awk '{print $3; exit}')
  [ -n "$gw" ] || die "no default route in $1"
  echo "$gw"
}

node_exec() { # LAB NODE CMD...
  local l=$1 n=$2
  shift 2
  "$weft" lab exec --name "$l" "$n" -- "$@"
}

# reach CLIENT_NS DST: wait until DST answers ping (handshakes, neighbours).
reach() {
  for _ in $(seq 1 20); do
    ip netns exec "$1" ping -c 1 -W 1 -q "$2" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  die "$2 does not answer ping from $1"
}

# via NETNS DST: the device NETNS routes DST through.
via() {
  ip -n "$1" -4 -o route get "$2" | grep -o 'dev [^ ]*' | cut -d' ' -f2
}

# start_wggo LAB NODE SELF_UNDERLAY PEER_UNDERLAY SELF_ADDR PEER_ADDR PEER_POD PEER_PUB KEYFILE
start_wggo() {
  local l=$1 n=$2
  # A simple command, not node_exec: weft lab exec execs its way down to
  # wireguard-go, so $! is wireguard-go's own pid.
  # In its own session, as each weft agent is (the lab starts agents with
  # setsid): with the kernel's autogroup scheduling (sched_autogroup_enabled,
  # on by default) a session is a scheduling group, and a wireguard-go left
  # in this script's session would share one group with the iperf3 client
  # while weft's agents each have their own. That difference alone was worth
  # 10-15% of the WireGuard ratio in A/B runs. setsid does not fork here (a
  # background job of a script is no group leader), so $! stays the pid.
  setsid "$weft" lab exec --name "$l" "$n" -- "$wggo" --foreground bwg0 >"$tmp/wggo-$n.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 50); do
    node_exec "$l" "$n" wg show bwg0 >/dev/null 2>&1 && break
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$tmp/wggo-$n.log" >&2; die "wireguard-go on $n exited"; }
    sleep 0.1
  done
  node_exec "$l" "$n" wg set bwg0 listen-port 51999 private-key "$9" \
    peer "$8" endpoint "$4:51999" allowed-ips "$6/32,$7/32" ||
    die "failed to configure bwg0 on $n"
  if ! { ip -n "$l-$n" addr add "$5/24" dev bwg0 &&
    ip -n "$l-$n" link set bwg0 mtu 1440 up &&
    ip -n "$l-$n" route add "$7/32" dev bwg0; }; then
    die "failed to bring up bwg0 on $n"
  fi
}

start_vxlan() { # NETNS SELF_UNDERLAY PEER_UNDERLAY SELF_ADDR PEER_ADDR PEER_POD
  if ! { ip -n "$1" link add bvx0 type vxlan id 99 dstport 4799 local "$2" remote "$3" dev eth0 &&
    ip -n "$1" link set bvx0 mtu 1450 up &&
    ip -n "$1" addr add "$4/24" dev bvx0 &&
    ip -n "$1" route add "$6/32" via "$5" dev bvx0; }; then
    die "failed to create bvx0 in $1"
  fi
}

lab_up "$wlab" wireguard
lab_up "$vlab" vxlan

u1=192.168.77.11
u2=192.168.77.12
declare -A podip
for l in "$wlab" "$vlab"; do
  for n in n1 n2; do
    for p in p1 p2; do
      podip[$l/$n/$p]=$(pod_ip "$l" "$n" "$p") || exit 1
    done
  done
done
ipof() { echo "${podip[$1/$2/$3]}"; } # LAB NODE POD

umask 077
wg genkey >"$tmp/k1"
wg genkey >"$tmp/k2"
pub1=$(wg pubkey <"$tmp/k1")
pub2=$(wg pubkey <"$tmp/k2")
echo "bench: starting standalone wireguard-go (bwg0) on both nodes of $wlab"
start_wggo "$wlab" n1 "$u1" "$u2" 10.99.0.1 10.99.0.2 "$(ipof "$wlab" n2 p2)" "$pub2" "$tmp/k1"
start_wggo "$wlab" n2 "$u2" "$u1" 10.99.0.2 10.99.0.1 "$(ipof "$wlab" n1 p2)" "$pub1" "$tmp/k2"
# The processes that carry each WireGuard path, for its CPU per gigabyte:
# the two wireguard-go processes, or the two weft agents (their embedded
# devices). VXLAN is the kernel's on both sides; its CPU is not a process's.
wggopids="${pids[-2]} ${pids[-1]}"
weftpids=$("$weft" lab status --json --name "$wlab" | jq -er '[.nodes[].pid] | map(tostring) | join(" ")') ||
  die "no agent pids for $wlab"
declare -A procs=([wggo]=$wggopids [wggop]=$wggopids [weftwgn]=$weftpids [weftwg]=$weftpids)
hz=$(getconf CLK_TCK)
# cputicks PID...: their user + system CPU time, in clock ticks.
cputicks() { for p in "$@"; do cat "/proc/$p/stat"; done | awk '{ t += $14 + $15 } END { print t + 0 }'; }
echo "bench: creating kernel VXLAN (bvx0) on both nodes of $vlab"
start_vxlan "$vlab-n1" "$u1" "$u2" 10.98.0.1 10.98.0.2 "$(ipof "$vlab" n2 p2)"
start_vxlan "$vlab-n2" "$u2" "$u1" 10.98.0.2 10.98.0.1 "$(ipof "$vlab" n1 p2)"

wgw2=$(gateway "$wlab-n2-p1")
vgw2=$(gateway "$vlab-n2-p1")

# id | label | server netns | client netns | destination | reference id
paths=(
  "underlay|underlay, node eth0 -> node eth0|$wlab-n2|$wlab-n1|$u2|"
  "wggo|wireguard-go, node -> node|$wlab-n2|$wlab-n1|10.99.0.2|"
  "weftwgn|weft WireGuard, node -> node|$wlab-n2|$wlab-n1|$wgw2|wggo"
  "wggop|wireguard-go, pod -> pod|$wlab-n2-p2|$wlab-n1-p2|$(ipof "$wlab" n2 p2)|"
  "weftwg|weft WireGuard, pod -> pod|$wlab-n2-p1|$wlab-n1-p1|$(ipof "$wlab" n2 p1)|wggop"
  "kvx|kernel VXLAN, node -> node|$vlab-n2|$vlab-n1|10.98.0.2|"
  "weftvxn|weft VXLAN, node -> node|$vlab-n2|$vlab-n1|$vgw2|kvx"
  "kvxp|kernel VXLAN, pod -> pod|$vlab-n2-p2|$vlab-n1-p2|$(ipof "$vlab" n2 p2)|"
  "weftvx|weft VXLAN, pod -> pod|$vlab-n2-p1|$vlab-n1-p1|$(ipof "$vlab" n2 p1)|kvxp"
)
# Keep the paths BENCH_PATHS names and their references.
declare -A want
for id in $only_paths; do want[$id]=1; done
for p in "${paths[@]}"; do
  IFS='|' read -r id _ _ _ _ r <<<"$p"
  [ -n "${want[$id]:-}" ] && [ -n "$r" ] && want[$r]=1
done
kept=()
for p in "${paths[@]}"; do
  IFS='|' read -r id _ <<<"$p"
  [ -n "${want[$id]:-}" ] && kept+=("$p")
done
paths=("${kept[@]}")
reversed=()
for ((i = ${#paths[@]} - 1; i >= 0; i--)); do reversed+=("${paths[i]}"); done

declare -A label result cpu
for p in "${paths[@]}"; do
  IFS='|' read -r id lbl sns cns dst r <<<"$p"
  label[$id]=$lbl
  reach "$cns" "$dst"
done
# Each tunnel path must take the tunnel it is named after: the reference
# devices for the references, weft's own device (neither eth0 nor a
# reference device) for weft.
check_via() { # NETNS DST WANT(bwg0|bvx0|weft)
  local dev
  dev=$(via "$1" "$2")
  case $3 in
    weft) [ -n "$dev" ] && [ "$dev" != eth0 ] && [ "$dev" != bwg0 ] && [ "$dev" != bvx0 ] && return 0 ;;
    *) [ "$dev" = "$3" ] && return 0 ;;
  esac
  die "$1 routes $2 through '${dev:-nothing}', not $3"
}
check_via "$wlab-n1" 10.99.0.2 bwg0
check_via "$wlab-n1" "$(ipof "$wlab" n2 p2)" bwg0
check_via "$wlab-n2" "$(ipof "$wlab" n1 p2)" bwg0
check_via "$wlab-n1" "$wgw2" weft
check_via "$wlab-n1" "$(ipof "$wlab" n2 p1)" weft
check_via "$vlab-n1" 10.98.0.2 bvx0
check_via "$vlab-n1" "$(ipof "$vlab" n2 p2)" bvx0
check_via "$vlab-n2" "$(ipof "$vlab" n1 p2)" bvx0
check_via "$vlab-n1" "$vgw2" weft
check_via "$vlab-n1" "$(ipof "$vlab" n2 p1)" weft

# ---- measurement ------------------------------------------------------------

# iperf_once SERVER_NS CLIENT_NS DST STREAMS: prints the receiver's bits/s.
iperf_once() {
  local sns=$1 cns=$2 dst=$3 n=$4 spid _ out=$tmp/client.json
  timeout $((secs + 60)) ip netns exec "$sns" iperf3 -s -1 -B "$dst" -p "$port" >"$tmp/server.log" 2>&1 &
  spid=$!
  for _ in $(seq 1 50); do
    [ -n "$(ip netns exec "$sns" ss -Hltn "sport = :$port")" ] && break
    sleep 0.1
  done
  if ! timeout $((secs + 30)) ip netns exec "$cns" iperf3 -c "$dst" -p "$port" -t "$secs" -P "$n" -J >"$out" 2>&1; then
    kill "$spid" 2>/dev/null
    wait "$spid" 2>/dev/null
    echo "bench: iperf3 $cns -> $dst failed: $(jq -r '.error // empty' "$out" 2>/dev/null || head -3 "$out")" >&2
    return 1
  fi
  wait "$spid" 2>/dev/null || true
  jq -er '.end.sum_received.bits_per_second | select(. > 0)' "$out" ||
    { echo "bench: iperf3 $cns -> $dst reported no throughput" >&2; return 1; }
}

machine="$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r)"
echo
echo "weft $(git describe --always --dirty 2>/dev/null || echo dev), wireguard-go $wgver (profile: $ref_pgo), $(iperf3 --version | head -1 | cut -d' ' -f1-2)"
echo "machine: $machine"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rounds: $runs, ${secs}s per path and stream count, paths interleaved within a round (order reversed in even rounds)"
echo

for round in $(seq 1 "$runs"); do
  order=("${paths[@]}")
  [ $((round % 2)) -eq 0 ] && order=("${reversed[@]}")
  for n in $streams_list; do
    for p in "${order[@]}"; do
      IFS='|' read -r id lbl sns cns dst r <<<"$p"
      # shellcheck disable=SC2086 # a list of pids
      [ -z "${procs[$id]:-}" ] || c0=$(cputicks ${procs[$id]})
      bps=$(iperf_once "$sns" "$cns" "$dst" "$n") || die "measurement failed: $lbl, $n stream(s), round $round"
      result[$id/$n]="${result[$id/$n]:-} $bps"
      if [ -n "${procs[$id]:-}" ]; then
        # shellcheck disable=SC2086
        c1=$(cputicks ${procs[$id]})
        # CPU seconds of both tunnel processes per gigabyte received.
        cpu[$id/$n]="${cpu[$id/$n]:-} $(awk -v c=$((c1 - c0)) -v hz="$hz" -v b="$bps" -v s="$secs" \
          'BEGIN { printf "%.3f", c / hz / (b * s / 8 / 1e9) }')"
      fi
      printf 'round %d/%d  %-40s P%-2s %7.2f Gbit/s\n' "$round" "$runs" "$lbl" "$n" "$(awk -v b="$bps" 'BEGIN{print b/1e9}')"
    done
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# stats "V1 V2 ...": median min max, in Gbit/s.
stats() {
  tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '
    { v[NR] = $1 / 1e9 }
    END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
          printf "%.2f %.2f %.2f\n", m, v[1], v[NR] }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a / b}'; }
# median "V1 V2 ...": the median, as stats takes it, of plain numbers.
median() {
  tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '
    { v[NR] = $1 }
    END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

declare -A med
for n in $streams_list; do
  for p in "${paths[@]}"; do
    IFS='|' read -r id _ <<<"$p"
    read -r m _ <<<"$(stats "${result[$id/$n]}")"
    med[$id/$n]=$m
  done
  echo
  echo "== $n TCP stream(s): median of $runs runs, range, and ratios of the medians"
  printf '%-34s %7s  %-13s  %-18s  %s\n' path Gbit/s range "vs reference" "vs underlay"
  for p in "${paths[@]}"; do
    IFS='|' read -r id lbl _ _ _ r <<<"$p"
    read -r m lo hi <<<"$(stats "${result[$id/$n]}")"
    vsref=-
    [ -z "$r" ] || vsref="$(ratio "$m" "${med[$r/$n]}")x ${label[$r]%%,*}"
    vsu=-
    [ -z "${med[underlay/$n]:-}" ] || vsu="$(ratio "$m" "${med[underlay/$n]}")x"
    printf '%-34s %7.2f  %-13s  %-18s  %s\n' "$lbl" "$m" "$lo-$hi" "$vsref" "$vsu"
  done
  [ -n "${cpu[weftwgn/$n]:-}${cpu[weftwg/$n]:-}" ] &&
    echo "CPU of both tunnel processes per GB received (median of $runs runs; weft: the agents, wireguard-go: its processes):"
  for pr in "weftwgn wggo" "weftwg wggop"; do
    read -r a b <<<"$pr"
    [ -n "${cpu[$a/$n]:-}" ] || continue
    ca=$(median "${cpu[$a/$n]}")
    cb=$(median "${cpu[$b/$n]}")
    printf '  %-34s %6.2f s/GB   %-26s %6.2f s/GB   weft/wireguard-go %sx\n' "${label[$a]}" "$ca" "${label[$b]}" "$cb" "$(ratio "$ca" "$cb")"
  done
  echo "targets:"
  for t in "weftwg wggop 1.0" "weftvx kvxp 0.9"; do
    read -r id r goal <<<"$t"
    [ -n "${med[$id/$n]:-}" ] || continue
    got=$(ratio "${med[$id/$n]}" "${med[$r/$n]}")
    verdict=MISSED
    if awk -v g="$got" -v w="$goal" 'BEGIN{exit !(g >= w)}'; then verdict=met; fi
    printf '  %-26s >= %.1fx %-26s %5sx  %s\n' "${label[$id]}" "$goal" "${label[$r]}" "$got" "$verdict"
    # The same rounds read pair by pair: each round's figure over its
    # reference's in that round, which shares the machine's state then.
    paste -d' ' <(tr ' ' '\n' <<<"${result[$id/$n]}" | grep .) <(tr ' ' '\n' <<<"${result[$r/$n]}" | grep .) |
      awk '{ printf "%.6f\n", $1 / $2 }' | sort -g |
      awk '{ r[NR] = $1; s += $1; if ($1 > 1) w++ }
        END { m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
              printf "    round by round: median %.2fx, mean %.2fx, ahead in %d of %d rounds\n", m, s / NR, w, NR }'
  done
done
