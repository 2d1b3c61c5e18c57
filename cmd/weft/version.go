package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version, the Go release and whether the build was profile-guided",
		Args:  cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			bi, _ := debug.ReadBuildInfo()
			fmt.Println(versionLine(version, bi))
		},
	}
}

// versionLine is what `weft version` prints: "weft VERSION (GO, profile-guided)".
// A dev build names its commit when the toolchain recorded one. A
// profile-guided build (cmd/weft/default.pgo, see `make pgo-profile`) says
// so, since its embedded WireGuard device carries measurably more on the
// same CPU than one built without.
func versionLine(v string, bi *debug.BuildInfo) string {
	if bi == nil {
		return "weft " + v
	}
	pgo := false
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && v == "dev" && len(s.Value) >= 12:
			v = "dev-" + s.Value[:12]
		case s.Key == "-pgo" && s.Value != "" && s.Value != "off":
			pgo = true
		}
	}
	parts := []string{}
	if bi.GoVersion != "" {
		parts = append(parts, bi.GoVersion)
	}
	if pgo {
		parts = append(parts, "profile-guided")
	}
	if len(parts) == 0 {
		return "weft " + v
	}
	return fmt.Sprintf("weft %s (%s)", v, strings.Join(parts, ", "))
}
