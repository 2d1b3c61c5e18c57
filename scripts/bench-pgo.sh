#!/usr/bin/env bash
# `sudo make bench-pgo`: what the profile-guided build (cmd/weft/default.pgo)
# is worth to the WireGuard data path, measured on the device code alone.
#
# The same wireguard-go module weft embeds is built twice, with the same flags
# as bin/weft: once as its module builds (the reference) and once with weft's
# profile (-pgo=cmd/weft/default.pgo). Both run side by side in one 2-node lab,
# each in a session of its own, as device pa0 (plain, 10.91.0.0/24, port
# 51991) and pb0 (profile-guided, 10.92.0.0/24, port 51992). Each round
# measures node -> node TCP through both, with 1 and with 2 streams; which
# device goes first alternates from round to round, so neither gains from the
# order. It prints each pair and the ratios (profile-guided over plain).
#
# Settings (environment):
#   BENCH_SECONDS  length of one iperf3 run (default 5)
#   BENCH_RUNS     rounds (default 8)
#
# Everything the script starts (the lab, the devices, iperf3) is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

weft=bin/weft
go=${GO:-go}
secs=${BENCH_SECONDS:-5}
runs=${BENCH_RUNS:-8}
profile=cmd/weft/default.pgo
port=5203

die() { echo "bench-pgo: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root to create network namespaces: sudo make bench-pgo"
[ -x "$weft" ] || die "$weft is missing: make build"
[ -f "$profile" ] || die "$profile is missing: make pgo-profile"
[[ $secs =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS must be a positive integer, not '$secs'"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$runs'"
for cmd in ip wg iperf3 jq ss awk; do
  command -v "$cmd" >/dev/null || die "$cmd is missing: make deps"
done

. scripts/lib/benchlab.sh
benchlab_init benchpgo bench-pgo

wgver=$(wireguard_go_version)
echo "bench-pgo: building wireguard-go $wgver twice: plain, and with $profile"
build_wireguard_go "$wgver" "$tmp/plain" off
build_wireguard_go "$wgver" "$tmp/pgo" "$PWD/$profile"

echo "bench-pgo: starting lab $lab (wireguard, 2 nodes, no pods)"
"$weft" lab up -q --name "$lab" --nodes 2 --backend wireguard --mtu 1500 --pods-per-node 0 \
  >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log" >&2; die "failed to start lab $lab"; }

node_exec() { # NODE CMD...
  local n=$1
  shift
  "$weft" lab exec --name "$lab" "$n" -- "$@"
}

umask 077
# start DEV BINARY PORT NET: the device on both nodes, NET.1 on n1, NET.2 on n2.
start() {
  local dev=$1 bin=$2 port=$3 net=$4 n i
  wg genkey >"$tmp/$dev-n1.key"
  wg genkey >"$tmp/$dev-n2.key"
  for n in n1 n2; do
    # In its own session, like the agents (see scripts/bench.sh, start_wggo).
    setsid "$weft" lab exec --name "$lab" "$n" -- "$bin" --foreground "$dev" >"$tmp/$dev-$n.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 50); do
      node_exec "$n" wg show "$dev" >/dev/null 2>&1 && break
      kill -0 "${pids[-1]}" 2>/dev/null || { cat "$tmp/$dev-$n.log" >&2; die "$dev on $n exited"; }
      sleep 0.1
    done
  done
  for i in 1 2; do
    n=n$i
    local o=n$((3 - i)) ou=192.168.77.1$((3 - i))
    node_exec "$n" wg set "$dev" listen-port "$port" private-key "$tmp/$dev-$n.key" \
      peer "$(wg pubkey <"$tmp/$dev-$o.key")" endpoint "$ou:$port" allowed-ips "$net.$((3 - i))/32" ||
      die "failed to configure $dev on $n"
    { ip -n "$lab-$n" addr add "$net.$i/24" dev "$dev" && ip -n "$lab-$n" link set "$dev" mtu 1440 up; } ||
      die "failed to bring up $dev on $n"
  done
  for i in $(seq 1 40); do
    ip netns exec "$lab-n1" ping -c 1 -W 1 -q "$net.2" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  die "$net.2 does not answer ping through $dev"
}
start pa0 "$tmp/plain/wireguard" 51991 10.91.0
start pb0 "$tmp/pgo/wireguard" 51992 10.92.0

measure() { # DST STREAMS -> Gbit/s
  ip netns exec "$lab-n2" iperf3 -s -1 -B "$1" -p "$port" >"$tmp/server.log" 2>&1 &
  local srv=$! i
  for i in $(seq 1 50); do
    [ -n "$(ip netns exec "$lab-n2" ss -Hltn "sport = :$port")" ] && break
    [ "$i" -eq 50 ] && die "iperf3 does not listen in $lab-n2"
    sleep 0.1
  done
  ip netns exec "$lab-n1" iperf3 -c "$1" -p "$port" -t "$secs" -P "$2" -J >"$tmp/client.json" ||
    { cat "$tmp/client.json" "$tmp/server.log" >&2; die "iperf3 to $1 failed"; }
  wait "$srv" || true
  jq -er '.end.sum_received.bits_per_second / 1e9' "$tmp/client.json"
}

echo "bench-pgo: $runs rounds of ${secs}s per device and stream count; the first device alternates"
echo "weft $(git describe --always --dirty 2>/dev/null || echo dev), wireguard-go $wgver, $(nproc) CPUs, kernel $(uname -r)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$tmp/pairs"
for r in $(seq 1 "$runs"); do
  for s in 1 2; do
    if [ $((r % 2)) -eq 1 ]; then
      a=$(measure 10.91.0.2 "$s")
      b=$(measure 10.92.0.2 "$s")
    else
      b=$(measure 10.92.0.2 "$s")
      a=$(measure 10.91.0.2 "$s")
    fi
    echo "$s $a $b" >>"$tmp/pairs"
    printf 'round %d/%d  P%d  plain %.2f  profile-guided %.2f Gbit/s  %.3fx\n' "$r" "$runs" "$s" "$a" "$b" "$(echo "$b $a" | awk '{print $1 / $2}')"
  done
done
echo "profile-guided over plain wireguard-go, node -> node:"
for s in 1 2 all; do
  awk -v s="$s" '
    s == "all" || $1 == s { n++; sa += $2; sb += $3; r = $3 / $2; sr += r; if (r > 1) w++ }
    END { printf "  %-10s mean of %2d ratios %.3fx  ratio of means %.3fx  profile-guided faster in %d of %d\n",
          (s == "all") ? "both" : (s == 1) ? "1 stream" : s " streams", n, sr / n, sb / sa, w, n }' "$tmp/pairs"
done
