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

// ConfList is node n's CNI network configuration list.
func ConfList(n NodePaths) ([]byte, error) {
	b, err := json.MarshalIndent(conflist{
		CNIVersion: CNIVersion,
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
