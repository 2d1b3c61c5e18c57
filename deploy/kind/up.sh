#!/usr/bin/env bash
# Brings up weft on a 3-node kind cluster and proves it: two pods on
# different workers ping each other (deploy/smoke-test.sh).
#
#   deploy/kind/up.sh             # create (or reuse) the cluster, build, install, test
#   deploy/kind/up.sh down        # delete the cluster
#
# Needs docker (or another engine kind supports), kind and kubectl on PATH.
# Environment: CLUSTER (default weft), IMAGE (default weft:dev),
# KIND_NODE_IMAGE (a kindest/node image; default: kind's own).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cluster=${CLUSTER:-weft}
image=${IMAGE:-weft:dev}
ctx=kind-$cluster
kubectl=(kubectl --context "$ctx")

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'up.sh: %s\n' "$*" >&2; exit 1; }

for tool in docker kind kubectl; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is not on PATH"
done

if [[ ${1:-} == down ]]; then
	kind delete cluster --name "$cluster"
	exit 0
fi

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
	log "reusing kind cluster $cluster"
else
	log "creating kind cluster $cluster"
	create=(kind create cluster --name "$cluster" --config "$root/deploy/kind/cluster.yaml")
	if [[ -n ${KIND_NODE_IMAGE:-} ]]; then
		create+=(--image "$KIND_NODE_IMAGE")
	fi
	# Without a CNI the nodes stay NotReady; do not wait for them here.
	"${create[@]}"
fi

log "building $image"
docker build -f "$root/deploy/Dockerfile" \
	--build-arg VERSION="$(git -C "$root" describe --always --dirty 2>/dev/null || echo dev)" \
	-t "$image" "$root"

log "loading $image into the nodes"
kind load docker-image "$image" --name "$cluster"

log "installing weft"
"${kubectl[@]}" apply -f "$root/deploy/kubernetes/namespace.yaml"
if "${kubectl[@]}" -n weft-system get secret weft-gossip-key >/dev/null 2>&1; then
	echo "gossip key secret exists; keeping it"
else
	keydir=$(mktemp -d)
	trap 'rm -rf "$keydir"' EXIT
	# The same format as `weft keygen --gossip key`: base64 of 32 random bytes.
	head -c 32 /dev/urandom | base64 >"$keydir/key"
	"${kubectl[@]}" -n weft-system create secret generic weft-gossip-key --from-file=key="$keydir/key"
fi
# No kube-proxy: the agents reach the API server directly until they serve
# the kubernetes Service themselves (docs/services.md).
"${kubectl[@]}" -n weft-system create configmap weft-apiserver \
	--from-literal=KUBERNETES_SERVICE_HOST="$cluster-control-plane" \
	--from-literal=KUBERNETES_SERVICE_PORT=6443 \
	--dry-run=client -o yaml | "${kubectl[@]}" apply -f -
"${kubectl[@]}" apply -k "$root/deploy/kubernetes"
if [[ $image != weft:dev ]]; then
	# The manifests name weft:dev; point both containers at $image.
	"${kubectl[@]}" -n weft-system set image daemonset/weft agent="$image" install-cni="$image"
else
	# A rebuilt image under the same tag is only picked up by new pods.
	"${kubectl[@]}" -n weft-system rollout restart daemonset/weft
fi

KUBECTL="kubectl --context $ctx" "$root/deploy/smoke-test.sh"

echo
echo "weft is up on kind cluster $cluster:"
echo "  kubectl --context $ctx -n weft-system get pods -o wide"
echo "  deploy/kind/up.sh down   # delete the cluster"
