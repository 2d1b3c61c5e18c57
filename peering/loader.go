package peering

import (
	"fmt"
	"log/slog"
	"os"
	"reflect"
)

// Next returns the peers to use once candidate (the text of a peering
// file) has been read: candidate's when it is valid, else prev, with the
// error that refused candidate. A bad file never tears down working
// peerings; to remove them all, write "peers: []".
func Next(prev []Peer, candidate []byte, local Local) ([]Peer, error) {
	f, err := ParseFile(candidate)
	if err != nil {
		return prev, err
	}
	peers, err := f.Validate(local)
	if err != nil {
		return prev, err
	}
	return peers, nil
}

// Loader reads a peering file again and again (on a timer or a watch) and
// keeps the last valid content in force. It is not safe for concurrent use;
// the agent loop owns it.
type Loader struct {
	path  string
	local Local
	log   *slog.Logger
	// readFile reads the file; a field to allow for testing.
	readFile func(string) ([]byte, error)

	peers []Peer
}

// NewLoader returns a Loader of the file at path, validated against local.
// A nil log discards.
func NewLoader(path string, local Local, log *slog.Logger) *Loader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Loader{path: path, local: local, log: log.With("component", "peering", "file", path), readFile: os.ReadFile}
}

// Load reads the file and returns the peers in force, whether they differ
// from those the previous Load returned, and the error (a read error, or a
// Problems) when the file was refused and the previous peers were kept. A
// missing file is an error too, and keeps the previous peers: a ConfigMap
// volume that is briefly empty while it updates must not drop peerings.
func (l *Loader) Load() (peers []Peer, changed bool, err error) {
	doc, err := l.readFile(l.path)
	if err != nil {
		err = fmt.Errorf("failed to read peering file: %w", err)
		l.log.Warn("peering file unreadable; the previous peerings stay in force", "peers", len(l.peers), "error", err)
		return l.peers, false, err
	}
	next, err := Next(l.peers, doc, l.local)
	if err != nil {
		l.log.Warn("peering file refused; the previous peerings stay in force", "peers", len(l.peers), "error", err)
		return l.peers, false, fmt.Errorf("%s: %w", l.path, err)
	}
	changed = !reflect.DeepEqual(next, l.peers)
	if changed {
		names := make([]string, len(next))
		for i, p := range next {
			names[i] = p.Name
		}
		l.log.Info("peering file loaded", "peers", names)
	}
	l.peers = next
	return next, changed, nil
}
