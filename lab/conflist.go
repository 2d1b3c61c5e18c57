package lab

import (
	"encoding/json"
	"fmt"
)

// CNI names of the lab's network.
const (
	CNIVersion    = "1.1.0"
	CNINetwork    = "weft"
	CNIPluginType = "weft-cni"
	PodIfName     = "eth0"
)

type conflist struct {
	CNIVersion string         `json:"cniVersion"`
	Name       string         `json:"name"`
	Plugins    []pluginConfig `json:"plugins"`
}

type pluginConfig struct {
	Type      string `json:"type"`
	StateFile string `json:"stateFile"`
	DataDir   string `json:"dataDir"`
}

// CRICNIVersion is the version of the conflist containerd reads on a
// --kubelets node: containerd 1.6's libcni knows versions up to 1.0.0.
const CRICNIVersion = "1.0.0"

// ConfList is node n's CNI network configuration list.
func ConfList(n NodePaths) ([]byte, error) { return confList(n, CNIVersion) }

func confList(n NodePaths, version string) ([]byte, error) {
	b, err := json.MarshalIndent(conflist{
		CNIVersion: version,
		Name:       CNINetwork,
		Plugins: []pluginConfig{{
			Type:      CNIPluginType,
			StateFile: n.StateFile,
			DataDir:   n.CNIDataDir,
		}},
	}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("failed to encode conflist: %w", err)
	}
	return append(b, '\n'), nil
}
