#!/usr/bin/env bash
# A worker: join the cluster with the command the control plane wrote.
#
#   worker.sh        (run as root by Vagrant, after the control plane is up)
set -euo pipefail

join=/weft/deploy/vagrant/.generated/join.sh
if [[ -f /etc/kubernetes/kubelet.conf ]]; then
	echo "worker.sh: $(hostname) has already joined"
	exit 0
fi
if [[ ! -f $join ]]; then
	echo "worker.sh: $join is missing: provision the control plane (cp) first" >&2
	exit 1
fi
bash "$join"
echo "worker.sh: $(hostname) joined"
