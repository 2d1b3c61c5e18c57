package peering

import (
	"bytes"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/weftnet/weft/internal/yamlfield"
)

// DefaultZone is a bundle's DNS zone when it declares none.
const DefaultZone = "cluster.local"

// Bundle is what `weft peering export` prints for a cluster and what the
// other cluster lists under peers: in its peering file. Fields are strings
// as written; Validate turns them into a Peer.
type Bundle struct {
	// Name is the cluster's name, a DNS label (e.g. "west"). Required.
	Name string `yaml:"name"`
	// ID is the cluster id (the agent's clusterID), a DNS label. It is the
	// cluster's label in clusterset DNS names. Required.
	ID string `yaml:"id"`
	// PodCIDRs are the cluster's pod networks. At least one.
	PodCIDRs []string `yaml:"podCIDRs"`
	// ServiceCIDRs are the cluster's service networks. Optional: without
	// them only pod addresses are reachable from the peer.
	ServiceCIDRs []string `yaml:"serviceCIDRs,omitempty"`
	// Zone is the cluster's DNS zone. Default cluster.local.
	Zone string `yaml:"zone,omitempty"`
	// Gateways are the cluster's gateway-eligible nodes. At least one.
	Gateways []Gateway `yaml:"gateways"`
}

// Gateway is one gateway-eligible node of a cluster.
type Gateway struct {
	// Node is the node's name.
	Node string `yaml:"node"`
	// Endpoint is the ip:port its peering WireGuard device listens on.
	// Host names are not resolved.
	Endpoint string `yaml:"endpoint"`
	// PublicKey is its peering WireGuard public key (32 bytes, base64).
	PublicKey string `yaml:"publicKey"`
}

// Marshal returns the bundle as YAML, indented by two spaces like the
// peering file it is pasted into.
func (b Bundle) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(b); err != nil {
		return nil, fmt.Errorf("failed to encode bundle: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("failed to encode bundle: %w", err)
	}
	return buf.Bytes(), nil
}

// ParseBundle decodes one bundle, rejecting unknown fields. It does not
// validate; put the bundle in a File for that.
func ParseBundle(doc []byte) (Bundle, error) {
	var b Bundle
	if err := yamlfield.DecodeStrict(doc, &b); err != nil {
		return b, fmt.Errorf("invalid bundle: %w", err)
	}
	return b, nil
}
