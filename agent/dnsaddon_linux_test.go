package agent

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/weftnet/weft/agent/kube"
	"github.com/weftnet/weft/internal/netnstest"
)

// TestDNSAddonLifecycle runs the addon as the agent does, in a fresh
// network namespace, on informers over a fake clientset: it answers a
// Service on 169.254.20.10:53, a plain stop keeps the interface and table,
// a second start takes them over, and leaving removes them.
func TestDNSAddonLifecycle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace, an interface and an nftables table")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs the nft tool to check the table")
	}
	netnstest.Enter(t)

	dir := t.TempDir()
	resolv := dir + "/resolv.conf"
	os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o644)
	cfg := Config{NodeName: "n1", Gossip: GossipConfig{KeyFile: "/k"}, ResyncInterval: Duration{Duration: time.Second},
		DNS: DNSConfig{ResolvConf: resolv}}
	if err := cfg.Complete(); err != nil {
		t.Fatal(err)
	}
	web := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", Annotations: map[string]string{"weft.dev/export": "true"}},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"}}}
	client := fake.NewClientset(web)

	start := func() (addon, context.CancelFunc) {
		t.Helper()
		a, err := New(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ad, err := newDNSAddon(a)
		if err != nil || ad == nil {
			t.Fatalf("newDNSAddon: %v %v", ad, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		inf := kube.NewInformers(client, 0)
		if err := ad.Start(ctx, inf); err != nil {
			t.Fatal(err)
		}
		inf.Start(ctx.Done())
		return ad, cancel
	}
	// web is exported, so it answers in clusterset.local too.
	ask := func() error {
		for _, name := range []string{"web.default.svc.cluster.local.", "web.default.svc.clusterset.local."} {
			m := new(dns.Msg)
			m.SetQuestion(name, dns.TypeA)
			resp, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, "169.254.20.10:53")
			if err != nil {
				return err
			}
			if len(resp.Answer) != 1 {
				return &dnsErr{resp}
			}
		}
		return nil
	}
	waitAnswer := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for err := ask(); err != nil; err = ask() {
			if time.Now().After(deadline) {
				t.Fatalf("web.default is not answered: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	present := func() bool {
		_, lerr := netlink.LinkByName("weft-dns")
		terr := exec.Command("nft", "list", "table", "ip", "weft-dns").Run()
		return lerr == nil && terr == nil
	}

	ad, cancel := start()
	waitAnswer()
	if err := ad.Close(false); err != nil {
		t.Fatal(err)
	}
	cancel()
	if !present() {
		t.Fatal("a plain stop removed the interface or the NOTRACK table")
	}
	ad, cancel = start() // a restarted agent takes them over
	defer cancel()
	waitAnswer()
	if err := ad.Close(true); err != nil {
		t.Fatal(err)
	}
	if present() {
		t.Error("leaving left the interface or the NOTRACK table")
	}
	if ask() == nil {
		t.Error("still answering after Close")
	}
}

type dnsErr struct{ m *dns.Msg }

func (e *dnsErr) Error() string { return e.m.String() }
