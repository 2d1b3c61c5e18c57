#!/usr/bin/env bash
# Builds the test-only Kubernetes control plane that lab/kube runs:
# kube-apiserver, kube-controller-manager and kube-scheduler, and for the
# lab's real nodes kubelet, kube-proxy, kubectl and agnhost (the upstream test
# suites' image binary), and the upstream e2e suite (e2e.test), from the
# k8s.io/kubernetes module
# pinned in tests/controlplane/go.mod; etcd from Debian's etcd-server.
#
#   scripts/build-controlplane.sh [BINDIR]     # default: bin/ in the repo
#
# The build is cached: BINDIR/.controlplane-stamp holds a hash of
# tests/controlplane/go.mod, go.sum, this script and the Go version, and a run
# whose binaries and stamp match does nothing. Set FORCE=1 to rebuild anyway.
# A cold build takes several minutes; the Go build cache makes a forced
# rebuild much faster. With go.sum committed and the module cache filled the
# build needs no network.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bindir=${1:-$root/bin}
mkdir -p "$bindir"
bindir=$(cd "$bindir" && pwd)
mod=$root/tests/controlplane
export PATH=/usr/local/go/bin:$PATH

log() { printf 'build-controlplane: %s\n' "$*" >&2; }

# etcd: Debian's etcd-server package (/usr/bin/etcd, 3.4.x).
if ! command -v etcd >/dev/null 2>&1; then
	if [[ $(id -u) -ne 0 ]]; then
		log "etcd is missing and installing it needs root (apt-get install etcd-server)"
		exit 1
	fi
	log "installing etcd-server"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
fi
log "etcd: $(command -v etcd) ($(etcd --version 2>/dev/null | head -n1))"

stamp=$bindir/.controlplane-stamp
want=$(cat "$mod/go.mod" "$mod/go.sum" "${BASH_SOURCE[0]}" <(go version) | sha256sum | cut -d' ' -f1)
pkgs=(cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet cmd/kube-proxy cmd/kubectl test/images/agnhost)
tools=("${pkgs[@]##*/}")
uptodate=1
for t in "${tools[@]}" e2e.test; do [[ -x $bindir/$t ]] || uptodate=; done
[[ -f $bindir/agnhost-files/localhost.crt ]] || uptodate=
if [[ -z ${FORCE:-} && -n $uptodate && -f $stamp && $(cat "$stamp") == "$want" ]]; then
	log "${tools[*]} in $bindir are up to date"
	exit 0
fi

cd "$mod"
version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
major=${version#v}
major=${major%%.*}
minor=${version#v*.}
minor=${minor%%.*}
# The same version stamps hack/lib/version.sh sets, so /version and the
# binaries' --version report the release (no build date: reproducible).
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

log "building ${tools[*]} $version into $bindir (several minutes when cold)"
rm -f "$stamp"
start=$(date +%s)
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bindir/" "${pkgs[@]/#/k8s.io/kubernetes/}"
# The upstream e2e suite (scripts/conformance.sh): a test binary. tools.go
# keeps its packages in go.mod; vet is the upstream's business.
# agnhost's image carries the porter's TLS certificate at its root.
kdir=$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)
mkdir -p "$bindir/agnhost-files"
install -m 0644 "$kdir/test/images/agnhost/porter/localhost.crt" "$kdir/test/images/agnhost/porter/localhost.key" "$bindir/agnhost-files/"
CGO_ENABLED=0 go test -c -vet=off -trimpath -ldflags "$ldflags" -o "$bindir/e2e.test" k8s.io/kubernetes/test/e2e
echo "$want" >"$stamp"
log "built in $(($(date +%s) - start))s: $("$bindir/kube-apiserver" --version)"
