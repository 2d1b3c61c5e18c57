package cni

import (
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/weftnet/weft/cni/ipam"
	"github.com/weftnet/weft/nodestate"
)

func TestParseConfigDefaults(t *testing.T) {
	conf, err := ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"weft","type":"weft-cni"}`))
	if err != nil {
		t.Fatal(err)
	}
	if conf.StateFile != nodestate.DefaultPath || conf.DataDir != DefaultDataDir || conf.LogFile != "" {
		t.Fatalf("defaults = %q %q %q", conf.StateFile, conf.DataDir, conf.LogFile)
	}
}

func TestParseConfigRuntimeKeys(t *testing.T) {
	// What libcni sends: injected name/cniVersion, runtimeConfig, args,
	// prevResult, both spellings of the GC list, dns and capabilities.
	conf, err := ParseConfig([]byte(`{
		"cniVersion":"1.1.0","name":"weft","type":"weft-cni",
		"stateFile":"/run/weft/../weft/node.json","dataDir":"/tmp/x/","logFile":"/tmp/weft.log",
		"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[]},
		"args":{"cni":{}},"dns":{"nameservers":["10.96.0.10"]},
		"prevResult":{"cniVersion":"1.1.0"},
		"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],
		"cni.dev/attachments":[{"containerID":"b","ifname":"eth1"}],
		"cni.dev/future-key":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if conf.StateFile != "/run/weft/node.json" || conf.DataDir != "/tmp/x" {
		t.Fatalf("paths not cleaned: %q %q", conf.StateFile, conf.DataDir)
	}
	keep := conf.KeepSet()
	if len(keep) != 2 || !keep[ipam.Attachment{ContainerID: "a", IfName: "eth0"}] || !keep[ipam.Attachment{ContainerID: "b", IfName: "eth1"}] {
		t.Fatalf("KeepSet = %v", keep)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		code  uint
		field string // must appear in the error
	}{
		{"not json", `{"cniVersion":`, types.ErrDecodingFailure, ""},
		{"null", `null`, types.ErrDecodingFailure, ""},
		{"array", `[1,2]`, types.ErrDecodingFailure, ""},
		{"empty", ``, types.ErrDecodingFailure, ""},
		{"unknown field", `{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","stateFlie":"/x"}`, types.ErrUnsupportedField, `"stateFlie"`},
		{"unknown field value", `{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","mtu":1400}`, types.ErrUnsupportedField, "1400"},
		{"ipam section", `{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","ipam":{"type":"host-local"}}`, types.ErrUnsupportedField, `"ipam"`},
		{"stateFile wrong type", `{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","stateFile":5}`, types.ErrInvalidNetworkConfig, `"stateFile"`},
		{"stateFile relative", `{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","stateFile":"node.json"}`, types.ErrInvalidNetworkConfig, `"stateFile"`},
		{"stateFile empty", `{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","stateFile":""}`, types.ErrInvalidNetworkConfig, `"stateFile"`},
		{"dataDir relative", `{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","dataDir":"var/lib"}`, types.ErrInvalidNetworkConfig, `"dataDir"`},
		{"dataDir root", `{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","dataDir":"/"}`, types.ErrInvalidNetworkConfig, `"dataDir"`},
		{"logFile relative", `{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","logFile":"x.log"}`, types.ErrInvalidNetworkConfig, `"logFile"`},
		{"logFile object", `{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","logFile":{}}`, types.ErrInvalidNetworkConfig, `"logFile"`},
		{"no name", `{"cniVersion":"1.1.0","type":"weft-cni"}`, types.ErrInvalidNetworkConfig, `"name"`},
		{"no version", `{"name":"weft","type":"weft-cni"}`, types.ErrInvalidNetworkConfig, `"cniVersion"`},
		{"bad attachments", `{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","cni.dev/valid-attachments":"x"}`, types.ErrInvalidNetworkConfig, "cni.dev/valid-attachments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.in))
			var e *types.Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseConfig = %v, want a *types.Error", err)
			}
			if e.Code != tt.code {
				t.Fatalf("code = %d (%v), want %d", e.Code, e, tt.code)
			}
			if !strings.Contains(e.Error(), tt.field) {
				t.Fatalf("error %q does not name %s", e.Error(), tt.field)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		`{"cniVersion":"1.1.0","name":"weft","type":"weft-cni"}`,
		`{"cniVersion":"1.1.0","name":"weft","prevResult":{"ips":[{"address":"x"}]}}`,
		`{"dataDir":null,"stateFile":[]}`, `{}`, `"x"`, `{"cni.dev/valid-attachments":[{}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		conf, err := ParseConfig(b)
		if err != nil {
			var e *types.Error
			if !errors.As(err, &e) {
				t.Fatalf("non-CNI error %T: %v", err, err)
			}
			return
		}
		if conf.Name == "" || conf.DataDir == "" || conf.StateFile == "" {
			t.Fatalf("accepted config without name or paths: %+v", conf)
		}
	})
}
