# Sourced by the scripts that measure in weft labs (bench.sh, bench-dns.sh,
# bench-pgo.sh, pgo-profile.sh). The sourcing script sets weft (the binary),
# go (the toolchain) and die ().

# benchlab_init PREFIX NAME: one lab of the script's own, lab=PREFIX<pid>, a
# scratch directory tmp (/tmp/weft-NAME.*), and a cleanup on exit, also on
# Ctrl-C: it stops every pid the script added to pids, any iperf3 left in the
# lab's namespaces, removes the lab and the scratch directory. A lab of that
# name that exists already is not touched.
benchlab_init() {
  lab=$1$$
  benchlab_name=$2
  pids=()
  if "$weft" lab status --name "$lab" >/dev/null 2>&1; then
    die "a lab named $lab exists already; not touching it"
  fi
  tmp=$(mktemp -d "/tmp/weft-$2.XXXXXX")
  trap benchlab_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

benchlab_cleanup() {
  local rc=$? p ns
  trap - EXIT INT TERM
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  for ns in $(ip netns list | awk -v pre="$lab-" 'index($1, pre) == 1 {print $1}'); do
    for p in $(ip netns pids "$ns" 2>/dev/null); do
      [ "$(cat "/proc/$p/comm" 2>/dev/null)" = iperf3 ] && kill "$p" 2>/dev/null
    done
  done
  "$weft" lab down -q --name "$lab" >/dev/null 2>&1 || echo "$benchlab_name: failed to remove lab $lab" >&2
  rm -rf "$tmp"
  exit "$rc"
}

# wireguard_go_version: the version of golang.zx2c4.com/wireguard go.mod names,
# the one weft embeds.
wireguard_go_version() {
  "$go" list -m -f '{{.Version}}' golang.zx2c4.com/wireguard ||
    die "failed to read the version of golang.zx2c4.com/wireguard from go.mod"
}

# build_wireguard_go VERSION DIR PGO: standalone wireguard-go at VERSION into
# DIR/wireguard, with bin/weft's flags (static, -trimpath, -s -w); PGO is
# "off" or a profile to build with.
build_wireguard_go() {
  GOBIN="$2" GOFLAGS='' CGO_ENABLED=0 "$go" install -pgo="$3" -trimpath -ldflags '-s -w' \
    "golang.zx2c4.com/wireguard@$1" || die "failed to build golang.zx2c4.com/wireguard@$1 (pgo $3)"
}
