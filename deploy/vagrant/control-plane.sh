#!/usr/bin/env bash
# The control plane: kubeadm init with the pod network weft uses, the join
# command and a kubeconfig for the host, then weft itself.
#
#   control-plane.sh NODE_IP POD_CIDR        (run as root by Vagrant)
set -euo pipefail

node_ip=${1:?node IP}
pod_cidr=${2:?pod CIDR}
generated=/weft/deploy/vagrant/.generated
export KUBECONFIG=/etc/kubernetes/admin.conf

if [[ ! -f $KUBECONFIG ]]; then
	# --pod-network-cidr makes the controller manager give every node a /24
	# of it (spec.podCIDR), which weft takes as the node's lease. No
	# kube-proxy: weft serves Services.
	kubeadm init \
		--apiserver-advertise-address="$node_ip" \
		--pod-network-cidr="$pod_cidr" \
		--skip-phases=addon/kube-proxy
fi

install -d -o vagrant -g vagrant /home/vagrant/.kube
install -m 0600 -o vagrant -g vagrant "$KUBECONFIG" /home/vagrant/.kube/config

mkdir -p "$generated"
kubeadm token create --print-join-command >"$generated/join.sh"
cp "$KUBECONFIG" "$generated/admin.conf"

# weft: the gossip key once, then the manifests.
kubectl apply -f /weft/deploy/kubernetes/namespace.yaml
if ! kubectl -n weft-system get secret weft-gossip-key >/dev/null 2>&1; then
	keydir=$(mktemp -d)
	# The same format as `weft keygen --gossip key`: base64 of 32 random bytes.
	head -c 32 /dev/urandom | base64 >"$keydir/key"
	kubectl -n weft-system create secret generic weft-gossip-key --from-file=key="$keydir/key"
	rm -rf "$keydir"
fi
# Without kube-proxy the agents reach the API server directly until they
# serve the kubernetes Service themselves (docs/services.md).
kubectl -n weft-system create configmap weft-apiserver \
	--from-literal=KUBERNETES_SERVICE_HOST="$node_ip" \
	--from-literal=KUBERNETES_SERVICE_PORT=6443 \
	--dry-run=client -o yaml | kubectl apply -f -
kubectl apply -k /weft/deploy/kubernetes
kubectl -n weft-system rollout status daemonset/weft --timeout=5m
kubectl get nodes -o wide
