package dnsproxy

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestUDPBatches sends bursts of queries from several sockets at once, over
// IPv4 and IPv6, so that the server reads and answers them in batches: every
// query gets its own answer, sent back to the socket that asked, and a
// client outside the allowed networks gets REFUSED from the same path.
func TestUDPBatches(t *testing.T) {
	for _, c := range []struct {
		listen  string
		allowed string
		rcode   int
	}{
		{"127.0.0.1:0", "127.0.0.0/8", dns.RcodeSuccess},
		{"[::1]:0", "::1/128", dns.RcodeSuccess},
		{"127.0.0.1:0", "10.0.0.0/8", dns.RcodeRefused},
	} {
		zone, _ := NewCluster(ZoneConfig{Zone: "cluster.local"}, testRecords(), HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) { reply(w, r, dns.RcodeServerFailure) }))
		s := NewServer(ServerConfig{Addr: netip.MustParseAddrPort(c.listen), Allowed: []netip.Prefix{netip.MustParsePrefix(c.allowed)}},
			NewCache(CacheConfig{AuthoritativeOnly: true}, zone, nil), nil)
		if err := s.Start(); err != nil {
			if c.listen[0] == '[' {
				t.Logf("no IPv6 loopback: %v", err)
				continue
			}
			t.Fatal(err)
		}
		addr := net.UDPAddrFromAddrPort(s.Addr())
		const socks, per = 4, 100
		var conns []*net.UDPConn
		for range socks {
			uc, err := net.DialUDP("udp", nil, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer uc.Close()
			conns = append(conns, uc)
		}
		names := []string{"web.default.svc.cluster.local.", "dual.default.svc.cluster.local.", "nx.default.svc.cluster.local."}
		for _, uc := range conns {
			for i := range per {
				m := new(dns.Msg)
				m.SetQuestion(names[i%len(names)], dns.TypeA)
				m.Id = uint16(i)
				b, _ := m.Pack()
				if _, err := uc.Write(b); err != nil {
					t.Fatal(err)
				}
			}
		}
		for k, uc := range conns {
			seen := map[uint16]bool{}
			buf := make([]byte, 2048)
			uc.SetReadDeadline(time.Now().Add(3 * time.Second))
			for len(seen) < per {
				n, err := uc.Read(buf)
				if err != nil {
					t.Fatalf("%s: socket %d: %d of %d answers: %v", c.listen, k, len(seen), per, err)
				}
				m := new(dns.Msg)
				if err := m.Unpack(buf[:n]); err != nil {
					t.Fatal(err)
				}
				if want := names[int(m.Id)%len(names)]; m.Question[0].Name != want || seen[m.Id] {
					t.Fatalf("%s: answer %d for %s (again: %v), want %s", c.listen, m.Id, m.Question[0].Name, seen[m.Id], want)
				}
				want := c.rcode
				if want == dns.RcodeSuccess && m.Question[0].Name == names[2] {
					want = dns.RcodeNameError
				}
				if m.Rcode != want {
					t.Fatalf("%s: %s: %s, want %s", c.listen, m.Question[0].Name, dns.RcodeToString[m.Rcode], dns.RcodeToString[want])
				}
				seen[m.Id] = true
			}
		}
		s.Close()
	}
}
