#!/usr/bin/env bash
# Proves the pod network on a cluster running weft: waits for the weft
# DaemonSet and every node, starts a pod on each of two worker nodes, and
# pings each from the other (pod IP to pod IP, across the tunnel).
#
#   deploy/smoke-test.sh                      # the current kubectl context
#   KUBECTL="kubectl --context kind-weft" deploy/smoke-test.sh
#
# Leaves nothing behind: the two pods are deleted at the end (or on failure).
set -euo pipefail

read -r -a kubectl <<<"${KUBECTL:-kubectl}"
log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'smoke-test: %s\n' "$*" >&2; exit 1; }

log "waiting for the weft DaemonSet and the nodes"
"${kubectl[@]}" -n weft-system rollout status daemonset/weft --timeout=5m
"${kubectl[@]}" wait --for=condition=Ready nodes --all --timeout=5m
"${kubectl[@]}" get nodes -o wide

workers=()
while IFS= read -r n; do
	[[ -n $n ]] && workers+=("$n")
done < <("${kubectl[@]}" get nodes -l '!node-role.kubernetes.io/control-plane' \
	-o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
((${#workers[@]} >= 2)) || die "want two worker nodes, found ${#workers[@]}"

pods=(weft-smoke-a weft-smoke-b)
cleanup() { "${kubectl[@]}" -n default delete pod "${pods[@]}" --ignore-not-found --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT
"${kubectl[@]}" -n default delete pod "${pods[@]}" --ignore-not-found --wait=true

log "a pod on ${workers[0]} and one on ${workers[1]}"
for i in 0 1; do
	# nodeName pins each pod to its node without going through the scheduler.
	"${kubectl[@]}" apply -f - <<POD
apiVersion: v1
kind: Pod
metadata:
  name: ${pods[$i]}
  namespace: default
  labels:
    app.kubernetes.io/name: weft-smoke
spec:
  nodeName: ${workers[$i]}
  terminationGracePeriodSeconds: 0
  containers:
    - name: shell
      image: busybox:1.37
      command: ["sleep", "3600"]
POD
done
"${kubectl[@]}" -n default wait --for=condition=Ready "pod/${pods[0]}" "pod/${pods[1]}" --timeout=3m

ip_a=$("${kubectl[@]}" -n default get pod "${pods[0]}" -o jsonpath='{.status.podIP}')
ip_b=$("${kubectl[@]}" -n default get pod "${pods[1]}" -o jsonpath='{.status.podIP}')
echo "${pods[0]} $ip_a on ${workers[0]}; ${pods[1]} $ip_b on ${workers[1]}"

log "ping across nodes"
"${kubectl[@]}" -n default exec "${pods[0]}" -- ping -c 3 -W 2 "$ip_b"
"${kubectl[@]}" -n default exec "${pods[1]}" -- ping -c 3 -W 2 "$ip_a"

log "the agent on ${workers[0]}"
agent=$("${kubectl[@]}" -n weft-system get pods -l app.kubernetes.io/component=agent \
	--field-selector "spec.nodeName=${workers[0]}" -o jsonpath='{.items[0].metadata.name}')
"${kubectl[@]}" -n weft-system exec "$agent" -c agent -- weft status || true
"${kubectl[@]}" -n weft-system exec "$agent" -c agent -- wg show || true

log "smoke test passed: pods on different nodes reach each other"
