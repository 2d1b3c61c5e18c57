package lab

import (
	"fmt"
	"maps"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// The Kubernetes objects a --kube lab registers. Building them is pure and
// unit-tested; kubelab.go sends them.

// Names the lab uses in the API.
const (
	// FieldManager owns every field the lab writes (objects it registers
	// and manifests it applies, server-side).
	FieldManager = "weft-lab"
	// LabelLab marks the Nodes (a label) and Pods (an annotation, leaving
	// the labels to the user) a lab registered with the lab's name, so
	// `weft lab kube sync` removes those whose lab node or pod is gone and
	// leaves other objects alone.
	LabelLab = "weft.dev/lab"
	// DefaultPodNamespace is the namespace of a pod added without one.
	DefaultPodNamespace = "default"
	// podContainer is the one container every lab Pod declares.
	podContainer = "main"
	podImage     = "weft.dev/lab-pod:none"
	// WeftNamespace and WeftServiceAccount are the agents' identity, from
	// deploy/kubernetes.
	WeftNamespace      = "weft-system"
	WeftServiceAccount = "weft"
)

// NodeObject is node n's Node as a kubelet would register it: labels,
// InternalIP and Hostname addresses, and a Ready condition. It carries no
// podCIDR: kube-controller-manager assigns it.
func NodeObject(lab string, n NodePlan, now time.Time) *corev1.Node {
	t := metav1.NewTime(now)
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: n.Name,
			Labels: map[string]string{
				corev1.LabelHostname:   n.Name,
				corev1.LabelOSStable:   "linux",
				corev1.LabelArchStable: runtime.GOARCH,
				LabelLab:               lab,
			},
		},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: n.UnderlayIP.String()},
				{Type: corev1.NodeHostName, Address: n.Name},
			},
			Conditions: []corev1.NodeCondition{{
				Type:               corev1.NodeReady,
				Status:             corev1.ConditionTrue,
				Reason:             "WeftLab",
				Message:            "a weft lab node (no kubelet)",
				LastHeartbeatTime:  t,
				LastTransitionTime: t,
			}},
		},
	}
}

// PodObject is pod p (on a node whose underlay address is hostIP) as a
// scheduler and kubelet would leave it: bound to its node, one container,
// and a status (sent through the status subresource) that says Running and
// Ready with the pod's address, so the EndpointSlice controller counts it.
func PodObject(lab string, p PodState, hostIP netip.Addr, now time.Time) *corev1.Pod {
	t := metav1.NewTime(now)
	cond := func(c corev1.PodConditionType) corev1.PodCondition {
		return corev1.PodCondition{Type: c, Status: corev1.ConditionTrue, LastTransitionTime: t}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        p.Name,
			Namespace:   p.Namespace,
			Labels:      maps.Clone(p.Labels),
			Annotations: map[string]string{LabelLab: lab},
		},
		Spec: corev1.PodSpec{
			NodeName:                      p.Node,
			Containers:                    []corev1.Container{{Name: podContainer, Image: podImage, Ports: containerPorts(p.Ports)}},
			TerminationGracePeriodSeconds: new(int64),
		},
		Status: corev1.PodStatus{
			Phase:     corev1.PodRunning,
			StartTime: &t,
			Conditions: []corev1.PodCondition{
				cond(corev1.PodScheduled), cond(corev1.PodInitialized),
				cond(corev1.ContainersReady), cond(corev1.PodReady),
			},
			ContainerStatuses: []corev1.ContainerStatus{{
				Name:        podContainer,
				Image:       podImage,
				ImageID:     podImage,
				ContainerID: "weft-lab://" + p.NetNS,
				Ready:       true,
				Started:     new(bool),
				State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: t}},
			}},
		},
	}
	*pod.Status.ContainerStatuses[0].Started = true
	if hostIP.IsValid() {
		pod.Status.HostIP = hostIP.String()
		pod.Status.HostIPs = []corev1.HostIP{{IP: hostIP.String()}}
	}
	if p.IP.IsValid() {
		pod.Status.PodIP = p.IP.String()
		pod.Status.PodIPs = []corev1.PodIP{{IP: p.IP.String()}}
	}
	return pod
}

// ParseLabels parses "k=v,k2=v2" (the --labels flag); empty gives nil.
func ParseLabels(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("labels: %q is not key=value", kv)
		}
		if err := validateLabel(k, v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// LabelChange is what `pod label` does: set some labels, remove others.
type LabelChange struct {
	Set    map[string]string
	Remove []string
}

// ParseLabelChange parses `pod label` arguments: "k=v" sets, "k-" removes.
func ParseLabelChange(args []string) (LabelChange, error) {
	c := LabelChange{Set: map[string]string{}}
	if len(args) == 0 {
		return c, fmt.Errorf("labels: give at least one key=value or key-")
	}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			if err := validateLabel(k, v); err != nil {
				return c, err
			}
			c.Set[k] = v
			continue
		}
		k, ok := strings.CutSuffix(a, "-")
		if !ok {
			return c, fmt.Errorf("labels: %q is neither key=value nor key- (remove)", a)
		}
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return c, fmt.Errorf("labels: key %q: %s", k, strings.Join(errs, "; "))
		}
		c.Remove = append(c.Remove, k)
	}
	return c, nil
}

// Apply returns labels with c applied (a new map; nil when empty).
func (c LabelChange) Apply(labels map[string]string) map[string]string {
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, c.Set)
	for _, k := range c.Remove {
		delete(out, k)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// MergePatch is the JSON merge patch of metadata.labels that makes c so.
func (c LabelChange) MergePatch() map[string]any {
	labels := map[string]any{}
	for k, v := range c.Set {
		labels[k] = v
	}
	for _, k := range c.Remove {
		if _, set := c.Set[k]; !set {
			labels[k] = nil
		}
	}
	return map[string]any{"metadata": map[string]any{"labels": labels}}
}

func validateLabel(k, v string) error {
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		return fmt.Errorf("labels: key %q: %s", k, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
		return fmt.Errorf("labels: value %q of %s: %s", v, k, strings.Join(errs, "; "))
	}
	return nil
}

// ValidateNamespace checks a Pod namespace name.
func ValidateNamespace(ns string) error {
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return fmt.Errorf("namespace %q: %s", ns, strings.Join(errs, "; "))
	}
	return nil
}

// sortedKeys is for stable output.
func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}

// RealPodObject is pod p for a --kubelets lab: a Pod the node's kubelet
// runs (bound to its node, so no scheduler decides), whose one container
// only holds the sandbox; the lab runs commands in the pod's network
// namespace as in any lab pod.
func RealPodObject(lab string, p PodState) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        p.Name,
			Namespace:   p.Namespace,
			Labels:      maps.Clone(p.Labels),
			Annotations: map[string]string{LabelLab: lab},
		},
		Spec: corev1.PodSpec{
			NodeName: p.Node,
			Containers: []corev1.Container{{
				Name: podContainer, Image: AgnhostImage, Args: []string{"pause"},
				ImagePullPolicy: corev1.PullIfNotPresent, Ports: containerPorts(p.Ports),
			}},
			TerminationGracePeriodSeconds: new(int64),
		},
	}
}
