package peering

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestValidateGood(t *testing.T) {
	f, err := ParseFile([]byte(validFile))
	if err != nil {
		t.Fatal(err)
	}
	peers, err := f.Validate(east)
	if err != nil {
		t.Fatalf("valid file rejected: %v", err)
	}
	want := []Peer{
		{Name: "north", ID: "north-1",
			PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.246.0.0/16"), netip.MustParsePrefix("fd00:246::/48")},
			Zone:     "north.example",
			Gateways: []RemoteGateway{{Node: "north-gw-1", Endpoint: netip.MustParseAddrPort("[2001:db8::1]:51821"), PublicKey: keyN1}}},
		{Name: "west", ID: "west-1",
			PodCIDRs:            []netip.Prefix{netip.MustParsePrefix("10.245.0.0/16")},
			ServiceCIDRs:        []netip.Prefix{netip.MustParsePrefix("10.97.0.0/16")},
			Zone:                DefaultZone,
			PersistentKeepalive: 25 * time.Second,
			Gateways: []RemoteGateway{
				{Node: "west-gw-1", Endpoint: netip.MustParseAddrPort("192.0.2.10:51821"), PublicKey: keyW1},
				{Node: "west-gw-2", Endpoint: netip.MustParseAddrPort("192.0.2.11:51821"), PublicKey: keyW2},
			}},
	}
	if !reflect.DeepEqual(peers, want) {
		t.Errorf("peers:\n got %+v\nwant %+v", peers, want)
	}
	if got := peers[1].CIDRs(); len(got) != 2 || got[1] != netip.MustParsePrefix("10.97.0.0/16") {
		t.Errorf("CIDRs() = %v", got)
	}
	for _, doc := range []string{"", "peers: []\n"} {
		f, err := ParseFile([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if peers, err := f.Validate(east); err != nil || peers != nil {
			t.Errorf("%q: %v, %v; want no peers, no error", doc, peers, err)
		}
	}
}

func TestValidateProblems(t *testing.T) {
	tests := []struct {
		name    string
		replace []string // old, new pairs applied to validFile
		local   *Local   // default east
		want    []string // each problem's String(), in order (substring match)
	}{
		{name: "peer overlaps local pod CIDR",
			replace: []string{"[10.245.0.0/16]", "[10.244.128.0/17]"},
			want:    []string{`peers[0].podCIDRs[0] (line 4): pod CIDR 10.244.128.0/17 of cluster "west" (peers[0].podCIDRs[0]) overlaps this cluster's ("east") pod CIDR 10.244.0.0/16`}},
		{name: "peer overlaps local service CIDR",
			replace: []string{"[10.97.0.0/16]", "[10.96.0.0/12]"},
			want:    []string{`peers[0].serviceCIDRs[0] (line 5): service CIDR 10.96.0.0/12 of cluster "west"` + "`" + `overlaps this cluster's ("east") service CIDR 10.96.0.0/16`}},
		{name: "two peers overlap",
			replace: []string{"[10.246.0.0/16, fd00:246::/48]", "[10.245.1.0/24, fd00:246::/48]"},
			want:    []string{`peers[1].podCIDRs[0] (line 15): pod CIDR 10.245.1.0/24 of cluster "north" (peers[1].podCIDRs[0]) overlaps pod CIDR 10.245.0.0/16 of cluster "west" (peers[0].podCIDRs[0])`}},
		{name: "pod overlaps service in one bundle",
			replace: []string{"[10.97.0.0/16]", "[10.245.0.0/24]"},
			want:    []string{`peers[0].serviceCIDRs[0] (line 5): service CIDR 10.245.0.0/24 of cluster "west"`}},
		{name: "duplicate name",
			replace: []string{"name: north", "name: west"},
			want:    []string{`peers[1].name (line 13): cluster "west" is listed twice (also peers[0])`}},
		{name: "duplicate id",
			replace: []string{"id: north-1", "id: west-1"},
			want:    []string{`peers[1].id (line 14): cluster "north": id "west-1" is also the id of cluster "west" (peers[0])`}},
		{name: "peer named like local",
			replace: []string{"name: west", "name: east"},
			want:    []string{`peers[0].name (line 2): cluster "east" has this cluster's own name`}},
		{name: "peer with local id",
			replace: []string{"id: west-1", "id: east-1"},
			want:    []string{`peers[0].id (line 3): cluster "west" has this cluster's own id "east-1"`}},
		{name: "bad key",
			replace: []string{keyW2.String(), "bm90IGEga2V5"},
			want:    []string{`peers[0].gateways[1].publicKey (line 12): cluster "west", gateway "west-gw-2": not a WireGuard public key (32 bytes, base64)`}},
		{name: "zero key",
			replace: []string{keyW2.String(), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
			want:    []string{`peers[0].gateways[1].publicKey (line 12): cluster "west", gateway "west-gw-2": the all-zero key`}},
		{name: "key shared by two clusters",
			replace: []string{keyN1.String(), keyW1.String()},
			want:    []string{`peers[1].gateways[0].publicKey (line 21): cluster "north", gateway "north-gw-1": public key is also that of gateway "west-gw-1" of cluster "west" (peers[0].gateways[0])`}},
		{name: "bad endpoints",
			replace: []string{"192.0.2.10:51821", "gw.example:51821", "192.0.2.11:51821", "0.0.0.0:51821", "[2001:db8::1]:51821", "[2001:db8::1]:0"},
			want: []string{
				`peers[0].gateways[0].endpoint (line 8): cluster "west", gateway "west-gw-1": endpoint "gw.example:51821" is not ip:port`,
				`peers[0].gateways[1].endpoint (line 11): cluster "west", gateway "west-gw-2": endpoint 0.0.0.0:51821 is not a unicast address`,
				`peers[1].gateways[0].endpoint (line 20): cluster "north", gateway "north-gw-1": endpoint [2001:db8::1]:0 has port 0`,
			}},
		{name: "endpoint inside a declared network",
			replace: []string{"192.0.2.10:51821", "10.97.0.10:51821", "[2001:db8::1]:51821", "10.244.0.1:51821"},
			want: []string{
				`peers[0].gateways[0].endpoint (line 8): cluster "west", gateway "west-gw-1": endpoint 10.97.0.10:51821 lies inside service CIDR 10.97.0.0/16 of cluster "west" (peers[0].serviceCIDRs[0]); the tunnel would be routed into itself`,
				`peers[1].gateways[0].endpoint (line 20): cluster "north", gateway "north-gw-1": endpoint 10.244.0.1:51821 lies inside this cluster's ("east") pod CIDR 10.244.0.0/16`,
			}},
		{name: "no gateways",
			replace: []string{"    gateways:\n      - node: north-gw-1\n        endpoint: \"[2001:db8::1]:51821\"\n        publicKey: " + keyN1.String() + "\n", "    gateways: []\n"},
			want:    []string{`peers[1].gateways (line 18): cluster "north" lists no gateway`}},
		{name: "duplicate gateway node",
			replace: []string{"node: west-gw-2", "node: west-gw-1"},
			want:    []string{`peers[0].gateways[1].node (line 10): cluster "west": gateway "west-gw-1" is listed twice (also gateways[0])`}},
		{name: "bad zones",
			replace: []string{"zone: north.example.", "zone: pods.clusterset.local"},
			want:    []string{`peers[1].zone (line 16): cluster "north": zone "pods.clusterset.local" lies in the clusterset.local zone`}},
		{name: "zone not a name",
			replace: []string{"zone: north.example.", "zone: north..example"},
			want:    []string{`peers[1].zone (line 16): cluster "north": zone "north..example" is not a DNS name`}},
		{name: "bad CIDRs",
			replace: []string{"[10.245.0.0/16]", "[10.245.0.1/16, ten]"},
			want: []string{
				`peers[0].podCIDRs[0] (line 4): cluster "west": 10.245.0.1/16 has host bits set (did you mean 10.245.0.0/16?)`,
				`peers[0].podCIDRs[1] (line 4): cluster "west": "ten" is not a CIDR`,
			}},
		{name: "CIDR over the tunnel addresses",
			replace: []string{"[10.245.0.0/16]", "[10.245.0.0/16, \"fd57:6566:7470:1::/64\"]"},
			want:    []string{`peers[0].podCIDRs[1] (line 4): cluster "west": fd57:6566:7470:1::/64 overlaps fd57:6566:7470::/48, which holds the gateways' tunnel addresses`}},
		{name: "no pod CIDRs",
			replace: []string{"podCIDRs: [10.245.0.0/16]", "podCIDRs: []"},
			want:    []string{`peers[0].podCIDRs (line 4): cluster "west" declares no pod CIDR`}},
		{name: "bad names",
			replace: []string{"name: west", "name: West_1", "id: north-1", "id: \"\""},
			want: []string{
				`peers[0].name (line 2): cluster "West_1": not a DNS label`,
				`peers[1].id (line 14): cluster "north": required`,
			}},
		{name: "bad keepalive",
			replace: []string{`persistentKeepalive: "off"`, "persistentKeepalive: 1500ms"},
			want:    []string{`peers[1].persistentKeepalive (line 17): cluster "north": 1.5s is not a whole number of seconds from 1s to 65535s`}},
		{name: "many problems, file order",
			replace: []string{"name: north", "name: west", "[10.246.0.0/16, fd00:246::/48]", "[10.244.0.0/24]", keyW1.String(), "xx"},
			want: []string{
				`peers[0].gateways[0].publicKey (line 9)`,
				`peers[1].name (line 13): cluster "west" is listed twice`,
				`peers[1].podCIDRs[0] (line 15): pod CIDR 10.244.0.0/24 of cluster "west" (peers[1].podCIDRs[0]) overlaps this cluster's ("east") pod CIDR 10.244.0.0/16`,
			}},
		{name: "no local given: only the file is checked",
			replace: []string{"[10.245.0.0/16]", "[10.244.0.0/16]"},
			local:   &Local{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := validFile
			for i := 0; i+1 < len(tt.replace); i += 2 {
				if !strings.Contains(doc, tt.replace[i]) {
					t.Fatalf("fixture lacks %q", tt.replace[i])
				}
				doc = strings.Replace(doc, tt.replace[i], tt.replace[i+1], 1)
			}
			f, err := ParseFile([]byte(doc))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			local := east
			if tt.local != nil {
				local = *tt.local
			}
			peers, err := f.Validate(local)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected: %v", err)
				}
				return
			}
			var probs Problems
			if !errors.As(err, &probs) {
				t.Fatalf("error %v is not Problems", err)
			}
			if peers != nil {
				t.Errorf("invalid file gave peers %v", peers)
			}
			if len(probs) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(probs), len(tt.want), err)
			}
			for i, w := range tt.want {
				for _, part := range strings.Split(w, "`") {
					if !strings.Contains(probs[i].String(), part) {
						t.Errorf("problem %d = %q\nwant it to contain %q", i, probs[i], part)
					}
				}
			}
			// Deterministic: the same input gives the same output.
			_, again := f.Validate(local)
			if again.Error() != err.Error() {
				t.Errorf("not deterministic:\n%v\n%v", err, again)
			}
		})
	}
}

func TestProblemClusters(t *testing.T) {
	doc := strings.Replace(validFile, "[10.246.0.0/16, fd00:246::/48]", "[10.245.0.0/24]", 1)
	f, _ := ParseFile([]byte(doc))
	_, err := f.Validate(east)
	var probs Problems
	if !errors.As(err, &probs) || len(probs) != 1 {
		t.Fatalf("want one problem, got %v", err)
	}
	if !reflect.DeepEqual(probs[0].Clusters, []string{"north", "west"}) {
		t.Errorf("clusters = %v", probs[0].Clusters)
	}
}

func TestParseFileUnknownField(t *testing.T) {
	doc := strings.Replace(validFile, "    zone: north.example.", "    zoen: north.example.", 1)
	_, err := ParseFile([]byte(doc))
	if err == nil || !strings.Contains(err.Error(), "peers[1].zoen (line 16): field zoen not found") {
		t.Errorf("err = %v", err)
	}
}

func TestComparePaths(t *testing.T) {
	in := Problems{{Field: "peers[10].name"}, {Field: "peers[2].podCIDRs[1]"}, {Field: "peers[2].id"}, {Field: "peers[2].podCIDRs[0]"}}
	var got []string
	for _, p := range in.sort() {
		got = append(got, p.Field)
	}
	want := []string{"peers[2].id", "peers[2].podCIDRs[0]", "peers[2].podCIDRs[1]", "peers[10].name"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sorted %v, want %v", got, want)
	}
}
