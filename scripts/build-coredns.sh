#!/usr/bin/env bash
# Builds the reference CoreDNS for `make bench-dns` from the module pinned in
# tests/coredns (kubernetes, cache, forward, template and errors plugins)
# into BINDIR/coredns (default bin/). Cached like the control plane: a stamp
# of go.mod, go.sum, main.go, this script and the Go version; FORCE=1
# rebuilds. A cold build takes a few minutes on two cores.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bindir=${1:-$root/bin}
mkdir -p "$bindir"
bindir=$(cd "$bindir" && pwd)
mod=$root/tests/coredns
export PATH=/usr/local/go/bin:$PATH

stamp=$bindir/.coredns-stamp
want=$(cat "$mod/go.mod" "$mod/go.sum" "$mod/main.go" "${BASH_SOURCE[0]}" <(go version) | sha256sum | cut -d' ' -f1)
if [[ -z ${FORCE:-} && -x $bindir/coredns && -f $stamp && $(cat "$stamp") == "$want" ]]; then
	exit 0
fi
version=$(cd "$mod" && go list -m -f '{{.Version}}' github.com/coredns/coredns)
echo "build-coredns: building CoreDNS $version into $bindir (a few minutes when cold)" >&2
rm -f "$stamp"
(cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$bindir/coredns" .)
echo "$want" >"$stamp"
