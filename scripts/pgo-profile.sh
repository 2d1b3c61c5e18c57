#!/usr/bin/env bash
# `sudo make pgo-profile`: records the CPU profile that `go build` uses to
# optimise bin/weft (profile-guided optimisation, cmd/weft/default.pgo).
#
# Where the kernel has no WireGuard module, the agent's hot path is its
# embedded wireguard-go device carrying pod traffic, so that is what is
# profiled (with the kernel module the data path is not in the agent at all): a 2-node WireGuard lab with one pod
# per node, TCP from n1/p1 to n2/p1 with iperf3, and a CPU profile taken from
# both agents at once (n1 encrypts, n2 decrypts) over the same window. The two
# profiles are merged into one. Code the profile does not cover is built as
# without it; a stale profile costs some of the gain, never correctness.
#
# Settings (environment):
#   PGO_SECONDS  length of the profiled window (default 30)
#   PGO_STREAMS  parallel TCP streams (default 2)
#   PGO_OUT      where to write the profile (default cmd/weft/default.pgo)
#
# Everything the script starts (the lab, iperf3) is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

weft=bin/weft
go=${GO:-go}
secs=${PGO_SECONDS:-30}
streams=${PGO_STREAMS:-2}
out=${PGO_OUT:-cmd/weft/default.pgo}

die() { echo "pgo-profile: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root to create network namespaces: sudo make pgo-profile"
[ -x "$weft" ] || die "$weft is missing: make build"
[[ $secs =~ ^[1-9][0-9]*$ ]] || die "PGO_SECONDS must be a positive integer, not '$secs'"
[[ $streams =~ ^[1-9][0-9]*$ ]] || die "PGO_STREAMS must be a positive integer, not '$streams'"
for cmd in iperf3 jq curl ss; do
  command -v "$cmd" >/dev/null || die "$cmd is missing: make deps"
done

. scripts/lib/benchlab.sh
benchlab_init pgo pgo-profile

echo "pgo-profile: starting lab $lab (wireguard, 2 nodes, 1 pod each)"
"$weft" lab up -q --name "$lab" --nodes 2 --backend wireguard --mtu 1500 --pods-per-node 1 \
  >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log" >&2; die "failed to start lab $lab"; }
dst=$("$weft" lab status --json --name "$lab" |
  jq -er '.pods[] | select(.node == "n2" and .name == "p1") | .ip') || die "lab $lab has no pod n2/p1"

# Wait for the tunnel (handshake, neighbours), then one server for one client;
# the client runs four seconds longer than the profile, which starts two
# seconds in, so the window sees traffic from end to end.
for i in $(seq 1 40); do
  ip netns exec "$lab-n1-p1" ping -c 1 -W 1 -q "$dst" >/dev/null 2>&1 && break
  [ "$i" -eq 40 ] && die "$dst does not answer ping from $lab-n1-p1"
  sleep 0.25
done
ip netns exec "$lab-n2-p1" iperf3 -s -1 -D -p 5202 || die "failed to start iperf3 in $lab-n2-p1"
for i in $(seq 1 50); do
  [ -n "$(ip netns exec "$lab-n2-p1" ss -Hltn "sport = :5202")" ] && break
  [ "$i" -eq 50 ] && die "iperf3 does not listen in $lab-n2-p1"
  sleep 0.1
done
ip netns exec "$lab-n1-p1" iperf3 -c "$dst" -p 5202 -t $((secs + 4)) -P "$streams" -J >"$tmp/iperf.json" &
client=$!
pids+=("$client")
sleep 2

echo "pgo-profile: profiling both agents for ${secs}s under pod-to-pod traffic"
profile() { # NODE
  ip netns exec "$lab-$1" curl -sf -o "$tmp/$1.pprof" \
    "http://127.0.0.1:9464/debug/pprof/profile?seconds=$secs"
}
profile n1 &
p1=$!
pids+=("$p1")
profile n2 || die "failed to fetch the profile from $lab-n2"
wait "$p1" || die "failed to fetch the profile from $lab-n1"
wait "$client" || die "iperf3 failed"
pids=()
gbps=$(jq -r '.end.sum_received.bits_per_second / 1e9 * 100 | round / 100' "$tmp/iperf.json")
# A window without real traffic would profile the agent at rest; keep the
# profile in place rather than replace it with that.
awk -v g="$gbps" 'BEGIN { exit !(g >= 0.1) }' ||
  die "only ${gbps} Gbit/s crossed the tunnel during the window; $out left as it was"

"$go" tool pprof -proto "$tmp/n1.pprof" "$tmp/n2.pprof" >"$tmp/merged.pgo" 2>"$tmp/pprof.log" ||
  { cat "$tmp/pprof.log" >&2; die "failed to merge the profiles"; }
mv "$tmp/merged.pgo" "$out"
echo "pgo-profile: wrote $out ($(wc -c <"$out") bytes; ${gbps} Gbit/s during the window)"
[ "$out" = cmd/weft/default.pgo ] && echo "pgo-profile: make build now optimises bin/weft with it"
exit 0
