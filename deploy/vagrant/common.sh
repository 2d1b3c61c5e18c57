#!/usr/bin/env bash
# Every node: containerd, kubelet, kubeadm and kubectl from pkgs.k8s.io, the
# kernel settings kubeadm checks, and the weft image imported into containerd.
#
#   common.sh NODE_IP K8S_MINOR        (run as root by Vagrant)
set -euo pipefail

node_ip=${1:?node IP}
k8s=${2:?Kubernetes minor, e.g. v1.34}
image_tar=/weft/deploy/vagrant/.generated/weft-image.tar
export DEBIAN_FRONTEND=noninteractive

if [[ ! -f $image_tar ]]; then
	echo "common.sh: $image_tar is missing: build it on the host first (deploy/vagrant/up.sh does)" >&2
	exit 1
fi

# kubelet refuses to run with swap on (by default).
swapoff -a
sed -ri '/\sswap\s/s/^([^#])/#\1/' /etc/fstab

# kubeadm's preflight wants IPv4 forwarding; weft routes pods through it.
cat >/etc/modules-load.d/weft-k8s.conf <<CONF
overlay
br_netfilter
CONF
modprobe overlay
modprobe br_netfilter
cat >/etc/sysctl.d/90-weft-k8s.conf <<CONF
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
CONF
sysctl --system >/dev/null

apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	ca-certificates curl gpg containerd wireguard-tools iproute2 nftables >/dev/null

# Kubernetes packages (pkgs.k8s.io, one repository per minor release).
install -d -m 0755 /etc/apt/keyrings
curl -fsSL "https://pkgs.k8s.io/core:/stable:/${k8s}/deb/Release.key" |
	gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/${k8s}/deb/ /" \
	>/etc/apt/sources.list.d/kubernetes.list
apt-get update -qq
apt-get install -y -qq kubelet kubeadm kubectl >/dev/null
apt-mark hold kubelet kubeadm kubectl >/dev/null

# containerd: the systemd cgroup driver (kubelet's default), the pause image
# this kubeadm expects, and CNI from /opt/cni/bin and /etc/cni/net.d, where
# kubernetes-cni and weft's init container put their plugins.
pause=$(kubeadm config images list --kubernetes-version "$(kubeadm version -o short)" 2>/dev/null | grep /pause: || true)
install -d /etc/containerd
containerd config default >/etc/containerd/config.toml
sed -ri \
	-e 's/^(\s*)SystemdCgroup = false/\1SystemdCgroup = true/' \
	-e 's#^(\s*)bin_dir = .*#\1bin_dir = "/opt/cni/bin"#' \
	-e 's#^(\s*)conf_dir = .*#\1conf_dir = "/etc/cni/net.d"#' \
	/etc/containerd/config.toml
if [[ -n $pause ]]; then
	sed -ri "s#^(\s*)sandbox_image = .*#\1sandbox_image = \"${pause}\"#" /etc/containerd/config.toml
fi
systemctl restart containerd
systemctl enable containerd >/dev/null

# The kubelet reports the private network address as the node's InternalIP
# (without this it takes the NAT interface's, the same on every VM). weft's
# DaemonSet passes that address to the agent as its underlay address.
echo "KUBELET_EXTRA_ARGS=--node-ip=${node_ip}" >/etc/default/kubelet
systemctl enable kubelet >/dev/null

# The weft image, so the DaemonSet's weft:dev (imagePullPolicy IfNotPresent)
# is found without a registry.
ctr -n k8s.io images import "$image_tar" >/dev/null
ctr -n k8s.io images ls -q | grep -E '(^|/)weft:dev$' >/dev/null ||
	{ echo "common.sh: weft:dev not found after importing $image_tar" >&2; exit 1; }
echo "common.sh: $(hostname) ready for kubeadm ($node_ip)"
