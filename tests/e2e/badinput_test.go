package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A malformed configuration stops the agent before it touches anything:
// non-zero exit, an error naming the field, no state file, no socket.
func TestAgentRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "gossip.key")
	if out, err := exec.Command(filepath.Join(binDir, "weft"), "keygen", "--gossip", key).CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v %s", err, out)
	}
	base := "nodeName: bad\nstateFile: " + filepath.Join(dir, "node.json") +
		"\nstatusSocket: " + filepath.Join(dir, "weft.sock") +
		"\nmetricsAddress: \"off\"\ngossip:\n  keyFile: " + key + "\n"
	tests := []struct{ name, yaml, field string }{
		{"unknown field", base + "tunnnel: {}\n", "tunnnel"},
		{"bad cluster CIDR", base + "clusterCIDR: 10.244.0.0/99\n", "clusterCIDR"},
		{"bad backend", base + "tunnel:\n  backend: gre\n", "tunnel.backend"},
		{"bad duration", base + "resyncInterval: often\n", "resyncInterval"},
		{"zero resync interval", base + "resyncInterval: 0s\n", "resyncInterval"},
		{"wrong type", base + "blockSize: [24]\n", "blockSize"},
		{"not yaml", "{{{{", "config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, "agent.yaml")
			if err := os.WriteFile(cfg, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(filepath.Join(binDir, "weft"), "agent", "--config", cfg).CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() == 0 {
				t.Fatalf("want a non-zero exit, got %v\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.field) {
				t.Errorf("error does not name %q:\n%s", tc.field, out)
			}
			for _, f := range []string{"node.json", "weft.sock"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
					t.Errorf("%s was created by an agent with a bad config", f)
				}
			}
		})
	}
}

// A gossip key file that is not base64 of 32 bytes, or that other users
// may read, stops the agent before it touches anything, naming the field,
// the file and what is wrong.
func TestAgentRejectsBadKeyFile(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "gossip.key")
	cfg := filepath.Join(dir, "agent.yaml")
	yaml := "nodeName: bad\nstateFile: " + filepath.Join(dir, "node.json") +
		"\nstatusSocket: " + filepath.Join(dir, "weft.sock") +
		"\nmetricsAddress: \"off\"\nunderlay:\n  interface: lo\n  address: 127.0.0.1\ngossip:\n  keyFile: " + key + "\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"not base64", "not base64!\n", 0o600, "base64"},
		{"16 bytes", "MDEyMzQ1Njc4OWFiY2RlZg==\n", 0o600, "16-byte key, want 32"},
		{"world-readable", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n", 0o644, "mode 0644"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(key, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(key, tc.mode); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(filepath.Join(binDir, "weft"), "agent", "--config", cfg).CombinedOutput()
			if err == nil {
				t.Fatalf("agent started with a bad gossip key:\n%s", out)
			}
			for _, w := range []string{"gossip.keyFile", key, tc.want} {
				if !strings.Contains(string(out), w) {
					t.Errorf("error does not say %q:\n%s", w, out)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "node.json")); err == nil {
				t.Error("state file written despite the bad key")
			}
		})
	}
}
