package peering

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNext(t *testing.T) {
	good := planPeers(t)
	overlap := strings.Replace(validFile, "[10.245.0.0/16]", "[10.244.0.0/16]", 1)
	tests := []struct {
		name      string
		prev      []Peer
		candidate string
		want      []string // peer names in force
		wantErr   string
	}{
		{name: "first valid file", candidate: validFile, want: []string{"north", "west"}},
		{name: "bad file keeps the working peers", prev: good, candidate: overlap, want: []string{"north", "west"},
			wantErr: `peers[0].podCIDRs[0] (line 4): pod CIDR 10.244.0.0/16 of cluster "west"`},
		{name: "unparsable file keeps the working peers", prev: good, candidate: "peers: [", want: []string{"north", "west"}, wantErr: "invalid peering file"},
		{name: "unknown field keeps the working peers", prev: good, candidate: "peer: []\n", want: []string{"north", "west"}, wantErr: "field peer not found"},
		{name: "bad first file: no peers", candidate: overlap, wantErr: "overlaps"},
		{name: "explicit empty list removes peerings", prev: good, candidate: "peers: []\n"},
		{name: "valid change replaces", prev: good, candidate: strings.Replace(validFile, "name: north", "name: south", 1), want: []string{"south", "west"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Next(tt.prev, []byte(tt.candidate), east)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			var names []string
			for _, p := range got {
				names = append(names, p.Name)
			}
			if strings.Join(names, ",") != strings.Join(tt.want, ",") {
				t.Errorf("peers in force %v, want %v", names, tt.want)
			}
		})
	}
}

func TestLoader(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "peering.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	l := NewLoader(path, east, slog.New(slog.NewTextHandler(&logs, nil)))
	names := func(ps []Peer) string {
		var s []string
		for _, p := range ps {
			s = append(s, p.Name)
		}
		return strings.Join(s, ",")
	}
	steps := []struct {
		name        string
		do          func()
		wantPeers   string
		wantChanged bool
		wantErr     string
	}{
		{name: "missing at start", do: func() {}, wantErr: "no such file"},
		{name: "valid", do: func() { write(validFile) }, wantPeers: "north,west", wantChanged: true},
		{name: "unchanged", do: func() {}, wantPeers: "north,west"},
		{name: "broken edit", do: func() { write(strings.Replace(validFile, keyW1.String(), "short", 1)) },
			wantPeers: "north,west", wantErr: "peers[0].gateways[0].publicKey (line 9)"},
		{name: "file removed", do: func() { os.Remove(path) }, wantPeers: "north,west", wantErr: "no such file"},
		{name: "fixed, one peer dropped", do: func() { write(validFile[:strings.Index(validFile, "  - name: north")]) }, wantPeers: "west", wantChanged: true},
		{name: "emptied on purpose", do: func() { write("peers: []\n") }, wantPeers: "", wantChanged: true},
	}
	for _, s := range steps {
		s.do()
		peers, changed, err := l.Load()
		if s.wantErr == "" && err != nil {
			t.Fatalf("%s: unexpected error: %v", s.name, err)
		}
		if s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)) {
			t.Fatalf("%s: error %v, want one containing %q", s.name, err, s.wantErr)
		}
		if got := names(peers); got != s.wantPeers || changed != s.wantChanged {
			t.Errorf("%s: peers %q changed %v, want %q %v", s.name, got, changed, s.wantPeers, s.wantChanged)
		}
	}
	if !strings.Contains(logs.String(), "peering file refused; the previous peerings stay in force") {
		t.Errorf("refusal not logged:\n%s", logs.String())
	}

	l.readFile = func(string) ([]byte, error) { return nil, errors.New("permission denied") }
	if _, _, err := l.Load(); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("read error: %v", err)
	}
}
