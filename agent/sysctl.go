package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// sysctls the data path needs, in the node's network namespace.
var requiredSysctls = map[string]string{
	"net/ipv4/ip_forward": "1",
}

// applySysctls writes each value under root (normally /proc/sys) unless it
// already holds it.
func applySysctls(root string, want map[string]string) error {
	for k, v := range want {
		p := filepath.Join(root, k)
		cur, err := os.ReadFile(p)
		if err == nil && strings.TrimSpace(string(cur)) == v {
			continue
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			return fmt.Errorf("failed to set sysctl %s=%s: %w", strings.ReplaceAll(k, "/", "."), v, err)
		}
	}
	return nil
}
