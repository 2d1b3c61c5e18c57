#!/usr/bin/env bash
# `sudo make demo`: a 3-node WireGuard lab with 2 pods per node, traffic
# between pods on every pair of nodes, then the status and tunnel counters.
set -euo pipefail
cd "$(dirname "$0")/.."
weft=bin/weft
name=weft

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: needs root to create network namespaces: sudo make demo" >&2
  exit 1
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

start=$(date +%s.%N)
"$weft" lab down --name "$name" >/dev/null 2>&1 || true

say "Starting a 3-node weft cluster (WireGuard, 2 pods per node) in network namespaces"
"$weft" lab up --name "$name" --nodes 3 --backend wireguard --pods-per-node 2 --quiet >/dev/null

say "Nodes and pods"
"$weft" lab status --name "$name"

say "Ping and TCP between pods on every pair of nodes"
"$weft" lab check --name "$name"

say "Each node's view: lease and tunnel peers, with WireGuard handshakes and byte counters"
for n in n1 n2 n3; do
  "$weft" lab exec --name "$name" "$n" -- "$weft" status --socket "/run/weft-lab/$name/$n/weft.sock"
  echo
done

say "The WireGuard device on n1, as wg(8) sees it"
"$weft" lab exec --name "$name" n1 -- wg show

end=$(date +%s.%N)
say "Done in $(awk "BEGIN{printf \"%.1f\", $end-$start}") s. Look around:"
cat <<EOF2
  sudo $weft lab status                       # nodes, leases, pods, namespace names
  sudo $weft lab exec n1 -- wg show           # a node's WireGuard device
  sudo $weft lab exec n1/p1 -- ip route       # inside a pod
  sudo $weft lab exec n1/p1 -- ping -c3 <ip of a pod on n2>
  sudo $weft lab node stop n2 && sudo $weft lab node start n2   # crash and restart an agent
  sudo ip netns exec $name-n1 nft list ruleset                  # the masquerade table
Tear down:
  sudo $weft lab down
EOF2
