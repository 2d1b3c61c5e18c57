package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionLine(t *testing.T) {
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "0123456789abcdef"}
	pgo := debug.BuildSetting{Key: "-pgo", Value: "/src/cmd/weft/default.pgo"}
	for _, tc := range []struct {
		name    string
		version string
		bi      *debug.BuildInfo
		want    string
	}{
		{"no build info", "v1", nil, "weft v1"},
		{"release, profile-guided", "v1", &debug.BuildInfo{GoVersion: "go1.26.8", Settings: []debug.BuildSetting{rev, pgo}}, "weft v1 (go1.26.8, profile-guided)"},
		{"dev names the commit", "dev", &debug.BuildInfo{GoVersion: "go1.26.8", Settings: []debug.BuildSetting{rev}}, "weft dev-0123456789ab (go1.26.8)"},
		{"pgo off", "v1", &debug.BuildInfo{GoVersion: "go1.26.8", Settings: []debug.BuildSetting{{Key: "-pgo", Value: "off"}}}, "weft v1 (go1.26.8)"},
		{"empty build info", "v1", &debug.BuildInfo{}, "weft v1"},
	} {
		if got := versionLine(tc.version, tc.bi); got != tc.want {
			t.Errorf("%s: versionLine = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestBuiltWithProfile fails when cmd/weft/default.pgo is gone or no longer
// applied: `go test` builds this package's test binary the way `go build`
// builds bin/weft, with -pgo=auto picking up the package's default.pgo.
func TestBuiltWithProfile(t *testing.T) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build info in the test binary")
	}
	for _, s := range bi.Settings {
		if s.Key == "-pgo" {
			if !strings.HasSuffix(s.Value, "default.pgo") {
				t.Fatalf("built with -pgo=%s, want cmd/weft/default.pgo", s.Value)
			}
			return
		}
	}
	t.Fatal("built without a profile: cmd/weft/default.pgo is missing (make pgo-profile records it)")
}
