#!/usr/bin/env bash
# `sudo make demo-services`: a 3-node --kube lab with no kube-proxy. Three
# backend pods (one per node) behind backend-service, a client pod reaching
# it by name through its search path, and the lab's internet reaching the
# Service's NodePort on every node and its LoadBalancer address, load-balanced
# across the backends on all nodes.
set -euo pipefail
cd "$(dirname "$0")/.."
weft=$PWD/bin/weft
name=svcdemo
lb=192.168.78.10

if [ "$(id -u)" -ne 0 ]; then
  echo "demo-services: needs root to create network namespaces: sudo make demo-services" >&2
  exit 1
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
servers=()
cleanup() { for p in "${servers[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$weft" lab down --name "$name" >/dev/null 2>&1 || true
say "Starting a 3-node --kube lab (a real kube-apiserver and controller manager; no kube-proxy)"
"$weft" lab up --name "$name" --nodes 3 --kube --kubelets=false --quiet >/dev/null

say "Three backends (one per node) serving on 8080, and a client pod"
for i in 1 2 3; do
  "$weft" lab pod add "n$i" "backend$i" --name "$name" --quiet --labels app=backend >/dev/null
  "$weft" lab exec --name "$name" "n$i/backend$i" -- "$weft" lab serve 0.0.0.0:8080 &
  servers+=($!)
done
"$weft" lab pod add n1 frontend --name "$name" --quiet >/dev/null
"$weft" lab status --name "$name"

say "backend-service: a ClusterIP, NodePort 30080 and the LoadBalancer address $lb"
"$weft" lab apply --name "$name" -f - <<EOF2
apiVersion: v1
kind: Service
metadata: {name: backend-service, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerIP: $lb
  selector: {app: backend}
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}]
EOF2

ask() { # ask WHERE CMD...: print which backend answered and what source it saw
  local out
  for _ in $(seq 50); do
    if out=$("$@" 2>/dev/null) && [ -n "$out" ]; then
      echo "  $out"
      return 0
    fi
    sleep 0.2
  done
  echo "  no answer" >&2
  return 1
}

say "The frontend pod: curl backend-service:80 (by name, through the pod's search path)"
for _ in 1 2 3 4 5 6; do
  ask "$weft" lab exec --name "$name" n1/frontend -- curl -sS --max-time 2 --http0.9 http://backend-service:80/
done

say "The internet: NodePort 30080 on each node (the backend sees the node, so replies come back)"
for ip in 192.168.77.11 192.168.77.12 192.168.77.13; do
  ask ip netns exec "$name-inet" curl -sS --max-time 2 --http0.9 "http://$ip:30080/"
done

say "The internet: the LoadBalancer address $lb, answered on the underlay by one elected node"
for _ in 1 2 3 4 5 6; do
  ask ip netns exec "$name-inet" curl -sS --max-time 2 --http0.9 "http://$lb/"
done
ip -n "$name-inet" neigh show "$lb"

say "The Service table on n1"
"$weft" lab exec --name "$name" n1 -- nft list table ip weft-services | sed -n 1,40p
echo "  ..."

cat <<EOF3

Look around (the lab stays up; the backends stop with this script):
  sudo $weft lab exec --name $name n1 -- nft list table ip weft-services
  sudo $weft lab exec --name $name n1 -- $weft status --socket /run/weft-lab/$name/n1/weft.sock
Tear down:
  sudo $weft lab down --name $name
EOF3
