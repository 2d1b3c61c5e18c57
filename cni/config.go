package cni

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/weftnet/weft/cni/ipam"
	"github.com/weftnet/weft/nodestate"
)

// DefaultDataDir is where the IPAM store lives unless "dataDir" says
// otherwise.
const DefaultDataDir = "/var/lib/cni/weft"

// NetConf is weft-cni's network configuration: one entry of a conflist,
// plus what the runtime injects (name, cniVersion, prevResult, runtimeConfig,
// cni.dev/valid-attachments).
type NetConf struct {
	types.PluginConf

	// StateFile is the node state file the agent writes.
	// Unset means nodestate.DefaultPath.
	StateFile string `json:"stateFile,omitempty"`
	// DataDir holds the IPAM store. Unset means DefaultDataDir.
	DataDir string `json:"dataDir,omitempty"`
	// LogFile, when set, receives one JSON log line per event. Unset
	// means no logging.
	LogFile string `json:"logFile,omitempty"`

	// LegacyAttachments is the spelling of cni.dev/valid-attachments
	// that libcni also sends (containernetworking/cni#1101).
	LegacyAttachments []types.GCAttachment `json:"cni.dev/attachments,omitempty"`
}

// knownFields are the top-level keys weft-cni accepts: its own, and those
// the spec lets a runtime or conflist put in a plugin's configuration.
// Keys under the runtime-reserved "cni.dev/" prefix are accepted as well.
var knownFields = map[string]bool{
	"cniVersion": true, "cniVersions": true, "name": true, "type": true,
	"args": true, "capabilities": true, "runtimeConfig": true,
	"dns": true, "prevResult": true, "ipam": true,
	"disableCheck": true, "disableGC": true,
	"stateFile": true, "dataDir": true, "logFile": true,
}

// ParseConfig decodes and validates the plugin's stdin. Errors are
// *types.Error with the spec's codes: 6 when stdin is not a JSON object,
// 2 for an unknown field, 7 for a field with a bad value or for input
// over MaxConfigSize. Every message names the field (or the limit).
func ParseConfig(stdin []byte) (*NetConf, error) {
	if len(stdin) > MaxConfigSize {
		return nil, tooLarge()
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(stdin, &raw); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "failed to decode network configuration", err.Error())
	}
	if raw == nil {
		return nil, types.NewError(types.ErrDecodingFailure, "failed to decode network configuration", "configuration is null, not a JSON object")
	}
	var unknown []string
	for k := range raw {
		if !knownFields[k] && !strings.HasPrefix(k, "cni.dev/") {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		k := unknown[0]
		return nil, types.NewError(types.ErrUnsupportedField,
			fmt.Sprintf("unsupported field %q in network configuration", k),
			fmt.Sprintf("%q: %s (weft-cni accepts stateFile, dataDir, logFile and the standard CNI keys)", k, truncate(raw[k], 80)))
	}

	conf := &NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, invalidField(te.Field, fmt.Sprintf("must be a %v, not a JSON %s", te.Type, te.Value))
		}
		return nil, types.NewError(types.ErrDecodingFailure, "failed to decode network configuration", err.Error())
	}
	if err := conf.validate(raw); err != nil {
		return nil, err
	}
	return conf, nil
}

func (c *NetConf) validate(raw map[string]json.RawMessage) error {
	if c.CNIVersion == "" {
		return invalidField("cniVersion", "is required")
	}
	if c.Name == "" {
		return invalidField("name", "is required")
	}
	if c.IPAM.Type != "" {
		return types.NewError(types.ErrUnsupportedField,
			`unsupported field "ipam" in network configuration`,
			fmt.Sprintf(`"ipam": %s (weft-cni has built-in IPAM; remove the ipam section)`, truncate(raw["ipam"], 80)))
	}
	for _, f := range []struct {
		name string
		val  *string
		def  string
	}{
		{"stateFile", &c.StateFile, nodestate.DefaultPath},
		{"dataDir", &c.DataDir, DefaultDataDir},
		{"logFile", &c.LogFile, ""},
	} {
		if _, set := raw[f.name]; set && *f.val == "" && f.def != "" {
			return invalidField(f.name, "is empty; leave it out to use the default "+f.def)
		}
		if *f.val == "" {
			*f.val = f.def
			continue
		}
		if !filepath.IsAbs(*f.val) {
			return invalidField(f.name, fmt.Sprintf("%q is not an absolute path", *f.val))
		}
		*f.val = filepath.Clean(*f.val)
	}
	if c.DataDir == "/" {
		return invalidField("dataDir", `must not be "/"`)
	}
	return nil
}

// KeepSet returns the GC keep-set (cni.dev/valid-attachments) from either spelling of the key.
func (c *NetConf) KeepSet() map[ipam.Attachment]bool {
	keep := map[ipam.Attachment]bool{}
	for _, list := range [][]types.GCAttachment{c.PluginConf.ValidAttachments, c.LegacyAttachments} {
		for _, a := range list {
			keep[ipam.Attachment{ContainerID: a.ContainerID, IfName: a.IfName}] = true
		}
	}
	return keep
}

func invalidField(field, problem string) error {
	return types.NewError(types.ErrInvalidNetworkConfig,
		fmt.Sprintf("invalid network configuration: field %q %s", field, problem), "")
}

func truncate(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
