package e2e

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/weftnet/weft/lab"
	"github.com/weftnet/weft/lab/probe"
)

// proxyAddr is where every node's DNS proxy answers (the agent's default).
var proxyAddr = netip.AddrPortFrom(lab.LabDNSAddr, 53)

// askFrom sends one query from inside the netns at nsPath (a pod's, so the
// query takes the pod's real path to its node's proxy).
func askFrom(nsPath, network string, server netip.AddrPort, name string, qtype uint16, mut func(*dns.Msg)) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if mut != nil {
		mut(m)
	}
	var resp *dns.Msg
	err := probe.InNetns(nsPath, func() error {
		c := &dns.Client{Net: network, Timeout: 3 * time.Second, UDPSize: 65535}
		var err error
		resp, _, err = c.Exchange(m, server.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s %s over %s: %w", name, dns.TypeToString[qtype], network, err)
	}
	return resp, nil
}

// records renders a section as sorted "name TYPE rdata" lines (no TTL,
// no class), names lower-cased unless keepCase.
func records(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		f := strings.Fields(rr.String())
		out = append(out, strings.Join(append([]string{rr.Header().Name, f[3]}, f[4:]...), " "))
	}
	sort.Strings(out)
	return out
}

// worldDNS is a resolver in the lab's internet namespace (203.0.113.1:53,
// UDP and TCP) that the agents forward to: a few names of its own zone,
// NXDOMAIN with an SOA for the rest. It answers only what it was given.
type worldDNS struct {
	udp, tcp *dns.Server
}

var worldZone = map[string]string{
	"www.example.test.":   "198.51.100.7",
	"other.example.test.": "198.51.100.8",
}

func startWorldDNS(t *testing.T, c *cluster) *worldDNS {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.RecursionAvailable = true
		q := r.Question[0]
		if a, ok := worldZone[strings.ToLower(q.Name)]; ok {
			if q.Qtype == dns.TypeA {
				rr, _ := dns.NewRR(q.Name + " 120 IN A " + a)
				m.Answer = append(m.Answer, rr)
			}
		} else {
			m.Rcode = dns.RcodeNameError
		}
		if len(m.Answer) == 0 {
			soa, _ := dns.NewRR("example.test. 60 IN SOA ns.example.test. h.example.test. 1 7200 900 1209600 60")
			m.Ns = append(m.Ns, soa)
		}
		w.WriteMsg(m)
	})
	wd := &worldDNS{}
	addr := net.JoinHostPort(lab.WorldAddr.String(), "53")
	err := probe.InNetns(lab.NetNSPath(c.layout.InetNS()), func() error {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return err
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			pc.Close()
			return err
		}
		wd.udp = &dns.Server{PacketConn: pc, Handler: h}
		wd.tcp = &dns.Server{Listener: l, Handler: h}
		return nil
	})
	if err != nil {
		t.Fatalf("world DNS server: %v", err)
	}
	go wd.udp.ActivateAndServe()
	go wd.tcp.ActivateAndServe()
	t.Cleanup(func() { wd.udp.Shutdown(); wd.tcp.Shutdown() })
	return wd
}

// nodeMetrics fetches a node agent's /metrics from inside its netns.
func nodeMetrics(c *cluster, node string) (string, error) {
	var body string
	err := probe.InNetns(c.nodeNSPath(node), func() error {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:9464", 3*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
		b, err := io.ReadAll(conn)
		body = string(b)
		return err
	})
	return body, err
}
