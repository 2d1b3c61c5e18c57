package clusterset

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func addrs(kv ...string) map[string]netip.Addr {
	m := map[string]netip.Addr{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = netip.MustParseAddr(kv[i+1])
	}
	return m
}

func TestAllocateIPs(t *testing.T) {
	rng := netip.MustParsePrefix("10.255.0.0/16")
	small := netip.MustParsePrefix("10.255.0.0/30") // .1 and .2 assignable
	for _, tc := range []struct {
		name     string
		rng      netip.Prefix
		exclude  []string
		wanted   []string
		existing map[string]netip.Addr
		// want is checked for the keys it lists; "new" means any fresh
		// address of the range.
		want      map[string]string
		wantFull  []string
		wantMoved []string
	}{
		{name: "existing addresses are kept",
			rng: rng, wanted: []string{"shop/web", "shop/api"}, existing: addrs("shop/web", "10.255.7.7", "shop/api", "10.255.0.9"),
			want: map[string]string{"shop/web": "10.255.7.7", "shop/api": "10.255.0.9"}},
		{name: "a Service no longer wanted loses its address",
			rng: rng, wanted: []string{"shop/web"}, existing: addrs("shop/web", "10.255.7.7", "shop/old", "10.255.0.9"),
			want: map[string]string{"shop/web": "10.255.7.7"}},
		{name: "new Services get addresses of the range",
			rng: rng, wanted: []string{"a/x", "b/y", "c/z"},
			want: map[string]string{"a/x": "new", "b/y": "new", "c/z": "new"}},
		{name: "an address held twice stays with the first by key",
			rng: rng, wanted: []string{"a/x", "b/y"}, existing: addrs("a/x", "10.255.1.1", "b/y", "10.255.1.1"),
			want: map[string]string{"a/x": "10.255.1.1", "b/y": "new"}, wantMoved: []string{"b/y: 10.255.1.1 is also a/x's"}},
		{name: "an address outside the range (the range changed) moves",
			rng: rng, wanted: []string{"a/x"}, existing: addrs("a/x", "10.254.0.5"),
			want: map[string]string{"a/x": "new"}, wantMoved: []string{"a/x: 10.254.0.5 is outside the range 10.255.0.0/16"}},
		{name: "an address inside a peer's network moves",
			rng: rng, exclude: []string{"10.255.128.0/17"}, wanted: []string{"a/x"}, existing: addrs("a/x", "10.255.200.1"),
			want: map[string]string{"a/x": "new"}, wantMoved: []string{"a/x: 10.255.200.1 is inside 10.255.128.0/17"}},
		{name: "network and last address are never given",
			rng: small, wanted: []string{"a/x"}, existing: addrs("a/x", "10.255.0.3"),
			want: map[string]string{"a/x": "new"}, wantMoved: []string{"a/x: 10.255.0.3 is the range's first or last address"}},
		{name: "a full range leaves the rest without, reported",
			rng: small, wanted: []string{"a/x", "b/y", "c/z", "d/w"}, existing: addrs("c/z", "10.255.0.1"),
			want: map[string]string{"c/z": "10.255.0.1", "a/x": "10.255.0.2"}, wantFull: []string{"b/y", "d/w"}},
		{name: "a range wholly excluded gives nothing",
			rng: small, exclude: []string{"10.0.0.0/8"}, wanted: []string{"a/x"},
			want: map[string]string{}, wantFull: []string{"a/x"}},
		{name: "an invalid range gives nothing",
			rng: netip.Prefix{}, wanted: []string{"a/x"}, want: map[string]string{}, wantFull: []string{"a/x"}},
		{name: "duplicates in wanted count once",
			rng: rng, wanted: []string{"a/x", "a/x"}, want: map[string]string{"a/x": "new"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ex []netip.Prefix
			for _, e := range tc.exclude {
				ex = append(ex, netip.MustParsePrefix(e))
			}
			al := AllocateIPs(tc.rng, ex, tc.wanted, tc.existing)
			if len(al.IPs) != len(tc.want) {
				t.Errorf("IPs %v, want %d of them", al.IPs, len(tc.want))
			}
			seen := map[netip.Addr]string{}
			for k, a := range al.IPs {
				if o, dup := seen[a]; dup {
					t.Errorf("%s given to %s and %s", a, o, k)
				}
				seen[a] = k
				first, last := rangeBounds(tc.rng)
				if !tc.rng.Contains(a) || a.Less(first) || last.Less(a) {
					t.Errorf("%s: %s is not assignable in %s", k, a, tc.rng)
				}
				for _, x := range ex {
					if x.Contains(a) {
						t.Errorf("%s: %s is inside excluded %s", k, a, x)
					}
				}
			}
			for k, w := range tc.want {
				got, ok := al.IPs[k]
				switch {
				case !ok:
					t.Errorf("%s has no address", k)
				case w != "new" && got.String() != w:
					t.Errorf("%s: %s, want %s", k, got, w)
				case w == "new" && tc.existing[k] == got:
					t.Errorf("%s kept %s, want a new address", k, got)
				}
			}
			if !slices.Equal(al.Full, tc.wantFull) {
				t.Errorf("Full %v, want %v", al.Full, tc.wantFull)
			}
			if !slices.Equal(al.Moved, tc.wantMoved) {
				t.Errorf("Moved %v, want %v", al.Moved, tc.wantMoved)
			}
			// Deterministic: the same inputs give the same table.
			if again := AllocateIPs(tc.rng, ex, tc.wanted, tc.existing); !reflect.DeepEqual(again.IPs, al.IPs) {
				t.Errorf("not deterministic: %v then %v", al.IPs, again.IPs)
			}
		})
	}
}

// A gateway that takes over with the published table keeps every address;
// a Service that comes back after it was gone gets its old one when free.
func TestAllocateIPsStable(t *testing.T) {
	rng := netip.MustParsePrefix("10.255.0.0/16")
	var wanted []string
	for i := range 300 {
		wanted = append(wanted, fmt.Sprintf("ns%d/svc%d", i%7, i))
	}
	first := AllocateIPs(rng, nil, wanted, nil)
	if len(first.IPs) != 300 || len(first.Full) != 0 {
		t.Fatalf("%d allocated, full %v", len(first.IPs), first.Full)
	}
	// More Services arrive: none of the first ones moves.
	more := append(slices.Clone(wanted), "zz/new1", "aa/new2")
	second := AllocateIPs(rng, nil, more, first.IPs)
	for k, a := range first.IPs {
		if second.IPs[k] != a {
			t.Errorf("%s moved from %s to %s when others arrived", k, a, second.IPs[k])
		}
	}
	// One goes and comes back: the same address.
	gone := AllocateIPs(rng, nil, wanted[1:], first.IPs)
	back := AllocateIPs(rng, nil, wanted, gone.IPs)
	if back.IPs[wanted[0]] != first.IPs[wanted[0]] {
		t.Errorf("%s came back as %s, was %s", wanted[0], back.IPs[wanted[0]], first.IPs[wanted[0]])
	}
}

func TestAllocateIPsBounded(t *testing.T) {
	var wanted []string
	for i := range MaxIPs + 3 {
		wanted = append(wanted, fmt.Sprintf("ns/s%d", i))
	}
	al := AllocateIPs(netip.MustParsePrefix("10.0.0.0/8"), nil, wanted, nil)
	if len(al.IPs) != MaxIPs || len(al.Full) != 3 {
		t.Errorf("%d allocated and %d full, want %d and 3", len(al.IPs), len(al.Full), MaxIPs)
	}
}

func TestValidIPRange(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{"10.255.0.0/16", ""},
		{"10.255.0.0/30", ""},
		{"10.255.0.0/31", "smaller than a /30"},
		{"10.255.0.1/16", "host bits"},
		{"fd00::/64", "not IPv4"},
		{"0.0.0.0/0", "larger than a /8"},
	} {
		err := ValidIPRange(netip.MustParsePrefix(tc.in))
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v, want %q", tc.in, err, tc.err)
		}
	}
}

func TestEncodeDecodeIPs(t *testing.T) {
	ips := addrs("shop/web", "10.255.0.7", "a-b/c", "10.255.1.1")
	data := EncodeIPs(ips)
	if want := map[string]string{"shop.web": "10.255.0.7", "a-b.c": "10.255.1.1"}; !reflect.DeepEqual(data, want) {
		t.Errorf("EncodeIPs %v, want %v", data, want)
	}
	back, problems := DecodeIPs(data)
	if !reflect.DeepEqual(back, ips) || len(problems) != 0 {
		t.Errorf("DecodeIPs %v %v, want %v", back, problems, ips)
	}
	bad := map[string]string{
		"shop.web":   "10.255.0.7",
		"shop.dup":   "10.255.0.7", // sorts first: keeps it
		"noname":     "10.255.0.8",
		"Shop.x":     "10.255.0.9",
		"shop.v6":    "fd00::1",
		"shop.junk":  "x",
		"shop.a.b":   "10.255.0.10",
		"shop.bcast": "255.255.255.255",
	}
	got, problems := DecodeIPs(bad)
	if want := addrs("shop/dup", "10.255.0.7"); !reflect.DeepEqual(got, want) {
		t.Errorf("DecodeIPs of bad data: %v, want %v", got, want)
	}
	if len(problems) != 7 {
		t.Errorf("problems %q, want 7", problems)
	}
}

func TestIPServices(t *testing.T) {
	local := Document{Cluster: "east", Services: []Service{
		{Namespace: "shop", Name: "web", Type: ClusterSetIP, ClusterIPs: []string{"10.96.0.10"}},
		{Namespace: "shop", Name: "v6", Type: ClusterSetIP, ClusterIPs: []string{"fd00:96::10"}},
		{Namespace: "shop", Name: "db", Type: Headless},
	}}
	derived := func(ns, svc, typ string, managed bool) *discoveryv1.EndpointSlice {
		l := map[string]string{LabelServiceName: svc, discoveryv1.LabelManagedBy: ManagedBy}
		if !managed {
			l[discoveryv1.LabelManagedBy] = "someone-else"
		}
		return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc + "-x", Labels: l,
			Annotations: map[string]string{AnnotationType: typ}}, AddressType: discoveryv1.AddressTypeIPv4}
	}
	v6 := derived("shop", "only6", "ClusterSetIP", true)
	v6.AddressType = discoveryv1.AddressTypeIPv6
	got := IPServices(local, []*discoveryv1.EndpointSlice{
		derived("shop", "web", "ClusterSetIP", true), // also local: once
		derived("shop", "api", "ClusterSetIP", true),
		derived("shop", "hl", "Headless", true),
		derived("shop", "other", "ClusterSetIP", false),
		v6,
	})
	if want := []string{"shop/api", "shop/web"}; !slices.Equal(got, want) {
		t.Errorf("IPServices %v, want %v", got, want)
	}
}
