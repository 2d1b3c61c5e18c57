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
	Type         string          `json:"type"`
	StateFile    string          `json:"stateFile,omitempty"`
	DataDir      string          `json:"dataDir,omitempty"`
	Capabilities map[string]bool `json:"capabilities,omitempty"`
}

// portmapPlugin is the reference plugin that serves hostPort, chained after
// weft-cni on the real nodes of a --kubelets lab.
const portmapPlugin = "portmap"

// criConfList is the conflist containerd reads on a --kubelets node:
// weft-cni, then portmap for the Pods' hostPorts (the kubelet passes them
// as the portMappings capability).
func criConfList(n NodePaths) ([]byte, error) {
	b, err := json.MarshalIndent(conflist{
		CNIVersion: CRICNIVersion,
		Name:       CNINetwork,
		Plugins: []pluginConfig{
			{Type: CNIPluginType, StateFile: n.StateFile, DataDir: n.CNIDataDir},
			{Type: portmapPlugin, Capabilities: map[string]bool{"portMappings": true}},
		},
	}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("failed to encode conflist: %w", err)
	}
	return append(b, '\n'), nil
}

// CRICNIVersion is the version of the conflist containerd reads on a
// --kubelets node: containerd 1.6's libcni knows versions up to 1.0.0.
const CRICNIVersion = "1.0.0"

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
