// Package bench holds weft's scale benchmarks: pod setup latency of
// weft-cni against the reference bridge + host-local plugins, and the
// footprint of the WireGuard backend with many peers. They need root (they
// create network namespaces) and skip, saying why, without it.
//
// Run them with scripts/bench-scale.sh, or:
//
//	sudo go test ./tests/bench -run '^$' -bench . -benchtime 1x -v
//
// Every benchmark runs one fixed campaign (its b.N is 1: a campaign takes
// longer than the default bench time), prints a table of the figures with
// the reference measured in the same run, and reports the headline figures
// with b.ReportMetric. Nothing asserts on wall-clock speed.
package bench

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	// The footprint benchmark re-executes this binary inside a network
	// namespace as the process whose footprint it measures.
	if os.Getenv(envFootprintHelper) != "" {
		os.Exit(runFootprintHelper())
	}
	// The agent footprint benchmark runs its gossip swarm the same way.
	if os.Getenv(envSwarm) != "" {
		os.Exit(runSwarm())
	}
	os.Exit(m.Run())
}

func requireRoot(b *testing.B) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root: creates network namespaces")
	}
}

// envInt reads a positive integer setting from the environment.
func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("%s must be a positive integer, not %q", name, s)
	}
	return n
}

// loadavg is the first three fields of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// machine describes the CPUs and kernel, for the figures' provenance.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "unknown"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d CPUs, %s, kernel %s", runtime.NumCPU(), model, kernel)
}
