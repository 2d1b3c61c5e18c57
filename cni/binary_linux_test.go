package cni

// The built binary, driven through its environment and stdin the way a
// runtime drives it. No root needed: nothing here reaches the kernel.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftnet/weft/cni/ipam"
	"github.com/weftnet/weft/nodestate"
)

type binResult struct {
	exitCode int
	stdout   string
	stderr   string
	code     uint // CNI error code, when stdout is an error
	msg      string
}

func runBinary(t *testing.T, bin string, env map[string]string, stdin string) binResult {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := binResult{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.exitCode = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Code uint   `json:"code"`
		Msg  string `json:"msg"`
	}
	if json.Unmarshal(out.Bytes(), &e) == nil {
		r.code, r.msg = e.Code, e.Msg
	}
	return r
}

func TestBinaryProtocolErrors(t *testing.T) {
	bin := filepath.Join(buildPlugin(t), "weft-cni")
	dir := t.TempDir()
	state := filepath.Join(dir, "node.json")
	dataDir := filepath.Join(dir, "ipam")
	conf := func(version string) string {
		return fmt.Sprintf(`{"cniVersion":%q,"name":"weft","type":"weft-cni","stateFile":%q,"dataDir":%q}`, version, state, dataDir)
	}
	full := func(cmd string) map[string]string {
		return map[string]string{"CNI_COMMAND": cmd, "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0",
			"CNI_NETNS": filepath.Join(dir, "no-such-netns"), "CNI_PATH": "/opt/cni/bin"}
	}

	// No CNI_COMMAND: the about line, success.
	if r := runBinary(t, bin, nil, ""); r.exitCode != 0 || !strings.Contains(r.stderr, About) {
		t.Fatalf("bare run: %+v", r)
	}
	// VERSION.
	r := runBinary(t, bin, map[string]string{"CNI_COMMAND": "VERSION"}, "")
	var v struct {
		Supported []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || strings.Join(v.Supported, ",") != "0.3.0,0.3.1,0.4.0,1.0.0,1.1.0" {
		t.Fatalf("VERSION = %q (%v)", r.stdout, err)
	}

	tests := []struct {
		name  string
		env   map[string]string
		stdin string
		code  uint
		want  string // in msg
	}{
		{"unknown command", map[string]string{"CNI_COMMAND": "FROB", "CNI_PATH": "/x"}, conf("1.1.0"), 4, "FROB"},
		{"missing container id", map[string]string{"CNI_COMMAND": "ADD", "CNI_IFNAME": "eth0", "CNI_NETNS": "/x", "CNI_PATH": "/x"}, conf("1.1.0"), 4, "CNI_CONTAINERID"},
		{"bad ifname", map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0/x", "CNI_NETNS": "/x", "CNI_PATH": "/x"}, conf("1.1.0"), 4, ""},
		{"bad container id", map[string]string{"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "-c", "CNI_IFNAME": "eth0", "CNI_PATH": "/x"}, conf("1.1.0"), 4, "containerID"},
		{"garbage stdin", full("ADD"), `{"cniVersion":`, 6, ""},
		{"unknown field", full("ADD"), `{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","bogus":true}`, 2, "bogus"},
		{"bad field", full("DEL"), `{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","dataDir":"rel"}`, 7, "dataDir"},
		{"old version", full("ADD"), conf("0.2.0"), 1, ""},
		{"no cniVersion", full("ADD"), `{"name":"weft","type":"weft-cni"}`, 7, "cniVersion"},
		{"no cniVersion, DEL", full("DEL"), `{"name":"weft","type":"weft-cni"}`, 7, "cniVersion"},
		{"over the size limit", full("ADD"), `{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","cni.dev/pad":"` + strings.Repeat("x", 2*MaxConfigSize) + `"}`, 7, "limit"},
		{"CHECK needs 0.4.0", full("CHECK"), conf("0.3.1"), 1, ""},
		{"GC needs 1.1.0", map[string]string{"CNI_COMMAND": "GC", "CNI_PATH": "/x"}, conf("1.0.0"), 1, ""},
		{"STATUS without state", map[string]string{"CNI_COMMAND": "STATUS", "CNI_PATH": "/x"}, conf("1.1.0"), 50, "not published"},
		{"ADD without state", full("ADD"), conf("1.1.0"), 11, "not published"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runBinary(t, bin, tt.env, tt.stdin)
			if r.exitCode == 0 || r.code != tt.code || !strings.Contains(r.msg, tt.want) {
				t.Fatalf("exit %d, code %d, msg %q (stdout %q); want code %d mentioning %q",
					r.exitCode, r.code, r.msg, r.stdout, tt.code, tt.want)
			}
		})
	}

	// With a state file: ADD into a netns that does not exist is code 3
	// and reserves nothing; STATUS succeeds.
	pfx := netip.MustParsePrefix(testBlock)
	if err := nodestate.Write(state, nodestate.State{Node: "n", PodCIDR: pfx, Gateway: nodestate.GatewayFor(pfx),
		ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"), MTU: testMTU}); err != nil {
		t.Fatal(err)
	}
	if r := runBinary(t, bin, full("ADD"), conf("1.1.0")); r.code != 3 {
		t.Fatalf("ADD into a missing netns: %+v, want code 3", r)
	}
	if r := runBinary(t, bin, map[string]string{"CNI_COMMAND": "STATUS", "CNI_PATH": "/x"}, conf("1.1.0")); r.exitCode != 0 {
		t.Fatalf("STATUS with a state file: %+v", r)
	}
	if s, err := ipam.Open(dataDir); err == nil {
		if l, _ := s.List(); len(l) != 0 {
			t.Fatalf("failed ADD reserved %v", l)
		}
	}
	// DEL of a never-added attachment with no netns succeeds.
	env := full("DEL")
	delete(env, "CNI_NETNS")
	if r := runBinary(t, bin, env, conf("1.1.0")); r.exitCode != 0 {
		t.Fatalf("DEL: %+v", r)
	}
	_ = os.Remove(state)
}
