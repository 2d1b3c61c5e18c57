// Package deploy holds weft's Kubernetes manifests, container image and lab
// clusters. Its test checks the manifests without a server: every document
// decodes strictly into its API type, and the DaemonSet, RBAC and ConfigMap
// agree with each other and with what the agent and weft-cni read.
package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/clusterset"
	"github.com/weftnet/weft/cni"
	"github.com/weftnet/weft/loadbalancer"
	"github.com/weftnet/weft/peering"
)

const (
	manifestDir = "kubernetes"
	namespace   = "weft-system"
	// secretTemplate is decoded like the rest but deliberately left out of
	// the kustomization (applying it again would replace a live key).
	secretTemplate = "gossip-key-secret.yaml"
)

// object is one decoded manifest document.
type object struct {
	file string
	obj  runtime.Object
}

// nonKubernetes are the YAML files in deploy/kubernetes that are not API
// objects.
var nonKubernetes = map[string]bool{"kustomization.yaml": true}

// loadManifests decodes every document of every manifest file strictly:
// an unknown or duplicated field, or a value of the wrong type, fails.
func loadManifests(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no manifests in %s", manifestDir)
	}
	decoder := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	var objs []object
	for _, f := range files {
		if nonKubernetes[filepath.Base(f)] {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
		for i := 0; ; i++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: document %d: %v", f, i, err)
			}
			if isEmptyDocument(doc) {
				continue
			}
			obj, gvk, err := decoder.Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s: document %d: %v", f, i, err)
			}
			if gvk.Kind == "" || gvk.Version == "" {
				t.Fatalf("%s: document %d: no apiVersion/kind", f, i)
			}
			objs = append(objs, object{file: filepath.Base(f), obj: obj})
		}
	}
	return objs
}

// isEmptyDocument reports whether a YAML document holds only comments.
func isEmptyDocument(doc []byte) bool {
	for line := range strings.SplitSeq(string(doc), "\n") {
		l := strings.TrimSpace(line)
		if l != "" && l != "---" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// only returns the single object of type T, failing unless there is exactly one.
func only[T runtime.Object](t *testing.T, objs []object) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if v, ok := o.obj.(T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want exactly one %T in %s, found %d", zero, manifestDir, len(found))
	}
	return found[0]
}

func TestManifestsDecodeStrictly(t *testing.T) {
	objs := loadManifests(t)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.obj.GetObjectKind().GroupVersionKind().Kind]++
	}
	for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap", "Secret", "DaemonSet"} {
		if kinds[k] != 1 {
			t.Errorf("want one %s, found %d", k, kinds[k])
		}
	}
	// Namespaced objects live in weft-system.
	for _, o := range objs {
		m, ok := o.obj.(interface{ GetNamespace() string })
		if !ok {
			t.Fatalf("%s: %T has no metadata", o.file, o.obj)
		}
		switch o.obj.(type) {
		case *corev1.Namespace, *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding:
			if m.GetNamespace() != "" {
				t.Errorf("%s: cluster-scoped %T has namespace %q", o.file, o.obj, m.GetNamespace())
			}
		default:
			if m.GetNamespace() != namespace {
				t.Errorf("%s: %T is in namespace %q, want %q", o.file, o.obj, m.GetNamespace(), namespace)
			}
		}
	}
	ns := only[*corev1.Namespace](t, objs)
	if ns.Name != namespace {
		t.Errorf("namespace is %q, want %q", ns.Name, namespace)
	}
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "privileged" {
		t.Errorf("namespace pod-security enforce label is %q: hostNetwork and hostPath need privileged", got)
	}
}

// The strict decoder is what catches a misspelt field; make sure it does.
func TestStrictDecoderRejectsUnknownFieldsAndWrongTypes(t *testing.T) {
	decoder := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	for name, doc := range map[string]string{
		"unknown field": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: x\nautomountToken: true\n",
		"wrong type":    "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: x\nspec:\n  template:\n    spec:\n      hostNetwork: \"yes\"\n",
	} {
		if _, _, err := decoder.Decode([]byte(doc), nil, nil); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(manifestDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	if err := yaml.UnmarshalStrict(raw, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml: kind %q", k.Kind)
	}
	files, _ := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	var want []string
	for _, f := range files {
		b := filepath.Base(f)
		if !nonKubernetes[b] && b != secretTemplate {
			want = append(want, b)
		}
	}
	got := slices.Clone(k.Resources)
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("kustomization resources = %v, want %v (every manifest but the secret template)", got, want)
	}
}

// allowedRules is everything the agent may be granted, by API group and
// resource. Anything else in the ClusterRole fails the test.
var allowedRules = map[string][]string{
	"/nodes":                               {"get", "list", "watch", "patch"},
	"/nodes/status":                        {"patch"},
	"/pods":                                {"get", "list", "watch"},
	"/namespaces":                          {"get", "list", "watch"},
	"/services":                            {"get", "list", "watch"},
	"/services/status":                     {"update"},                                             // load-balancer addresses
	"discovery.k8s.io/endpointslices":      {"get", "list", "watch", "create", "update", "delete"}, // imports of peered clusters' services
	"networking.k8s.io/networkpolicies":    {"get", "list", "watch"},
	"/events":                              {"create", "patch"},
	"events.k8s.io/events":                 {"create", "patch"},
	"multicluster.x-k8s.io/serviceexports": {"get", "list", "watch"},
	"apiextensions.k8s.io/customresourcedefinitions": {"get", "list", "watch"}, // the ServiceExport CRD, by name
}

// checkLeaseRole: the namespaced Role grants the load-balancer Lease and
// the clusterset IP ConfigMap and nothing else (create by namespace, the
// rest by name), bound to the agent's service account only.
func checkLeaseRole(t *testing.T, objs []object, sa *corev1.ServiceAccount) {
	t.Helper()
	role := only[*rbacv1.Role](t, objs)
	var create, byName, cmCreate, cmByName bool
	for i, r := range role.Rules {
		if slices.Equal(r.APIGroups, []string{""}) && slices.Equal(r.Resources, []string{"configmaps"}) {
			switch {
			case len(r.ResourceNames) == 0 && slices.Equal(r.Verbs, []string{"create"}):
				cmCreate = true
			case slices.Equal(r.ResourceNames, []string{clusterset.IPsConfigMap}) && slices.Equal(r.Verbs, []string{"get", "list", "watch", "update"}):
				cmByName = true
			default:
				t.Errorf("Role rule %d grants %v on configmaps %v; want create, or get, list, watch and update on %s", i, r.Verbs, r.ResourceNames, clusterset.IPsConfigMap)
			}
			continue
		}
		if !slices.Equal(r.APIGroups, []string{"coordination.k8s.io"}) || !slices.Equal(r.Resources, []string{"leases"}) {
			t.Errorf("Role rule %d grants %v %v; the Role is for the load-balancer Lease only", i, r.APIGroups, r.Resources)
			continue
		}
		switch {
		case len(r.ResourceNames) == 0 && slices.Equal(r.Verbs, []string{"create"}):
			create = true
		case slices.Equal(r.ResourceNames, []string{loadbalancer.LeaseName}) && slices.Equal(r.Verbs, []string{"get", "update"}):
			byName = true
		default:
			t.Errorf("Role rule %d grants %v on leases %v; want create, or get and update on %s", i, r.Verbs, r.ResourceNames, loadbalancer.LeaseName)
		}
	}
	if !create || !byName {
		t.Errorf("Role does not grant what leader election needs (create: %v, get/update %s: %v)", create, loadbalancer.LeaseName, byName)
	}
	if !cmCreate || !cmByName || clusterset.IPsNamespace != role.Namespace {
		t.Errorf("Role does not grant the clusterset IP table %s/%s (create: %v, by name: %v)", clusterset.IPsNamespace, clusterset.IPsConfigMap, cmCreate, cmByName)
	}
	if role.Namespace != loadbalancer.DefaultLeaseNamespace {
		t.Errorf("Role is in %q, the Lease in %q", role.Namespace, loadbalancer.DefaultLeaseNamespace)
	}
	rb := only[*rbacv1.RoleBinding](t, objs)
	if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != role.Name || rb.RoleRef.APIGroup != rbacv1.GroupName {
		t.Errorf("RoleBinding refers to %+v, want Role %s", rb.RoleRef, role.Name)
	}
	if len(rb.Subjects) != 1 || rb.Subjects[0].Kind != "ServiceAccount" ||
		rb.Subjects[0].Name != sa.Name || rb.Subjects[0].Namespace != sa.Namespace {
		t.Errorf("RoleBinding subjects = %+v, want only ServiceAccount %s/%s", rb.Subjects, sa.Namespace, sa.Name)
	}
}

// namedRules are the rules that must name their objects: the agent reads
// one CRD, not every CRD.
var namedRules = map[string][]string{
	"apiextensions.k8s.io/customresourcedefinitions": {"serviceexports.multicluster.x-k8s.io"},
}

// requiredRules is what the agent's Kubernetes mode cannot work without.
var requiredRules = map[string][]string{
	"/nodes":                            {"get", "list", "watch", "patch"},
	"/nodes/status":                     {"patch"},
	"/pods":                             {"get", "list", "watch"},
	"/namespaces":                       {"get", "list", "watch"},
	"/services":                         {"get", "list", "watch"},
	"discovery.k8s.io/endpointslices":   {"get", "list", "watch"},
	"networking.k8s.io/networkpolicies": {"get", "list", "watch"},
	"/events":                           {"create", "patch"},
}

func TestClusterRoleIsLeastPrivilege(t *testing.T) {
	objs := loadManifests(t)
	role := only[*rbacv1.ClusterRole](t, objs)
	if role.AggregationRule != nil {
		t.Error("ClusterRole must not aggregate other roles")
	}
	granted := map[string]map[string]bool{}
	for i, r := range role.Rules {
		if len(r.NonResourceURLs) > 0 {
			t.Errorf("rule %d grants non-resource URLs %v", i, r.NonResourceURLs)
		}
		names, named := namedRules[strings.Join(r.APIGroups, ",")+"/"+strings.Join(r.Resources, ",")]
		switch {
		case named && !slices.Equal(r.ResourceNames, names):
			t.Errorf("rule %d names %v, want exactly %v", i, r.ResourceNames, names)
		case !named && len(r.ResourceNames) > 0:
			t.Errorf("rule %d is limited to resource names %v; the agent needs every object", i, r.ResourceNames)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				key := g + "/" + res
				for _, v := range r.Verbs {
					if g == "*" || res == "*" || v == "*" || strings.Contains(res, "*") {
						t.Errorf("rule %d uses a wildcard (%s %s)", i, key, v)
						continue
					}
					if !slices.Contains(allowedRules[key], v) {
						t.Errorf("rule %d grants %s on %s, which the agent does not need", i, v, key)
					}
					if granted[key] == nil {
						granted[key] = map[string]bool{}
					}
					granted[key][v] = true
				}
			}
		}
	}
	for key, verbs := range requiredRules {
		for _, v := range verbs {
			if !granted[key][v] {
				t.Errorf("ClusterRole does not grant %s on %s, which the agent needs", v, key)
			}
		}
	}

	sa := only[*corev1.ServiceAccount](t, objs)
	checkLeaseRole(t, objs, sa)
	binding := only[*rbacv1.ClusterRoleBinding](t, objs)
	if binding.RoleRef.Kind != "ClusterRole" || binding.RoleRef.Name != role.Name || binding.RoleRef.APIGroup != rbacv1.GroupName {
		t.Errorf("binding refers to %+v, want ClusterRole %s", binding.RoleRef, role.Name)
	}
	if len(binding.Subjects) != 1 || binding.Subjects[0].Kind != "ServiceAccount" ||
		binding.Subjects[0].Name != sa.Name || binding.Subjects[0].Namespace != sa.Namespace {
		t.Errorf("binding subjects = %+v, want only ServiceAccount %s/%s", binding.Subjects, sa.Namespace, sa.Name)
	}
	ds := only[*appsv1.DaemonSet](t, objs)
	if ds.Spec.Template.Spec.ServiceAccountName != sa.Name {
		t.Errorf("DaemonSet runs as service account %q, want %q", ds.Spec.Template.Spec.ServiceAccountName, sa.Name)
	}
}

// agentConfig returns the ConfigMap's agent.yaml after ParseConfig and
// Complete, with the per-node values the DaemonSet passes as flags.
func agentConfig(t *testing.T, cm *corev1.ConfigMap) agent.Config {
	t.Helper()
	text, ok := cm.Data["agent.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no agent.yaml", cm.Name)
	}
	cfg, err := agent.ParseConfig(strings.NewReader(text))
	if err != nil {
		t.Fatalf("agent.yaml: %v", err)
	}
	cfg.NodeName = "node-1"             // --node-name=$(NODE_NAME)
	cfg.Underlay.Address = "192.0.2.10" // --underlay-address=$(NODE_IP)
	if err := cfg.Complete(); err != nil {
		t.Fatalf("agent.yaml: %v", err)
	}
	return cfg
}

func TestConfigMap(t *testing.T) {
	objs := loadManifests(t)
	cm := only[*corev1.ConfigMap](t, objs)
	cfg := agentConfig(t, cm)
	if cfg.ClusterCIDR != "10.244.0.0/16" {
		t.Errorf("clusterCIDR %s, want 10.244.0.0/16 (the kind and Vagrant labs' pod subnet)", cfg.ClusterCIDR)
	}
	if cfg.StateFile == "" {
		t.Error("agent.yaml sets no stateFile")
	}

	pf, ok := cm.Data["peering.yaml"]
	if !ok {
		t.Error("ConfigMap has no peering.yaml")
	} else if f, err := peering.ParseFile([]byte(pf)); err != nil {
		t.Errorf("peering.yaml: %v", err)
	} else if _, err := f.Validate(peering.Local{}); err != nil {
		t.Errorf("peering.yaml: %v", err)
	}

	conflist, ok := cm.Data["10-weft.conflist"]
	if !ok {
		t.Fatal("ConfigMap has no 10-weft.conflist")
	}
	if !json.Valid([]byte(conflist)) {
		t.Fatal("10-weft.conflist is not valid JSON")
	}
	list, err := libcni.ConfListFromBytes([]byte(conflist))
	if err != nil {
		t.Fatalf("10-weft.conflist: %v", err)
	}
	if list.Name == "" {
		t.Error("10-weft.conflist has no name")
	}
	if !slices.Contains(cni.SupportedVersions.SupportedVersions(), list.CNIVersion) {
		t.Errorf("10-weft.conflist cniVersion %q is not one weft-cni supports", list.CNIVersion)
	}
	if len(list.Plugins) == 0 || list.Plugins[0].Network.Type != "weft-cni" {
		t.Fatalf("10-weft.conflist: first plugin is not type weft-cni")
	}
	// What the runtime hands the plugin: its entry plus name and cniVersion.
	var entry map[string]any
	if err := json.Unmarshal(list.Plugins[0].Bytes, &entry); err != nil {
		t.Fatal(err)
	}
	entry["name"], entry["cniVersion"] = list.Name, list.CNIVersion
	stdin, _ := json.Marshal(entry)
	conf, err := cni.ParseConfig(stdin)
	if err != nil {
		t.Fatalf("weft-cni rejects its conflist entry: %v", err)
	}
	if conf.StateFile != cfg.StateFile {
		t.Errorf("weft-cni reads %q but the agent writes %q", conf.StateFile, cfg.StateFile)
	}
}

func TestDaemonSet(t *testing.T) {
	objs := loadManifests(t)
	ds := only[*appsv1.DaemonSet](t, objs)
	cfg := agentConfig(t, only[*corev1.ConfigMap](t, objs))
	spec := ds.Spec.Template.Spec

	if !spec.HostNetwork {
		t.Error("hostNetwork is not set")
	}
	if spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("dnsPolicy %q, want ClusterFirstWithHostNet", spec.DNSPolicy)
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q, want system-node-critical", spec.PriorityClassName)
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tol corev1.Toleration) bool {
		return tol.Operator == corev1.TolerationOpExists && tol.Key == "" && tol.Effect == "" && tol.TolerationSeconds == nil
	}) {
		t.Error("no toleration tolerates every taint (operator: Exists, no key, no effect)")
	}
	if spec.TerminationGracePeriodSeconds == nil {
		t.Error("terminationGracePeriodSeconds is not set")
	}
	if s := ds.Spec.UpdateStrategy; s.Type != appsv1.RollingUpdateDaemonSetStrategyType || s.RollingUpdate == nil || s.RollingUpdate.MaxUnavailable == nil {
		t.Error("updateStrategy is not RollingUpdate with maxUnavailable")
	}
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the template's labels", k, v)
		}
	}

	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[r]; !ok {
				t.Errorf("container %s: no %s request", c.Name, r)
			}
			if _, ok := c.Resources.Limits[r]; !ok {
				t.Errorf("container %s: no %s limit", c.Name, r)
			}
		}
		if sc := c.SecurityContext; sc != nil && sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container %s is privileged; NET_ADMIN is enough", c.Name)
		}
	}

	hostPaths := map[string]string{} // volume name -> host path
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}

	// The init container installs weft-cni and the conflist on the host.
	if len(spec.InitContainers) != 1 {
		t.Fatalf("want one init container, found %d", len(spec.InitContainers))
	}
	initC := spec.InitContainers[0]
	initHost := map[string]string{} // host path -> mount path
	for _, m := range initC.VolumeMounts {
		if hp, ok := hostPaths[m.Name]; ok {
			initHost[hp] = m.MountPath
		}
	}
	script := strings.Join(slices.Concat(initC.Command, initC.Args), " ")
	for hostDir, file := range map[string]string{"/opt/cni/bin": "weft-cni", "/etc/cni/net.d": "10-weft.conflist"} {
		mp, ok := initHost[hostDir]
		if !ok {
			t.Errorf("init container does not mount the host's %s", hostDir)
			continue
		}
		if !strings.Contains(script, path.Join(mp, file)) {
			t.Errorf("init container does not write %s", path.Join(mp, file))
		}
	}

	// The agent.
	var ag *corev1.Container
	for i := range spec.Containers {
		if spec.Containers[i].Name == "agent" {
			ag = &spec.Containers[i]
		}
	}
	if ag == nil {
		t.Fatal("no container named agent")
	}
	args := slices.Concat(ag.Command, ag.Args)
	for _, want := range []string{"agent", "--config=/etc/weft/agent.yaml", "--kubernetes", "--node-name=$(NODE_NAME)"} {
		if !slices.Contains(args, want) {
			t.Errorf("agent command %q lacks %q", args, want)
		}
	}
	env := map[string]string{}
	for _, e := range ag.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if env["NODE_NAME"] != "spec.nodeName" {
		t.Errorf("NODE_NAME comes from %q, want the downward API's spec.nodeName", env["NODE_NAME"])
	}
	if slices.Contains(args, "--underlay-address=$(NODE_IP)") && env["NODE_IP"] != "status.hostIP" {
		t.Errorf("NODE_IP comes from %q, want status.hostIP", env["NODE_IP"])
	}
	// GOMEMLIMIT is the agent container's own memory limit.
	var memLimit bool
	for _, e := range ag.Env {
		if r := e.ValueFrom; e.Name == "GOMEMLIMIT" && r != nil && r.ResourceFieldRef != nil {
			memLimit = r.ResourceFieldRef.Resource == "limits.memory" && r.ResourceFieldRef.ContainerName == ag.Name
		}
	}
	if !memLimit || ag.Resources.Limits.Memory().IsZero() {
		t.Error("GOMEMLIMIT does not come from the agent container's limits.memory (or it has none)")
	}
	sc := ag.SecurityContext
	if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Add, "NET_ADMIN") {
		t.Error("agent lacks NET_ADMIN")
	}

	// Probes reach the metrics listener the config opens.
	metrics, err := netip.ParseAddrPort(cfg.MetricsAddress)
	if err != nil {
		t.Fatalf("metricsAddress %q: the probes need a listener: %v", cfg.MetricsAddress, err)
	}
	for name, p := range map[string]*corev1.Probe{"/healthz": ag.LivenessProbe, "/readyz": ag.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no HTTP probe for %s", name)
			continue
		}
		g := p.HTTPGet
		if g.Path != name || g.Port.IntValue() != int(metrics.Port()) {
			t.Errorf("probe for %s hits %s on port %s, want port %d", name, g.Path, g.Port.String(), metrics.Port())
		}
		// A loopback listener is only reachable if the probe names it: the
		// kubelet otherwise probes the pod IP (the node's IP).
		if metrics.Addr().IsLoopback() && g.Host != metrics.Addr().String() {
			t.Errorf("probe for %s goes to host %q but the agent listens on %s", name, g.Host, metrics)
		}
	}

	// Every path the agent and weft-cni share is the same host directory at
	// the same path inside the container, and is not read-only.
	mounts := map[string]corev1.VolumeMount{} // mount path -> mount
	for _, m := range ag.VolumeMounts {
		mounts[m.MountPath] = m
	}
	for field, file := range map[string]string{
		"stateFile":        cfg.StateFile,
		"statusSocket":     cfg.StatusSocket,
		"gossip.leaseFile": cfg.Gossip.LeaseFile,
		"tunnel.keyFile":   cfg.Tunnel.KeyFile,
	} {
		dir := path.Dir(file)
		m, ok := mounts[dir]
		if !ok || hostPaths[m.Name] != dir {
			t.Errorf("%s %s: the host's %s is not mounted at %s", field, file, dir, dir)
			continue
		}
		if m.ReadOnly {
			t.Errorf("%s %s: %s is mounted read-only", field, file, dir)
		}
	}
	if m, ok := mounts["/dev/net/tun"]; !ok || hostPaths[m.Name] != "/dev/net/tun" {
		t.Error("the host's /dev/net/tun is not mounted at /dev/net/tun")
	}
	// /lib/modules is not needed, and a hostPath of type Directory would
	// keep the pod from starting on a host without it.
	if _, ok := mounts["/lib/modules"]; ok {
		t.Error("/lib/modules is mounted")
	}

	// agent.yaml and the gossip key are in the projected config volume.
	projected := map[string]string{} // file in container -> "configmap/key" or "secret/key"
	for _, m := range ag.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name != m.Name || v.Projected == nil {
				continue
			}
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					for _, it := range s.ConfigMap.Items {
						projected[path.Join(m.MountPath, it.Path)] = "configmap/" + s.ConfigMap.Name + "/" + it.Key
					}
				}
				if s.Secret != nil {
					for _, it := range s.Secret.Items {
						projected[path.Join(m.MountPath, it.Path)] = "secret/" + s.Secret.Name + "/" + it.Key
					}
				}
			}
		}
	}
	cm := only[*corev1.ConfigMap](t, objs)
	if got := projected["/etc/weft/agent.yaml"]; got != "configmap/"+cm.Name+"/agent.yaml" {
		t.Errorf("/etc/weft/agent.yaml comes from %q", got)
	}
	secret := only[*corev1.Secret](t, objs)
	if got := projected[cfg.Gossip.KeyFile]; got != "secret/"+secret.Name+"/key" {
		t.Errorf("gossip.keyFile %s comes from %q, want the key of Secret %s", cfg.Gossip.KeyFile, got, secret.Name)
	}
}

// TestPeeringExample: the example peering file is one the agents of its
// cluster would accept.
func TestPeeringExample(t *testing.T) {
	f, err := peering.ReadFile(filepath.Join("peering", "peering.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	local := peering.Local{Name: "east", ID: "east-1",
		PodCIDRs:     []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
		ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")}}
	peers, err := f.Validate(local)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 2 {
		t.Errorf("%d peers, want 2", len(peers))
	}
}
