package dnsproxy

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Test objects: real API types fed through KubeRecords' informer handlers.

func svc(ns, name string, mut func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	mut(s)
	return s
}

func clusterIP(ips ...string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Spec.ClusterIP = ips[0]
		s.Spec.ClusterIPs = ips
		s.Spec.Ports = []corev1.ServicePort{
			{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80},
			{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53},
		}
	}
}

type ep struct {
	addr     string
	hostname string
	ready    bool
}

func slice(ns, name, service string, port int32, eps ...ep) *discoveryv1.EndpointSlice {
	pn, proto := "http", corev1.ProtocolTCP
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &pn, Protocol: &proto, Port: &port}},
	}
	for _, e := range eps {
		r := e.ready
		de := discoveryv1.Endpoint{Addresses: []string{e.addr}, Conditions: discoveryv1.EndpointConditions{Ready: &r}}
		if e.hostname != "" {
			h := e.hostname
			de.Hostname = &h
		}
		s.Endpoints = append(s.Endpoints, de)
	}
	return s
}

// testRecords is a small cluster: namespaces default and other; Services
// web (ClusterIP), dual (dual-stack), hl (headless: a named endpoint, an
// unnamed one, an unready one), empty (headless, no endpoints), ext
// (ExternalName www.example.org) and big (headless, 100 endpoints); one
// pod.
func testRecords() *KubeRecords {
	k := NewKubeRecords()
	for _, ns := range []string{"default", "other"} {
		k.NamespaceHandler().OnAdd(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, true)
	}
	sh := k.ServiceHandler()
	sh.OnAdd(svc("default", "web", clusterIP("10.96.0.10")), true)
	sh.OnAdd(svc("default", "dual", clusterIP("10.96.0.11", "fd00::11")), true)
	headless := func(s *corev1.Service) {
		s.Spec.ClusterIP = corev1.ClusterIPNone
		s.Spec.Ports = []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}
	}
	sh.OnAdd(svc("default", "hl", headless), true)
	sh.OnAdd(svc("default", "empty", headless), true)
	sh.OnAdd(svc("default", "big", headless), true)
	sh.OnAdd(svc("default", "ext", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeExternalName
		s.Spec.ExternalName = "WWW.Example.org."
	}), true)
	eh := k.EndpointSliceHandler()
	eh.OnAdd(slice("default", "hl-abc", "hl", 8080,
		ep{"10.244.1.5", "pet-0", true}, ep{"10.244.2.6", "", true}, ep{"10.244.3.7", "pet-2", false}), true)
	var many []ep
	for i := range 100 {
		many = append(many, ep{addr: fmt.Sprintf("10.244.9.%d", i+1), ready: true})
	}
	eh.OnAdd(slice("default", "big-1", "big", 80, many...), true)
	k.PodHandler().OnAdd(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p1"},
		Status:     corev1.PodStatus{PodIP: "10.244.1.9", PodIPs: []corev1.PodIP{{IP: "10.244.1.9"}}},
	}, true)
	return k
}

// upstream is a resolver the forwarder asks: www.example.org A, and
// NXDOMAIN with an SOA for anything else; it counts queries and can be
// told to fail.
type upstream struct {
	srv     *dns.Server
	addr    netip.AddrPort
	queries atomic.Int64
	failing atomic.Bool
}

func newUpstream(t *testing.T, network string) *upstream {
	t.Helper()
	u := &upstream{}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.queries.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		if u.failing.Load() {
			m.Rcode = dns.RcodeServerFailure
			w.WriteMsg(m)
			return
		}
		q := r.Question[0]
		switch strings.ToLower(q.Name) {
		case "www.example.org.":
			if q.Qtype == dns.TypeA {
				rr, _ := dns.NewRR(q.Name + " 300 IN A 192.0.2.53")
				m.Answer = append(m.Answer, rr)
			}
		case "short.example.org.":
			rr, _ := dns.NewRR(q.Name + " 1 IN A 192.0.2.54")
			m.Answer = append(m.Answer, rr)
		default:
			m.Rcode = dns.RcodeNameError
			soa, _ := dns.NewRR("example.org. 600 IN SOA ns.example.org. h.example.org. 1 7200 900 1209600 60")
			m.Ns = append(m.Ns, soa)
		}
		w.WriteMsg(m)
	})
	started := make(chan struct{})
	u.srv = &dns.Server{Addr: "127.0.0.1:0", Net: network, Handler: h, NotifyStartedFunc: func() { close(started) }}
	go u.srv.ListenAndServe()
	<-started
	if network == "tcp" {
		u.addr = netip.MustParseAddrPort(u.srv.Listener.Addr().String())
	} else {
		u.addr = netip.MustParseAddrPort(u.srv.PacketConn.LocalAddr().String())
	}
	t.Cleanup(func() { u.srv.Shutdown() })
	return u
}

// proxy is a whole chain on 127.0.0.1:0.
type proxy struct {
	srv   *Server
	cache *Cache
	addr  string
}

type proxyOpts struct {
	allowed    []netip.Prefix
	upstreams  []netip.AddrPort
	tcp        bool
	serveStale time.Duration
	now        func() time.Time
	pods       PodRecords
	ready      func() bool
}

func newProxy(t *testing.T, rec Records, o proxyOpts) *proxy {
	t.Helper()
	fwd := NewForward(ForwardConfig{Upstreams: o.upstreams, TCP: o.tcp, Timeout: 500 * time.Millisecond}, nil)
	cache := NewCache(CacheConfig{Size: 100, ServeStale: o.serveStale, Now: o.now}, fwd, nil)
	zone, err := NewCluster(ZoneConfig{Zone: "cluster.local", Pods: o.pods, Ready: o.ready}, rec, cache)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Allowed: o.allowed}, zone, nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &proxy{srv: s, cache: cache, addr: s.Addr().String()}
}

func (p *proxy) ask(t *testing.T, network, name string, qtype uint16, edns uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	return p.exchange(t, network, m)
}

func (p *proxy) exchange(t *testing.T, network string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 3 * time.Second, UDPSize: 65535}
	resp, _, err := c.Exchange(m, p.addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype], network, err)
	}
	return resp
}

// rrStrings are the records of a section as "name ttl-less text", sorted.
func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		h := *rr.Header()
		f := strings.Fields(rr.String())
		// name ttl class type rdata... → name class type rdata
		out = append(out, strings.Join(append([]string{h.Name}, f[2:]...), " "))
	}
	sort.Strings(out)
	return out
}

func hasSOA(m *dns.Msg) bool {
	return slices.ContainsFunc(m.Ns, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeSOA })
}

// zoneCase is one query of a zone's table test and what it must answer.
type zoneCase struct {
	name  string
	qtype uint16
	rcode int
	want  []string // answer records; nil: don't check; empty: none
	extra []string // additional records, when set
	soa   bool     // an SOA of zone in the authority section
}

// checkZone asks every case over UDP and TCP. Answers for names in zone
// (fully qualified, lower case) must be authoritative; every reply keeps
// the question's case and offers recursion.
func (p *proxy) checkZone(t *testing.T, zone string, tests []zoneCase) {
	t.Helper()
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			t.Run(network+" "+tc.name+" "+dns.TypeToString[tc.qtype], func(t *testing.T) {
				m := p.ask(t, network, tc.name, tc.qtype, 0)
				if m.Rcode != tc.rcode {
					t.Fatalf("rcode %s, want %s\n%s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode], m)
				}
				if m.Question[0].Name != tc.name {
					t.Errorf("question %q, want the asked case %q", m.Question[0].Name, tc.name)
				}
				if tc.want != nil && !slices.Equal(rrStrings(m.Answer), tc.want) {
					t.Errorf("answer\n  %s\nwant\n  %s", strings.Join(rrStrings(m.Answer), "\n  "), strings.Join(tc.want, "\n  "))
				}
				if tc.extra != nil && !slices.Equal(rrStrings(m.Extra), tc.extra) {
					t.Errorf("additional\n  %s\nwant\n  %s", strings.Join(rrStrings(m.Extra), "\n  "), strings.Join(tc.extra, "\n  "))
				}
				if hasSOA(m) != tc.soa {
					t.Errorf("SOA in authority: %v, want %v\n%s", hasSOA(m), tc.soa, m)
				}
				inZone := dns.IsSubDomain(zone, strings.ToLower(tc.name))
				if inZone && tc.soa && m.Ns[0].Header().Name != zone {
					t.Errorf("SOA owner %s, want %s", m.Ns[0].Header().Name, zone)
				}
				if inZone && !m.Authoritative {
					t.Errorf("an answer of %s is not authoritative", zone)
				}
				if !m.RecursionAvailable {
					t.Error("RA not set")
				}
			})
		}
	}
}
