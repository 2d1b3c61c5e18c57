#!/usr/bin/env bash
# Scale benchmarks (tests/bench), each against a reference measured in the
# same run:
#
#   pod setup latency   weft-cni ADD and DEL, p50 and p99, sequential and
#                       N-way concurrent, against the bridge plugin with
#                       host-local IPAM (containernetworking/plugins at the
#                       version go.mod names), both executed as a runtime
#                       executes them, with a fresh pod netns per ADD.
#                       Target: weft p50 ADD <= 0.5x the reference.
#   tunnel footprint    the WireGuard backend (embedded wireguard-go) in a
#                       process of its own in a fresh netns, applying
#                       PEERS synthetic peers: cold Apply, resync Apply with
#                       nothing changed, RSS at rest; against standalone
#                       wireguard-go programmed by wg(8) and ip(8).
#                       Targets: cold Apply < 1 s, RSS at rest < 50 MiB.
#   agent footprint     a real `weft agent` (WireGuard, embedded device) in a
#                       fresh netns, in a gossip cluster of MEMBERS hosted by
#                       a swarm process beside it: start to every peer
#                       programmed, RSS and CPU at rest; against standalone
#                       wireguard-go with the same peers.
#
# Settings (environment):
#   WEFT_BENCH_PODS         sequential pods per plugin (default 100)
#   WEFT_BENCH_CONCURRENCY  simultaneous ADDs/DELs per burst (default 50)
#   WEFT_BENCH_ROUNDS       concurrent bursts per plugin (default 3)
#   WEFT_BENCH_PEERS        tunnel peers (default 1000)
#   WEFT_BENCH_RESYNCS      resync Applies, the median is reported (default 5)
#   WEFT_BENCH_MEMBERS      gossip members of the agent footprint run (default 1000)
#   WEFT_BENCH_REST         seconds of its window at rest: CPU, and RSS sampled each second (default 120)
#   WEFT_BENCH_CPUPROFILE   FILE: CPU (and FILE.heap) profile of the tunnel child
#   WEFT_BENCH_HEAPPROFILE  FILE: heap profile of the agent at rest (turns its heap profiling on: +1.5 MB)
#   BENCH_ONLY              a -bench regexp: PodSetup, TunnelFootprint or AgentFootprint
#
# A missed target is reported, not fatal (exit 0); a failed measurement
# exits non-zero. Every namespace, process and file the benchmarks create
# is removed when they end.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
go=${GO:-go}

die() { echo "bench-scale: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root to create network namespaces: sudo scripts/bench-scale.sh"
for cmd in ip wg; do
  command -v "$cmd" >/dev/null || die "$cmd is missing: make deps"
done
for v in WEFT_BENCH_PODS WEFT_BENCH_CONCURRENCY WEFT_BENCH_ROUNDS WEFT_BENCH_PEERS WEFT_BENCH_RESYNCS WEFT_BENCH_MEMBERS WEFT_BENCH_REST; do
  val=${!v:-}
  [ -z "$val" ] || [[ $val =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, not '$val'"
done

echo "weft $(git describe --always --dirty 2>/dev/null || echo dev), $("$go" version | cut -d' ' -f3)"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "command: $0 (go test ./tests/bench -run '^\$' -bench '${BENCH_ONLY:-.}' -benchtime 1x -count 1 -v)"

# -benchtime 1x: every benchmark is one campaign with its own sample count.
# The go test lines that only repeat the package and CPU are left out.
"$go" test ./tests/bench -run '^$' -bench "${BENCH_ONLY:-.}" -benchtime 1x -count 1 -timeout 30m -v 2>&1 |
  grep -Ev '^(goos|goarch|pkg|cpu): ' || die "a benchmark failed (see above)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
