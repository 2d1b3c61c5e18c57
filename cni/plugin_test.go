package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/weftnet/weft/cni/ipam"
	"github.com/weftnet/weft/nodestate"
)

// fakeDP is the Dataplane without a kernel: it records host veths by name.
type fakeDP struct {
	mu      sync.Mutex
	links   map[string]Plan
	addErr  error // returned by Add, after "creating" nothing
	nsErr   error // returned by CheckNetNS
	deleted []string
}

var _ Dataplane = (*fakeDP)(nil)

func newFakeDP() *fakeDP { return &fakeDP{links: map[string]Plan{}} }

func (f *fakeDP) CheckNetNS(string) error { return f.nsErr }

func (f *fakeDP) Add(netns string, p Plan) (*current.Interface, *current.Interface, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.addErr != nil {
		return nil, nil, f.addErr
	}
	if _, ok := f.links[p.HostVeth]; ok {
		return nil, nil, fmt.Errorf("interface %q already exists", p.Att.IfName)
	}
	f.links[p.HostVeth] = p
	return &current.Interface{Name: p.HostVeth}, &current.Interface{Name: p.Att.IfName, Sandbox: netns}, nil
}

func (f *fakeDP) Del(p Plan) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.links[p.HostVeth]; ok {
		f.deleted = append(f.deleted, p.HostVeth)
	}
	delete(f.links, p.HostVeth)
	return nil
}

func (f *fakeDP) Check(_ string, p Plan) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	got, ok := f.links[p.HostVeth]
	if !ok || got != p {
		return checkFailed("host veth %s missing or different", p.HostVeth)
	}
	return nil
}

func (f *fakeDP) Sweep(network string, keep map[ipam.Attachment]bool) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for name, p := range f.links {
		if p.Network == network && !keep[p.Att] {
			delete(f.links, name)
			out = append(out, name)
		}
	}
	return out, nil
}

type harness struct {
	t     *testing.T
	dp    *fakeDP
	p     *Plugin
	dir   string
	state string
	conf  string
}

func newHarness(t *testing.T, block string) *harness {
	dir := t.TempDir()
	h := &harness{t: t, dp: newFakeDP(), dir: dir, state: filepath.Join(dir, "node.json")}
	h.p = &Plugin{DP: h.dp, ReadState: nodestate.Read}
	h.conf = fmt.Sprintf(`{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","stateFile":%q,"dataDir":%q}`,
		h.state, filepath.Join(dir, "ipam"))
	if block != "" {
		h.writeState(block)
	}
	return h
}

func (h *harness) writeState(block string) {
	pfx := netip.MustParsePrefix(block)
	err := nodestate.Write(h.state, nodestate.State{
		Node: "n1", PodCIDR: pfx, Gateway: nodestate.GatewayFor(pfx),
		ClusterCIDR: netip.MustParsePrefix("10.0.0.0/8"), MTU: 1340,
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) args(cid string) *skel.CmdArgs {
	return &skel.CmdArgs{ContainerID: cid, IfName: "eth0", Netns: "/run/netns/" + cid, StdinData: []byte(h.conf)}
}

// add runs ADD and returns the printed result.
func (h *harness) add(cid string) (*current.Result, error) {
	var err error
	out := captureStdout(h.t, func() { err = h.p.Funcs().Add(h.args(cid)) })
	if err != nil {
		return nil, err
	}
	r := &current.Result{}
	if jerr := json.Unmarshal(out, r); jerr != nil {
		h.t.Fatalf("ADD printed %q: %v", out, jerr)
	}
	return r, nil
}

func (h *harness) allocations() []ipam.Allocation {
	s, err := ipam.Open(filepath.Join(h.dir, "ipam"))
	if err != nil {
		h.t.Fatal(err)
	}
	l, err := s.List()
	if err != nil {
		h.t.Fatal(err)
	}
	return l
}

func captureStdout(t *testing.T, f func()) []byte {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	defer func() { os.Stdout = old }()
	f()
	w.Close()
	return <-done
}

func wantCode(t *testing.T, err error, code uint) {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("error = %v, want CNI code %d", err, code)
	}
}

func TestAddDelLifecycle(t *testing.T) {
	h := newHarness(t, "10.244.7.0/24")
	r, err := h.add("c1")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.IPs[0].Address.String(); got != "10.244.7.2/32" {
		t.Fatalf("pod address %s, want 10.244.7.2/32", got)
	}
	if err := h.p.Funcs().Check(h.args("c1")); err != nil {
		t.Fatalf("CHECK after ADD: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := h.p.Funcs().Del(h.args("c1")); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
	}
	if l := h.allocations(); len(l) != 0 || len(h.dp.links) != 0 {
		t.Fatalf("after DEL: allocations %v, links %v", l, h.dp.links)
	}
	wantCode(t, h.p.Funcs().Check(h.args("c1")), CodeCheckFailed)
	// DEL of something never added, with no state file at all.
	os.Remove(h.state)
	if err := h.p.Funcs().Del(h.args("never")); err != nil {
		t.Fatalf("DEL without ADD or state: %v", err)
	}
}

func TestFailedAddReleasesItsAddress(t *testing.T) {
	h := newHarness(t, "10.244.7.0/24")
	h.dp.addErr = errors.New("veth creation failed")
	if _, err := h.add("c1"); err == nil {
		t.Fatal("ADD succeeded with a failing data path")
	}
	if l := h.allocations(); len(l) != 0 {
		t.Fatalf("failed ADD leaked %v", l)
	}
}

func TestRepeatAddKeepsTheFirstReservation(t *testing.T) {
	h := newHarness(t, "10.244.7.0/24")
	if _, err := h.add("c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.add("c1"); err == nil {
		t.Fatal("second ADD of a live attachment succeeded; the spec requires an error")
	}
	l := h.allocations()
	if len(l) != 1 || l[0].ContainerID != "c1" {
		t.Fatalf("repeat ADD changed the reservations: %v", l)
	}
	if err := h.p.Funcs().Check(h.args("c1")); err != nil {
		t.Fatalf("CHECK after the failed repeat: %v", err)
	}
}

func TestNoStateFile(t *testing.T) {
	h := newHarness(t, "")
	_, err := h.add("c1")
	wantCode(t, err, types.ErrTryAgainLater)
	wantCode(t, h.p.Funcs().Status(h.args("")), types.ErrPluginNotAvailable)
	wantCode(t, h.p.Funcs().Check(h.args("c1")), types.ErrTryAgainLater)
	if l := h.allocations(); len(l) != 0 {
		t.Fatalf("allocated without a state file: %v", l)
	}
	h.writeState("10.244.7.0/24")
	if err := h.p.Funcs().Status(h.args("")); err != nil {
		t.Fatalf("STATUS with a state file: %v", err)
	}
	// A broken state file is "not available" too.
	if err := os.WriteFile(h.state, []byte(`{"node":"n1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	wantCode(t, h.p.Funcs().Status(h.args("")), types.ErrPluginNotAvailable)
}

func TestExhaustion(t *testing.T) {
	h := newHarness(t, "10.244.7.0/30") // one pod address
	if _, err := h.add("c1"); err != nil {
		t.Fatal(err)
	}
	_, err := h.add("c2")
	wantCode(t, err, types.ErrTryAgainLater)
	wantCode(t, h.p.Funcs().Status(h.args("")), types.ErrPluginNotAvailable)
	if err := h.p.Funcs().Del(h.args("c1")); err != nil {
		t.Fatal(err)
	}
	if err := h.p.Funcs().Status(h.args("")); err != nil {
		t.Fatalf("STATUS after a DEL freed an address: %v", err)
	}
}

func TestBadNetns(t *testing.T) {
	h := newHarness(t, "10.244.7.0/24")
	h.dp.nsErr = types.NewError(types.ErrUnknownContainer, "network namespace does not exist", "")
	_, err := h.add("c1")
	wantCode(t, err, types.ErrUnknownContainer)
	if l := h.allocations(); len(l) != 0 {
		t.Fatalf("ADD with a bad netns allocated %v", l)
	}
}

func TestLeaseChangeFailsCheck(t *testing.T) {
	h := newHarness(t, "10.244.7.0/24")
	if _, err := h.add("c1"); err != nil {
		t.Fatal(err)
	}
	h.writeState("10.244.8.0/24")
	err := h.p.Funcs().Check(h.args("c1"))
	wantCode(t, err, CodeCheckFailed)
	if !strings.Contains(err.Error(), "outside this node's pod subnet") {
		t.Fatalf("CHECK error %q does not say why", err)
	}
	r, err := h.add("c2")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.IPs[0].Address.String(); got != "10.244.8.2/32" {
		t.Fatalf("ADD after lease change got %s, want 10.244.8.2/32", got)
	}
}

func TestCheckComparesPrevResult(t *testing.T) {
	h := newHarness(t, "10.244.7.0/24")
	r, err := h.add("c1")
	if err != nil {
		t.Fatal(err)
	}
	withPrev := func(r *current.Result) *skel.CmdArgs {
		var conf map[string]any
		_ = json.Unmarshal([]byte(h.conf), &conf)
		conf["prevResult"] = r
		b, _ := json.Marshal(conf)
		a := h.args("c1")
		a.StdinData = b
		return a
	}
	if err := h.p.Funcs().Check(withPrev(r)); err != nil {
		t.Fatalf("CHECK with its own prevResult: %v", err)
	}
	r.IPs[0].Address.IP = netip.MustParseAddr("10.244.7.99").AsSlice()
	wantCode(t, h.p.Funcs().Check(withPrev(r)), CodeCheckFailed)
}

func TestGCReleasesUnlisted(t *testing.T) {
	h := newHarness(t, "10.244.7.0/24")
	for _, c := range []string{"c1", "c2", "c3"} {
		if _, err := h.add(c); err != nil {
			t.Fatal(err)
		}
	}
	// An allocation of another network on the same node is not ours to GC.
	s, _ := ipam.Open(filepath.Join(h.dir, "ipam"))
	if _, _, err := s.Allocate(netip.MustParsePrefix("10.244.7.0/24"), netip.MustParseAddr("10.244.7.1"),
		ipam.Attachment{ContainerID: "x", IfName: "net1"}, "other"); err != nil {
		t.Fatal(err)
	}
	gcConf := strings.TrimSuffix(h.conf, "}") + `,"cni.dev/valid-attachments":[{"containerID":"c2","ifname":"eth0"}]}`
	if err := h.p.Funcs().GC(&skel.CmdArgs{StdinData: []byte(gcConf)}); err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, al := range h.allocations() {
		left = append(left, al.ContainerID)
	}
	if strings.Join(left, ",") != "c2,x" {
		t.Fatalf("after GC: %v, want c2,x", left)
	}
	if len(h.dp.links) != 1 {
		t.Fatalf("after GC host veths %v, want only c2's", h.dp.links)
	}
	if err := h.p.Funcs().Check(h.args("c2")); err != nil {
		t.Fatalf("kept attachment broken by GC: %v", err)
	}
}

// Malformed input must never panic and never allocate.
// TestSecondInterfaceRefused: a second weft interface for one container
// fails with CodeSecondInterface naming both interfaces, and reserves
// nothing; the first attachment is untouched.
func TestSecondInterfaceRefused(t *testing.T) {
	h := newHarness(t, "10.244.7.0/24")
	if _, err := h.add("c1"); err != nil {
		t.Fatal(err)
	}
	a := h.args("c1")
	a.IfName = "eth1"
	var err error
	captureStdout(t, func() { err = h.p.Funcs().Add(a) })
	wantCode(t, err, CodeSecondInterface)
	if !strings.Contains(err.Error(), `"eth0" exists`) || !strings.Contains(err.Error(), `"eth1"`) {
		t.Fatalf("error %q does not name both interfaces", err)
	}
	if l := h.allocations(); len(l) != 1 || l[0].IfName != "eth0" {
		t.Fatalf("allocations after the refused ADD: %v", l)
	}
	if len(h.dp.links) != 1 {
		t.Fatalf("links after the refused ADD: %v", h.dp.links)
	}
	// The data path's own refusal (another container ID in the same
	// netns) releases the address it was given.
	h.dp.addErr = secondInterface("eth0", "eth0")
	_, err = h.add("c2")
	wantCode(t, err, CodeSecondInterface)
	if l := h.allocations(); len(l) != 1 {
		t.Fatalf("a refused ADD leaked an address: %v", l)
	}
}

func TestMalformedInput(t *testing.T) {
	h := newHarness(t, "10.244.7.0/24")
	inputs := []string{"", "null", "{", `{"name":1}`, `[]`, `{"cniVersion":"1.1.0","name":"weft","prevResult":"x"}`,
		`{"cniVersion":"1.1.0","name":"weft","prevResult":{"cniVersion":"1.1.0","ips":[{"address":"nope"}]}}`,
		`{"cniVersion":"1.1.0","name":"weft","dataDir":"rel"}`,
		`{"cniVersion":"1.1.0","name":"weft","cni.dev/pad":"` + strings.Repeat("x", MaxConfigSize) + `"}`}
	f := h.p.Funcs()
	for _, in := range inputs {
		for name, cmd := range map[string]func(*skel.CmdArgs) error{"ADD": f.Add, "DEL": f.Del, "CHECK": f.Check, "STATUS": f.Status, "GC": f.GC} {
			a := h.args("c1")
			a.StdinData = []byte(in)
			var err error
			captureStdout(t, func() { err = cmd(a) })
			var e *types.Error
			if err != nil && !errors.As(err, &e) {
				t.Errorf("%s %q: non-CNI error %v", name, in, err)
			}
		}
	}
	if l := h.allocations(); len(l) != 0 {
		t.Fatalf("malformed input leaked %v", l)
	}
}
