# weft — see README.md. Every target installs what it needs (scripts/install-deps.sh).
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# The test timeout is generous; the whole suite runs in a few minutes.
TEST_TIMEOUT ?= 20m

.PHONY: all build binaries pgo-check deps controlplane test unit race lint fuzz demo demo-services conformance bench bench-dns bench-services bench-peering bench-policy bench-throughput bench-pgo bench-scale bench-cri pgo-profile clean lab-down

all: build

deps:
	@scripts/install-deps.sh

# bin/weft is built with profile-guided optimisation from cmd/weft/default.pgo
# (`go build -pgo=auto`, the default, made explicit): a CPU profile of agents
# carrying pod traffic over WireGuard, recorded by `make pgo-profile`.
# `make build` fails when the profile was not used (pgo-check); the tests
# build through `binaries`, so a missing profile, a build optimisation, never
# gates them.
build: binaries pgo-check

binaries:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -pgo=auto -trimpath -ldflags '$(LDFLAGS)' -o bin/weft ./cmd/weft
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/weft-cni ./cmd/weft-cni

pgo-check: binaries
	@$(GO) version -m bin/weft | grep -q -- '-pgo=.*default.pgo' || \
		{ echo "bin/weft was built without cmd/weft/default.pgo (make pgo-profile records it)"; exit 1; }

# The test-only Kubernetes control plane (kube-apiserver,
# kube-controller-manager, etcd) for `weft lab up --kube` and the tests that
# need a real API server. Cached in bin/: only the first build is slow.
controlplane: deps
	@scripts/build-controlplane.sh bin

# Everything: unit tests, namespace tests and end-to-end lab tests, then the
# unit tests again under the race detector (`make race`).
# Namespace and end-to-end tests need root; without it they skip, saying why.
test: deps binaries controlplane lint
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) race
	$(MAKE) fuzz

# A short run of the fuzz targets (the seed corpora also run in `go test`).
FUZZ_TIME ?= 10s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzQuery$$' -fuzztime $(FUZZ_TIME) ./dnsproxy/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZ_TIME) ./clusterset/

# Only the tests that need neither root nor the lab, under the race detector.
unit: race

# The short tests (-short: no lab, no long end-to-end runs) under the race
# detector. The whole suite under it would double `make test`.
race:
	$(GO) test -race -count=1 -short -timeout $(TEST_TIMEOUT) ./...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# A 3-node WireGuard lab with 2 pods per node, traffic between every pair.
demo: deps build
	@scripts/demo.sh

# Services in a 3-node --kube lab without kube-proxy: a pod reaching
# backend-service by name, the lab's internet reaching its NodePort on
# every node and its LoadBalancer address, spread over every backend.
demo-services: deps build controlplane
	@scripts/demo-services.sh

# The upstream Kubernetes e2e suite's sig-network [Conformance] tests
# against a 3-node --kube --kubelets lab (FOCUS=, SKIP= to choose others);
# docs/conformance.md keeps the latest run. About half an hour.
conformance: deps build controlplane
	@scripts/conformance.sh

# Every figure in docs/benchmarks.md, each beside its reference: pod-to-pod
# throughput (weft WireGuard and VXLAN against standalone wireguard-go, kernel
# VXLAN and the underlay), the profile-guided build against a plain one on
# wireguard-go's device code, pod setup latency (against bridge + host-local),
# the 1,000-peer tunnel and agent footprint (against wireguard-go + wg + ip),
# gossip at 100 and 1,000 members (simulated clock, 20 minutes), and NetworkPolicy at 1,000 policies over 5,000 pods
# (compile, apply, label change to enforced, throughput against no policy),
# cluster DNS (weft's proxy against CoreDNS, dnsperf; needs
# `make controlplane`), the Service proxy against kube-proxy in nftables mode
# (connect latency, change to enforced, throughput, CPU and RSS at 10,000
# Services), multi-cluster peering (cross-cluster throughput against the
# same path inside one cluster, gateway failover), and the lab with real
# kubelets (up time; pod setup through containerd's CRI against bridge +
# host-local). Slow: more than an hour.
bench: deps build
	@scripts/bench.sh
	@scripts/bench-pgo.sh
	@scripts/bench-scale.sh
	@scripts/bench-dns.sh
	@scripts/bench-services.sh
	@scripts/bench-cri.sh
	$(GO) test -count=1 -timeout 60m -run GossipScaleSimulated -v ./gossip/ -args -sim.members 100,1000 -sim.rest 400s
	$(GO) test -run '^$$' -bench . -benchtime 5x ./policy/
	$(GO) test -count=1 -run TestPolicyBench -v ./tests/e2e/ -args -policy.bench
	$(GO) test -count=1 -run 'TestPeering$$' -v ./tests/e2e/ -args -peering.bench
	$(GO) test -count=1 -run TestServiceTableScale -v ./serviceproxy/ -args -services.scale

# Peering alone: cross-cluster throughput and gateway failover, two --kube labs.
bench-peering: deps build controlplane
	$(GO) test -count=1 -run 'TestPeering$$' -v ./tests/e2e/ -args -peering.bench

# NetworkPolicy alone: compile and apply at 1,000 policies over 5,000 pods,
# label change to enforced and throughput against no policy.
bench-policy: deps build
	$(GO) test -run '^$$' -bench . -benchtime 5x ./policy/
	$(GO) test -count=1 -run TestPolicyBench -v ./tests/e2e/ -args -policy.bench

# dnsperf against weft's DNS proxy and CoreDNS (tests/coredns) in one lab.
bench-dns: deps build controlplane
	@scripts/bench-dns.sh

# weft's Service proxy against kube-proxy in nftables mode (built from the
# same module as the lab's control plane) in one --kube lab: connect latency
# through a ClusterIP at 1,000 and 10,000 Services, EndpointSlice change to
# enforced, throughput through a ClusterIP, CPU and RSS at rest.
bench-services: deps build controlplane
	@scripts/bench-services.sh

bench-throughput: deps build
	@scripts/bench.sh

# The profile-guided build against a plain one, on wireguard-go's device code
# alone: the same module built both ways, side by side in one lab.
bench-pgo: deps build
	@scripts/bench-pgo.sh

bench-scale: deps
	@scripts/bench-scale.sh

# The lab with real kubelets: `lab up --kube --kubelets --nodes 3` to a
# Deployment available, and pod setup through containerd's CRI, weft-cni
# against bridge + host-local under the same containerd. About 15 minutes.
bench-cri: deps build controlplane
	@scripts/bench-cri.sh

# Records cmd/weft/default.pgo again from the code as it is (see
# scripts/pgo-profile.sh), then builds with it. Commit the new profile.
pgo-profile: deps build
	@scripts/pgo-profile.sh
	@$(MAKE) --no-print-directory build

lab-down:
	-bin/weft lab down

clean:
	rm -rf bin
