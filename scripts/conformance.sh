#!/usr/bin/env bash
# `sudo make conformance`: the upstream Kubernetes e2e suite (e2e.test, built
# from the same module as the lab's control plane) against a 3-node
# `weft lab up --kube --kubelets`: real kubelets and containerd, weft as the
# pod network, Service proxy and cluster DNS, no kube-proxy.
#
#   FOCUS   ginkgo focus (default: every sig-network [Conformance] test)
#   SKIP    ginkgo skip (default: tests that need a cloud or more than one lab)
#   E2E_FLAGS  more flags for e2e.test (e.g. --ginkgo.v to name every test as it runs)
#   REPORT  where the JUnit report and the e2e log go (default /tmp/weft-conformance)
#   KEEP=1  leave the lab up afterwards
#
# It prints how many ran, passed, failed and were skipped, and the failures by
# name; docs/conformance.md keeps the latest full run with the reason of each
# failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
name=${LAB:-conform}
focus=${FOCUS:-'\[sig-network\].*\[Conformance\]'}
skip=${SKIP:-'\[Disruptive\]|\[Flaky\]|\[Feature:.*\]|LoadBalancer|ESIPP|GCE|AWS|Azure'}
report=${REPORT:-/tmp/weft-conformance}

if [ "$(id -u)" -ne 0 ]; then
  echo "conformance: needs root to create network namespaces: sudo make conformance" >&2
  exit 1
fi
[ -x bin/e2e.test ] || { echo "conformance: bin/e2e.test is missing (scripts/build-e2e.sh builds it)" >&2; exit 1; }

cleanup() { [ -n "${KEEP:-}" ] || bin/weft lab down --name "$name" -q || true; }
trap cleanup EXIT
bin/weft lab down --name "$name" -q >/dev/null 2>&1 || true
start=$(date +%s)
bin/weft lab up --kube --kubelets --name "$name" --nodes 3 --timeout 3m -q >/dev/null
echo "conformance: lab $name up in $(($(date +%s) - start))s"

rm -rf "$report" && mkdir -p "$report"
kubeconfig=$(bin/weft lab kubeconfig --name "$name")
start=$(date +%s)
set +e
# The API server answers inside the lab only: run the suite from the
# control plane's namespace, with the lab's kubectl first on PATH.
ip netns exec "$name-cp" env PATH="$root/bin:$PATH" KUBECONFIG="$kubeconfig" \
  "$root/bin/e2e.test" \
  --kubeconfig="$kubeconfig" \
  --provider=skeleton \
  --report-dir="$report" \
  --ginkgo.focus="$focus" \
  --ginkgo.skip="$skip" \
  --ginkgo.no-color \
  --ginkgo.timeout=3h \
  --ginkgo.flake-attempts=1 \
  --minStartupPods=0 \
  --allowed-not-ready-nodes=0 \
  --node-schedulable-timeout=2m \
  ${E2E_FLAGS:-} \
  >"$report/e2e.log" 2>&1
rc=$?
set -e
echo "conformance: e2e.test finished in $(($(date +%s) - start))s (exit $rc); log $report/e2e.log"
go run ./tests/conformance/summary "$report"/junit*.xml
exit $rc
