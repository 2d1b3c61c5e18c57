package agent

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/weftnet/weft/agent/kube"
	"github.com/weftnet/weft/policy"
)

// policyAddon enforces NetworkPolicy on this node.
//
// Informer handlers only kick a buffered(1) channel; one goroutine (run)
// owns the compiler and the applier. It waits for the informers' first
// list, then on every kick waits cfg.Debounce for more changes, compiles
// the whole ruleset from the caches and applies it. A compile or apply
// failure keeps the previous ruleset in the kernel and is retried on the
// next change or resync.
type policyAddon struct {
	log         *slog.Logger
	node        string
	cfg         PolicyConfig
	rulesetFile string
	sourceCheck netip.Prefix  // the cluster CIDR, or invalid (policy.sourceCheck off)
	applier     policyApplier // used by run only
	remove      func() error  // deletes the table (leaving the cluster)
	closeConn   func() error
	kick        chan struct{}
	stop, done  chan struct{}
	publish     func(PolicyStatus)
	metrics     *policyMetrics

	pods, namespaces, policies cache.SharedIndexInformer

	// Owned by run.
	status   PolicyStatus
	chains   map[string]chainLabels    // the current ruleset's chains, for drop metrics
	podNames map[policy.PodDrop]string // isolated pods' names by address and direction
}

type chainLabels struct{ direction, policies string }

// policyApplier is what the addon needs of *policy.Applier.
type policyApplier interface {
	Apply(policy.Ruleset) (policy.Outcome, error)
	Forget()
	Drops() (policy.Drops, error)
}

var _ policyApplier = (*policy.Applier)(nil)

func (p *policyAddon) Name() string { return "policy" }

// Start registers the handlers and starts the loop; it does not block.
func (p *policyAddon) Start(ctx context.Context, inf *kube.Informers) error {
	p.pods, p.namespaces, p.policies = inf.Pods(), inf.Namespaces(), inf.NetworkPolicies()
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.changed() },
		UpdateFunc: func(any, any) { p.changed() },
		DeleteFunc: func(any) { p.changed() },
	}
	// Pods change often in ways policy does not read (status churn);
	// only what the compiler reads wakes the loop.
	ph := h
	ph.UpdateFunc = func(o, n any) {
		if podPolicyChanged(o, n) {
			p.changed()
		}
	}
	for _, w := range []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{{p.pods, ph}, {p.namespaces, h}, {p.policies, h}} {
		if _, err := w.inf.AddEventHandler(w.h); err != nil {
			return fmt.Errorf("failed to watch for policy: %w", err)
		}
	}
	p.chains = map[string]chainLabels{}
	p.podNames = map[policy.PodDrop]string{}
	p.status.RulesetFile = p.rulesetFile
	p.publish(p.status)
	go p.run(ctx)
	return nil
}

func (p *policyAddon) changed() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Close stops the loop; when leaving it removes the policy table.
func (p *policyAddon) Close(leave bool) error {
	close(p.stop)
	<-p.done
	defer p.closeConn()
	if !leave {
		return nil
	}
	_ = os.Remove(p.rulesetFile)
	return p.remove()
}

func (p *policyAddon) run(ctx context.Context) {
	defer close(p.done)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if !cache.WaitForCacheSync(ctx.Done(), p.pods.HasSynced, p.namespaces.HasSynced, p.policies.HasSynced) {
		return
	}
	p.log.Info("informers synced; enforcing NetworkPolicy")
	p.sync(false)
	resync := time.NewTicker(p.cfg.ResyncInterval.Duration)
	defer resync.Stop()
	counters := time.NewTicker(5 * time.Second)
	defer counters.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
			// Gather a burst of changes (a namespace of pods relabelled)
			// into one compile.
			t := time.NewTimer(p.cfg.Debounce.Duration)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			select {
			case <-p.kick:
			default:
			}
			p.sync(false)
		case <-resync.C:
			p.applier.Forget()
			p.sync(true)
		case <-counters.C:
			p.readDrops()
			p.publish(p.status)
		}
	}
}

// sync compiles the ruleset from the caches and applies it. A resync
// rewrites elements that are most likely unchanged: it is not reported as
// a change.
func (p *policyAddon) sync(resync bool) {
	in := policy.Input{Node: p.node, SourceCheck: p.sourceCheck}
	for _, o := range p.policies.GetStore().List() {
		if np, ok := o.(*networkingv1.NetworkPolicy); ok {
			in.Policies = append(in.Policies, np)
		}
	}
	for _, o := range p.pods.GetStore().List() {
		if pod, ok := o.(*corev1.Pod); ok {
			in.Pods = append(in.Pods, pod)
		}
	}
	for _, o := range p.namespaces.GetStore().List() {
		if ns, ok := o.(*corev1.Namespace); ok {
			in.Namespaces = append(in.Namespaces, ns)
		}
	}
	start := time.Now()
	rs, err := policy.Compile(in)
	p.status.CompileSeconds = time.Since(start).Seconds()
	p.metrics.compileTime.Observe(p.status.CompileSeconds)
	if err != nil {
		p.fail("compile", err)
		return
	}
	start = time.Now()
	outcome, err := p.applier.Apply(rs)
	p.status.ApplySeconds = time.Since(start).Seconds()
	p.metrics.applyTime.Observe(p.status.ApplySeconds)
	if err != nil {
		p.fail("apply", err)
		return
	}
	p.chains = make(map[string]chainLabels, len(rs.Chains)+1)
	p.chains[policy.SourceCheckCounter] = chainLabels{direction: policy.SourceCheckCounter}
	for _, c := range rs.Chains {
		p.chains[c.Name] = chainLabels{direction: string(c.Direction), policies: strings.Join(c.Policies, ",")}
	}
	p.podNames = make(map[policy.PodDrop]string, len(rs.Ingress)+len(rs.Egress))
	for _, m := range rs.Ingress {
		p.podNames[policy.PodDrop{Direction: policy.Ingress, IP: m.IP}] = m.Pod
	}
	for _, m := range rs.Egress {
		p.podNames[policy.PodDrop{Direction: policy.Egress, IP: m.IP}] = m.Pod
	}
	if !slices.Equal(rs.Problems, p.status.Problems) {
		for _, pr := range rs.Problems {
			p.log.Warn("NetworkPolicy not enforced exactly", "problem", pr)
		}
	}
	changed := outcome == policy.Replaced || outcome == policy.Elements && !resync
	if changed || !p.status.Synced || p.status.LastError != "" {
		p.writeRuleset(rs)
		p.log.Info("policy applied", "outcome", outcome, "policies", rs.Policies, "pods", rs.Pods,
			"chains", len(rs.Chains), "sets", len(rs.Sets), "compile", time.Duration(p.status.CompileSeconds*1e9), "apply", time.Duration(p.status.ApplySeconds*1e9))
	} else {
		p.log.Debug("policy resynced", "outcome", outcome)
	}
	if changed {
		p.status.LastApply = time.Now()
		p.status.LastOutcome = string(outcome)
	}
	p.status.Synced = true
	p.status.Policies, p.status.ClusterPolicies, p.status.Pods = rs.Policies, rs.AllPolicies, rs.Pods
	p.status.Chains, p.status.Sets = len(rs.Chains), len(rs.Sets)
	p.status.Problems = rs.Problems
	p.status.LastError = ""
	p.metrics.set(rs)
	p.readDrops()
	p.publish(p.status)
}

func (p *policyAddon) fail(stage string, err error) {
	p.metrics.errors.WithLabelValues(stage).Inc()
	msg := stage + ": " + err.Error() + " (the previous ruleset stays in force)"
	if msg != p.status.LastError {
		p.log.Error("NetworkPolicy update failed; the previous ruleset stays in force", "stage", stage, "err", err)
	}
	p.status.LastError = msg
	p.publish(p.status)
}

func (p *policyAddon) readDrops() {
	drops, err := p.applier.Drops()
	if err != nil {
		return
	}
	byLabel := map[chainLabels]uint64{}
	for name, n := range drops.Chains {
		if l, ok := p.chains[name]; ok {
			byLabel[l] += n
		}
	}
	byPod := map[podLabels]uint64{}
	var top []PolicyPodDrops
	for k, n := range drops.Pods {
		name, ok := p.podNames[k]
		if !ok {
			continue
		}
		byPod[podLabels{direction: string(k.Direction), pod: name}] = n
		top = append(top, PolicyPodDrops{Pod: name, Direction: string(k.Direction), Packets: n})
	}
	slices.SortFunc(top, func(a, b PolicyPodDrops) int {
		if a.Packets != b.Packets {
			return cmp.Compare(b.Packets, a.Packets)
		}
		return cmp.Compare(a.Pod+a.Direction, b.Pod+b.Direction)
	})
	if len(top) > maxTopDrops {
		top = top[:maxTopDrops]
	}
	p.status.DroppedPackets = drops.Total()
	p.status.TopDrops = top
	p.metrics.setDrops(byLabel, byPod)
}

// maxTopDrops is how many pods `weft status` lists by drops.
const maxTopDrops = 10

// writeRuleset replaces the ruleset file (write and rename).
func (p *policyAddon) writeRuleset(rs policy.Ruleset) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# node %s, compiled %s\n", p.node, time.Now().UTC().Format(time.RFC3339))
	policy.Show(&b, rs)
	if err := os.MkdirAll(filepath.Dir(p.rulesetFile), 0o755); err != nil {
		p.log.Warn("failed to write the ruleset file", "err", err)
		return
	}
	tmp := p.rulesetFile + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		p.log.Warn("failed to write the ruleset file", "err", err)
		return
	}
	if err := os.Rename(tmp, p.rulesetFile); err != nil {
		p.log.Warn("failed to write the ruleset file", "err", err)
	}
}

// podPolicyChanged reports whether a Pod update changes anything the
// compiler reads: labels, node, addresses, phase, host networking (ports
// cannot change).
func podPolicyChanged(o, n any) bool {
	a, ok1 := o.(*corev1.Pod)
	b, ok2 := n.(*corev1.Pod)
	if !ok1 || !ok2 {
		return true
	}
	return !maps.Equal(a.Labels, b.Labels) || a.Spec.NodeName != b.Spec.NodeName ||
		a.Spec.HostNetwork != b.Spec.HostNetwork || a.Status.Phase != b.Status.Phase ||
		a.Status.PodIP != b.Status.PodIP || !slices.Equal(a.Status.PodIPs, b.Status.PodIPs)
}
