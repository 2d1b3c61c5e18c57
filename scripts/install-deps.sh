#!/usr/bin/env bash
# Installs what building, testing and the demo need, from Debian's archive,
# and only what is missing. Safe to run again.
set -euo pipefail

# command -> Debian package
declare -A want=(
  [ip]=iproute2
  [nft]=nftables
  [wg]=wireguard-tools
  [tcpdump]=tcpdump
  [iperf3]=iperf3
  [ping]=iputils-ping
  [unshare]=util-linux
  [setsid]=util-linux
  [jq]=jq
  [curl]=curl
  [conntrack]=conntrack
  # the lab's real nodes (--kubelets): container runtime, a static shell
  # for its app image, and the loopback CNI plugin containerd calls
  [containerd]=containerd
  [runc]=runc
  [busybox]=busybox-static
  [dig]=bind9-dnsutils
  [nc.openbsd]=netcat-openbsd
  [bash]=bash
)

missing=()
for cmd in "${!want[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
done
[ -x /usr/lib/cni/loopback ] || missing+=(containernetworking-plugins)
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  missing+=(golang-go)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${missing[*]}; run as root (sudo make ...) to install them" >&2
  exit 1
fi
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "install-deps: installing ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
