package peering

import (
	"fmt"
	"os"

	"github.com/weftnet/weft/internal/yamlfield"
)

// File is the peering file an operator writes (a file on disk or a key of
// the peering ConfigMap):
//
//	peers:
//	  - name: west          # a bundle, as `weft peering export` printed it
//	    id: west-1
//	    ...
//	    persistentKeepalive: 25s   # optional per-peer setting
//
// An empty file, or peers: [], means no peering.
type File struct {
	Peers []PeerEntry `yaml:"peers"`

	// index maps fields to lines of the document File was parsed from.
	index yamlfield.Index
}

// PeerEntry is one remote cluster: its bundle, pasted as exported, plus
// the settings this cluster chooses for it.
type PeerEntry struct {
	Bundle `yaml:",inline"`
	// PersistentKeepalive is how often the active gateway sends a keepalive
	// to the remote cluster's chosen gateway, so that the tunnel survives
	// NAT and stateful firewalls and the remote side learns at once which
	// gateway is active here. A Go duration from 1s to 65535s, or "off".
	// Default 25s.
	PersistentKeepalive string `yaml:"persistentKeepalive,omitempty"`
}

// ParseFile decodes a peering file, rejecting unknown fields; errors name
// the field and line. It does not validate: call Validate.
func ParseFile(doc []byte) (File, error) {
	var f File
	if err := yamlfield.DecodeStrict(doc, &f); err != nil {
		return File{}, fmt.Errorf("invalid peering file: %w", err)
	}
	f.index = yamlfield.NewIndex(doc)
	return f, nil
}

// ReadFile reads and decodes the peering file at path.
func ReadFile(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("failed to read peering file: %w", err)
	}
	f, err := ParseFile(b)
	if err != nil {
		return File{}, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}
