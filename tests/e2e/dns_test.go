package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weftnet/weft/lab"
)

const dnsManifest = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: dns, port: 53, targetPort: 5353, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: hl, namespace: default}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: pets, namespace: default}
spec:
  clusterIP: None
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec:
  type: ExternalName
  externalName: www.example.test
`

// TestDNS runs every record form of the Kubernetes DNS specification
// against the agents' node-local proxies, backed by a real API server and
// kube-controller-manager, asked from inside pods over UDP and TCP; then
// updates, the pods' own resolver through the search path, forwarding to
// a resolver in the lab's internet, and refusal of outsiders.
func TestDNS(t *testing.T) {
	c, cs := newKubeCluster(t, "--nodes", "2", "--dns-upstream", lab.WorldAddr.String())
	startWorldDNS(t, c)
	ctx := context.Background()
	c.mustWeft("lab", "pod", "add", "n1", "p1", "--name", c.name, "--labels", "app=web")
	c.mustWeft("lab", "pod", "add", "n2", "p2", "--name", c.name, "--labels", "app=web")
	c.mustWeft("lab", "pod", "add", "n2", "p3", "--name", c.name, "--namespace", "team")
	pods := c.pods()
	ip1, ip2 := podIP(pods, "p1"), podIP(pods, "p2")
	var asker []labPod // p1 on n1 and p3 (another namespace) on n2
	for _, p := range pods {
		if p.Name == "p1" || p.Name == "p3" {
			asker = append(asker, p)
		}
	}
	manifest := filepath.Join(t.TempDir(), "dns.yaml")
	os.WriteFile(manifest, []byte(dnsManifest), 0o644)
	c.mustWeft("lab", "apply", "--name", c.name, "-f", manifest)
	pets := petsSlice(ip1, ip2)
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Create(ctx, pets, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	webIP := clusterIP(t, cs, "default", "web")
	apiIP := clusterIP(t, cs, "default", "kubernetes")

	const z = ".cluster.local."
	d1 := strings.ReplaceAll(ip1, ".", "-")
	d2 := strings.ReplaceAll(ip2, ".", "-")
	rev := func(ip string) string {
		r, _ := dns.ReverseAddr(ip)
		return r
	}
	// Every proxy has seen the Services and EndpointSlices before the
	// table runs (the slices are made by kube-controller-manager).
	for _, p := range asker {
		eventually(t, 30*time.Second, "hl and pets have both endpoints on "+p.Node, func() error {
			for _, name := range []string{"hl.default.svc" + z, "pets.default.svc" + z} {
				m, err := askFrom(p.NSPath(), "udp", proxyAddr, name, dns.TypeA, nil)
				if err != nil {
					return err
				}
				if len(m.Answer) != 2 {
					return fmt.Errorf("%s: %s", name, records(m.Answer))
				}
			}
			return nil
		})
	}

	tests := []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
		soa   bool
	}{
		{"dns-version" + z, dns.TypeTXT, 0, []string{`dns-version.cluster.local. TXT "1.1.0"`}, false},
		{"web.default.svc" + z, dns.TypeA, 0, []string{"web.default.svc.cluster.local. A " + webIP}, false},
		{"Web.DEFAULT.svc.Cluster.Local.", dns.TypeA, 0, []string{"Web.DEFAULT.svc.Cluster.Local. A " + webIP}, false},
		{"kubernetes.default.svc" + z, dns.TypeA, 0, []string{"kubernetes.default.svc.cluster.local. A " + apiIP}, false},
		{"web.default.svc" + z, dns.TypeAAAA, 0, nil, true},
		{"_http._tcp.web.default.svc" + z, dns.TypeSRV, 0, []string{"_http._tcp.web.default.svc.cluster.local. SRV 0 100 80 web.default.svc.cluster.local."}, false},
		{"_dns._udp.web.default.svc" + z, dns.TypeSRV, 0, []string{"_dns._udp.web.default.svc.cluster.local. SRV 0 100 53 web.default.svc.cluster.local."}, false},
		{"_http._udp.web.default.svc" + z, dns.TypeSRV, dns.RcodeNameError, nil, true},
		{"hl.default.svc" + z, dns.TypeA, 0, []string{"hl.default.svc.cluster.local. A " + ip1, "hl.default.svc.cluster.local. A " + ip2}, false},
		{d1 + ".hl.default.svc" + z, dns.TypeA, 0, []string{d1 + ".hl.default.svc.cluster.local. A " + ip1}, false},
		{"_http._tcp.hl.default.svc" + z, dns.TypeSRV, 0, []string{
			"_http._tcp.hl.default.svc.cluster.local. SRV 0 100 8080 " + d1 + ".hl.default.svc.cluster.local.",
			"_http._tcp.hl.default.svc.cluster.local. SRV 0 100 8080 " + d2 + ".hl.default.svc.cluster.local."}, false},
		{"pet-0.pets.default.svc" + z, dns.TypeA, 0, []string{"pet-0.pets.default.svc.cluster.local. A " + ip1}, false},
		{"pet-9.pets.default.svc" + z, dns.TypeA, dns.RcodeNameError, nil, true}, // not ready
		{"_http._tcp.pets.default.svc" + z, dns.TypeSRV, 0, []string{
			"_http._tcp.pets.default.svc.cluster.local. SRV 0 100 8080 pet-0.pets.default.svc.cluster.local.",
			"_http._tcp.pets.default.svc.cluster.local. SRV 0 100 8080 pet-1.pets.default.svc.cluster.local."}, false},
		{rev(webIP), dns.TypePTR, 0, []string{rev(webIP) + " PTR web.default.svc.cluster.local."}, false},
		{rev(ip2), dns.TypePTR, 0, []string{
			rev(ip2) + " PTR " + d2 + ".hl.default.svc.cluster.local.",
			rev(ip2) + " PTR pet-1.pets.default.svc.cluster.local."}, false},
		{"ext.default.svc" + z, dns.TypeA, 0, []string{"ext.default.svc.cluster.local. CNAME www.example.test.", "www.example.test. A 198.51.100.7"}, false},
		{d2 + ".team.pod" + z, dns.TypeA, 0, []string{d2 + ".team.pod.cluster.local. A " + ip2}, false},
		{"nope.default.svc" + z, dns.TypeA, dns.RcodeNameError, nil, true},
		{"team.svc" + z, dns.TypeA, 0, nil, true},
		{"nobody.svc" + z, dns.TypeA, dns.RcodeNameError, nil, true},
		{"www.example.test.", dns.TypeA, 0, []string{"www.example.test. A 198.51.100.7"}, false},
		{"nx.example.test.", dns.TypeA, dns.RcodeNameError, nil, true},
		{"cluster.local.", dns.TypeAXFR, dns.RcodeRefused, nil, false},
		{"web.default.svc" + z, dns.TypeANY, dns.RcodeNotImplemented, nil, false},
	}
	var asked int
	for _, p := range asker {
		for _, network := range []string{"udp", "tcp"} {
			for _, tc := range tests {
				m, err := askFrom(p.NSPath(), network, proxyAddr, tc.name, tc.qtype, nil)
				if err != nil {
					t.Errorf("from %s: %v", p.Name, err)
					continue
				}
				asked++
				what := fmt.Sprintf("from %s over %s: %s %s", p.Name, network, tc.name, dns.TypeToString[tc.qtype])
				if m.Rcode != tc.rcode {
					t.Errorf("%s: rcode %s, want %s", what, dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
				}
				if got := records(m.Answer); !slices.Equal(got, tc.want) {
					t.Errorf("%s:\n  got  %q\n  want %q", what, got, tc.want)
				}
				if got := slices.ContainsFunc(m.Ns, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeSOA }); got != tc.soa {
					t.Errorf("%s: SOA in authority %v, want %v", what, got, tc.soa)
				}
				if m.Question[0].Name != tc.name {
					t.Errorf("%s: question came back as %q", what, m.Question[0].Name)
				}
			}
		}
	}
	t.Logf("%d queries from 2 pods on 2 nodes over UDP and TCP", asked)

	t.Run("a headless Service's addresses come in a shuffled order", func(t *testing.T) {
		first := map[string]int{}
		for range 30 {
			m, err := askFrom(asker[0].NSPath(), "udp", proxyAddr, "hl.default.svc"+z, dns.TypeA, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Answer) != 2 {
				t.Fatalf("answer %q, want both endpoints", records(m.Answer))
			}
			first[m.Answer[0].(*dns.A).A.String()]++
		}
		if len(first) < 2 {
			t.Errorf("30 answers all had the same first address: %v", first)
		}
		t.Logf("first addresses over 30 queries: %v", first)
	})

	t.Run("a large answer is truncated over UDP and whole over TCP", func(t *testing.T) {
		checkTruncation(t, ctx, c, cs, asker[0])
	})

	t.Run("updates: a Service added, an endpoint unready, an ExternalName changed", func(t *testing.T) {
		p := asker[0]
		late := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "late", Namespace: "default"},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
		if m, _ := askFrom(p.NSPath(), "udp", proxyAddr, "late.default.svc"+z, dns.TypeA, nil); m == nil || m.Rcode != dns.RcodeNameError {
			t.Fatalf("late before it exists: %v", m)
		}
		if _, err := cs.CoreV1().Services("default").Create(ctx, late, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		lateIP := clusterIP(t, cs, "default", "late")
		took := eventually(t, 10*time.Second, "a new Service resolves", func() error {
			return expectA(p, "late.default.svc"+z, lateIP)
		})
		t.Logf("new Service answered after %s", took.Round(time.Millisecond))

		s, err := cs.DiscoveryV1().EndpointSlices("default").Get(ctx, pets.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		no := false
		s.Endpoints[1].Conditions.Ready = &no // pet-1
		if _, err := cs.DiscoveryV1().EndpointSlices("default").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		took = eventually(t, 10*time.Second, "an unready endpoint leaves the answers", func() error {
			if err := expectA(p, "pets.default.svc"+z, ip1); err != nil {
				return err
			}
			m, err := askFrom(p.NSPath(), "tcp", proxyAddr, "pet-1.pets.default.svc"+z, dns.TypeA, nil)
			if err != nil {
				return err
			}
			if m.Rcode != dns.RcodeNameError {
				return fmt.Errorf("pet-1: %s %s", dns.RcodeToString[m.Rcode], records(m.Answer))
			}
			return nil
		})
		t.Logf("unready endpoint gone after %s", took.Round(time.Millisecond))

		ext, err := cs.CoreV1().Services("default").Get(ctx, "ext", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ext.Spec.ExternalName = "other.example.test"
		if _, err := cs.CoreV1().Services("default").Update(ctx, ext, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		want := []string{"ext.default.svc.cluster.local. CNAME other.example.test.", "other.example.test. A 198.51.100.8"}
		took = eventually(t, 10*time.Second, "a changed ExternalName", func() error {
			m, err := askFrom(p.NSPath(), "udp", proxyAddr, "ext.default.svc"+z, dns.TypeA, nil)
			if err != nil {
				return err
			}
			if got := records(m.Answer); !slices.Equal(got, want) {
				return fmt.Errorf("got %q", got)
			}
			return nil
		})
		t.Logf("ExternalName change answered after %s", took.Round(time.Millisecond))
	})

	t.Run("pods resolve short names through their search path", func(t *testing.T) {
		for _, tc := range []struct {
			pod, name, want string
		}{
			{"n1/p1", "web", webIP},                       // default.svc.cluster.local
			{"n1/p1", "web.default", webIP},               // svc.cluster.local
			{"n2/p3", "web.default", webIP},               // from namespace team
			{"n2/p3", "web.default.svc", webIP},           // cluster.local
			{"n1/p1", "www.example.test", "198.51.100.7"}, // search list exhausted, then forwarded
		} {
			out := c.mustWeft("lab", "exec", "--name", c.name, tc.pod, "--", "getent", "ahostsv4", tc.name)
			if !strings.HasPrefix(out, tc.want+" ") {
				t.Errorf("%s: getent ahostsv4 %s = %q, want %s", tc.pod, tc.name, firstLines(out, 2), tc.want)
			}
		}
		// The search path is the pod's namespace's: team has no web.
		if out, err := c.weft("lab", "exec", "--name", c.name, "n2/p3", "--", "getent", "ahostsv4", "web"); err == nil {
			t.Errorf("web from namespace team resolved: %s", out)
		}
	})

	t.Run("DNS to and from the proxy bypasses conntrack", func(t *testing.T) {
		out, err := exec.Command("ip", "netns", "exec", c.layout.NodeNS("n1"), "nft", "list", "table", "ip", "weft-dns").CombinedOutput()
		if err != nil {
			t.Fatalf("nft: %v\n%s", err, out)
		}
		for _, rule := range []string{"udp dport 53 counter packets ", "tcp dport 53 counter packets ", "udp sport 53 counter packets ", "tcp sport 53 counter packets "} {
			i := strings.Index(string(out), "ip daddr 169.254.20.10 "+rule)
			if strings.Contains(rule, "sport") {
				i = strings.Index(string(out), "ip saddr 169.254.20.10 "+rule)
			}
			if i < 0 || strings.HasPrefix(string(out[i:]), "ip daddr 169.254.20.10 "+rule+"0 ") || strings.HasPrefix(string(out[i:]), "ip saddr 169.254.20.10 "+rule+"0 ") {
				t.Errorf("NOTRACK rule %q missing or unused:\n%s", rule, out)
			}
		}
	})

	t.Run("queries from outside the cluster are refused", func(t *testing.T) {
		// The control plane's netns is on the underlay but is no node of
		// n1's and not in the cluster CIDR; route the proxy's address to n1.
		var n1 string
		for _, n := range c.status().Nodes {
			if n.Name == "n1" {
				n1 = n.UnderlayIP
			}
		}
		if out, err := exec.Command("ip", "-n", c.layout.CPNS(), "route", "replace", proxyAddr.Addr().String()+"/32", "via", n1).CombinedOutput(); err != nil {
			t.Fatalf("route: %v %s", err, out)
		}
		for _, network := range []string{"udp", "tcp"} {
			for _, name := range []string{"web.default.svc" + z, "www.example.test."} {
				m, err := askFrom(lab.NetNSPath(c.layout.CPNS()), network, proxyAddr, name, dns.TypeA, nil)
				if err != nil {
					t.Fatal(err)
				}
				if m.Rcode != dns.RcodeRefused || len(m.Answer) != 0 {
					t.Errorf("%s %s from the control plane: %s %v, want REFUSED", network, name, dns.RcodeToString[m.Rcode], records(m.Answer))
				}
			}
		}
	})

	t.Run("metrics: queries by type and rcode, cache, upstream latency", func(t *testing.T) {
		body, err := nodeMetrics(c, "n1")
		if err != nil {
			t.Fatal(err)
		}
		for _, series := range []string{
			`weft_dns_queries_total{proto="udp",rcode="NOERROR",type="A"}`,
			`weft_dns_queries_total{proto="tcp",rcode="NXDOMAIN",type="A"}`,
			`weft_dns_queries_total{proto="udp",rcode="REFUSED",type="A"}`,
			`weft_dns_queries_total{proto="udp",rcode="REFUSED",type="AXFR"}`,
			`weft_dns_cache_hits_total `,
			`weft_dns_upstream_duration_seconds_count{proto="udp",upstream="203.0.113.1:53"}`,
		} {
			if !strings.Contains(body, series) {
				t.Errorf("metrics lack %s", series)
			}
		}
		if strings.Contains(body, "weft_dns_cache_hits_total 0\n") {
			t.Error("no cache hits, though forwarded names were asked again and again")
		}
	})

	t.Run("weft leave removes the listen interface and the NOTRACK table", func(t *testing.T) {
		ns := c.layout.NodeNS("n2")
		c.mustWeft("leave", "--socket", c.layout.Node("n2").StatusSocket)
		eventually(t, 15*time.Second, "n2's DNS interface and table gone", func() error {
			if out, err := exec.Command("ip", "-n", ns, "link", "show", "weft-dns").CombinedOutput(); err == nil {
				return fmt.Errorf("weft-dns still there: %s", out)
			}
			if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "ip", "weft-dns").CombinedOutput(); err == nil {
				return fmt.Errorf("table ip weft-dns still there: %s", firstLines(string(out), 2))
			}
			return nil
		})
	})
}

// petsSlice is the EndpointSlice of the selector-less headless Service
// pets: pet-0 and pet-1 on the two pods, pet-9 not ready.
func petsSlice(ip1, ip2 string) *discoveryv1.EndpointSlice {
	yes, no := true, false
	name, port, proto := "http", int32(8080), corev1.ProtocolTCP
	host := func(h string) *string { return &h }
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "pets-1", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "pets"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{ip1}, Hostname: host("pet-0"), Conditions: discoveryv1.EndpointConditions{Ready: &yes}},
			{Addresses: []string{ip2}, Hostname: host("pet-1"), Conditions: discoveryv1.EndpointConditions{Ready: &yes}},
			{Addresses: []string{"10.244.250.9"}, Hostname: host("pet-9"), Conditions: discoveryv1.EndpointConditions{Ready: &no}},
		},
	}
}

func clusterIP(t *testing.T, cs kubernetes.Interface, ns, name string) string {
	t.Helper()
	s, err := cs.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s.Spec.ClusterIP
}

// expectA checks that name's A records are exactly ips, over UDP and TCP.
func expectA(p labPod, name string, ips ...string) error {
	var want []string
	for _, ip := range ips {
		want = append(want, name+" A "+ip)
	}
	slices.Sort(want)
	for _, network := range []string{"udp", "tcp"} {
		m, err := askFrom(p.NSPath(), network, proxyAddr, name, dns.TypeA, nil)
		if err != nil {
			return err
		}
		if got := records(m.Answer); m.Rcode != dns.RcodeSuccess || !slices.Equal(got, want) {
			return fmt.Errorf("%s over %s: %s %q, want %q", name, network, dns.RcodeToString[m.Rcode], got, want)
		}
	}
	return nil
}

// checkTruncation gives the selector-less headless Service many an
// endpoint: over UDP without EDNS the answer is cut to 512 bytes with TC
// set; with EDNS to the proxy's 1232; over TCP it is whole.
func checkTruncation(t *testing.T, ctx context.Context, c *cluster, cs kubernetes.Interface, p labPod) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "many", Namespace: "default"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	yes := true
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "many-1", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "many"}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for i := range 150 {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{netip.AddrFrom4([4]byte{10, 244, 200 + byte(i/100), byte(i%100 + 1)}).String()},
			Conditions: discoveryv1.EndpointConditions{Ready: &yes},
		})
	}
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const name = "many.default.svc.cluster.local."
	eventually(t, 10*time.Second, "150 endpoints over TCP", func() error {
		m, err := askFrom(p.NSPath(), "tcp", proxyAddr, name, dns.TypeA, nil)
		if err != nil {
			return err
		}
		if len(m.Answer) != 150 || m.Truncated {
			return fmt.Errorf("%d answers, TC %v", len(m.Answer), m.Truncated)
		}
		return nil
	})
	for _, tc := range []struct {
		edns uint16
		max  int
	}{{0, 512}, {4096, 1232}} {
		m, err := askFrom(p.NSPath(), "udp", proxyAddr, name, dns.TypeA, func(m *dns.Msg) {
			if tc.edns > 0 {
				m.SetEdns0(tc.edns, false)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		m.Compress = true
		if !m.Truncated || len(m.Answer) >= 150 || m.Len() > tc.max {
			t.Errorf("UDP, EDNS %d: TC %v, %d answers, %d bytes; want TC and at most %d bytes", tc.edns, m.Truncated, len(m.Answer), m.Len(), tc.max)
		}
	}
}
