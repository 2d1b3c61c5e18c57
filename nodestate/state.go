// Package nodestate is the contract between the agent and the CNI plugin:
// the agent writes the node's lease and MTU to a small JSON file, and
// weft-cni reads it on every invocation.
package nodestate

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
)

// DefaultPath is where the agent writes the state file unless configured.
const DefaultPath = "/run/weft/node.json"

// ErrNotReady is returned by Read when the agent has not published the
// node's subnet yet (the file does not exist).
var ErrNotReady = errors.New("node state not published yet")

// State is what weft-cni needs to wire a pod into this node.
type State struct {
	// Node is this node's name.
	Node string `json:"node"`
	// PodCIDR is the block leased to this node; pod IPs come from it.
	PodCIDR netip.Prefix `json:"podCIDR"`
	// Gateway is the node-side address of every pod's default route: the
	// first usable address of PodCIDR. It is never handed to a pod.
	Gateway netip.Addr `json:"gateway"`
	// ClusterCIDR is the whole pod network.
	ClusterCIDR netip.Prefix `json:"clusterCIDR"`
	// MTU is the MTU for pod interfaces: underlay MTU minus tunnel overhead.
	MTU int `json:"mtu"`
}

// GatewayFor returns the gateway address of a pod block: its first usable
// address (network address + 1).
func GatewayFor(block netip.Prefix) netip.Addr {
	return block.Masked().Addr().Next()
}

// Validate checks that every field is usable.
func (s State) Validate() error {
	switch {
	case s.Node == "":
		return errors.New("node state: field \"node\" is empty")
	case !s.PodCIDR.IsValid():
		return errors.New("node state: field \"podCIDR\" is not a valid CIDR")
	case !s.Gateway.IsValid() || !s.PodCIDR.Contains(s.Gateway):
		return fmt.Errorf("node state: field \"gateway\" %v is not inside podCIDR %v", s.Gateway, s.PodCIDR)
	case !s.ClusterCIDR.IsValid() || !s.ClusterCIDR.Contains(s.PodCIDR.Addr()):
		return fmt.Errorf("node state: field \"clusterCIDR\" %v does not contain podCIDR %v", s.ClusterCIDR, s.PodCIDR)
	case s.MTU < 576 || s.MTU > 65535:
		return fmt.Errorf("node state: field \"mtu\" %d is out of range 576-65535", s.MTU)
	}
	return nil
}

// Read loads and validates the state file. It returns ErrNotReady (wrapped)
// when the file does not exist.
func Read(path string) (State, error) {
	var s State
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, fmt.Errorf("%w: %s does not exist", ErrNotReady, path)
	}
	if err != nil {
		return s, fmt.Errorf("failed to read node state %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("failed to parse node state %s: %w", path, err)
	}
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Write validates s and replaces the state file atomically (write to a
// temporary file in the same directory, then rename).
func Write(path string, s State) error {
	if err := s.Validate(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("failed to encode node state: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("failed to create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".node-state-*")
	if err != nil {
		return fmt.Errorf("failed to create temporary node state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to write node state: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to chmod node state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("failed to close node state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("failed to replace node state %s: %w", path, err)
	}
	return nil
}

// Remove deletes the state file; a missing file is not an error.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("failed to remove node state %s: %w", path, err)
	}
	return nil
}
