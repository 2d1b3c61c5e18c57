package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
)

// State is what a lab has created, persisted in state.json. `down` does
// not depend on it being complete: it also finds namespaces by prefix and
// agents by their config path.
type State struct {
	Spec  Spec        `json:"spec"`
	Nodes []NodeState `json:"nodes"`
	Pods  []PodState  `json:"pods"`
}

// NodeState is one node of the lab.
type NodeState struct {
	Name       string     `json:"name"`
	Index      int        `json:"index"`
	NetNS      string     `json:"netns"`
	UnderlayIP netip.Addr `json:"underlayIP"`
	// PID is the agent's process id, 0 when stopped.
	PID int `json:"pid"`
	// Registered is true once the node's Node object exists (--kube labs).
	Registered bool `json:"registered,omitempty"`
}

// PodState is one pod of the lab.
type PodState struct {
	Name        string     `json:"name"`
	Node        string     `json:"node"`
	NetNS       string     `json:"netns"`
	ContainerID string     `json:"containerID"`
	IP          netip.Addr `json:"ip"`
	// Namespace and Labels are the Pod object's (--kube labs).
	Namespace string            `json:"namespace,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	// Ports are the named container ports of the Pod object (--kube labs).
	Ports []PodPort `json:"ports,omitempty"`
	// Registered is true once the Pod object exists with its status
	// (--kube labs).
	Registered bool `json:"registered,omitempty"`
}

// ErrNoLab is returned when the lab has no state directory.
var ErrNoLab = errors.New("no such lab")

func (s *State) node(name string) (*NodeState, bool) {
	for i := range s.Nodes {
		if s.Nodes[i].Name == name {
			return &s.Nodes[i], true
		}
	}
	return nil, false
}

func (s *State) pod(node, name string) (int, bool) {
	for i, p := range s.Pods {
		if p.Node == node && p.Name == name {
			return i, true
		}
	}
	return -1, false
}

// namespaces lists every namespace st records for lab l, pods first.
func (s *State) namespaces(l Layout) []string {
	var out []string
	for _, p := range s.Pods {
		out = append(out, p.NetNS)
	}
	for _, n := range s.Nodes {
		out = append(out, n.NetNS)
	}
	if s.Spec.Kube {
		out = append(out, l.CPNS())
	}
	return append(out, l.InetNS(), l.UnderlayNS())
}

// podByObject finds the pod whose Pod object is namespace/name.
func (s *State) podByObject(namespace, name string) (int, bool) {
	for i, p := range s.Pods {
		if p.Namespace == namespace && p.Name == name {
			return i, true
		}
	}
	return -1, false
}

// plans rebuilds the node plans of every recorded node.
func (s *State) plans(l Layout) ([]NodePlan, error) {
	out := make([]NodePlan, 0, len(s.Nodes))
	for _, n := range s.Nodes {
		p, err := l.PlanNode(n.Name, n.Index)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// loadState reads state.json; ErrNoLab (wrapped) when it does not exist.
func loadState(l Layout) (*State, error) {
	b, err := os.ReadFile(l.StateFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w %q (%s does not exist)", ErrNoLab, l.Name, l.StateFile())
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read lab state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("failed to parse lab state %s: %w", l.StateFile(), err)
	}
	return &s, nil
}

// saveState replaces state.json atomically.
func saveState(l Layout, s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("failed to encode lab state: %w", err)
	}
	return writeFileAtomic(l.StateFile(), append(b, '\n'), 0o644)
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to chmod %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("failed to replace %s: %w", path, err)
	}
	return nil
}

// lock takes the lab's exclusive lock, waiting for other weft lab commands
// on the same lab. The returned func releases it.
func lock(l Layout) (func(), error) {
	if err := os.MkdirAll(l.Root, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create %s: %w", l.Root, err)
	}
	f, err := os.OpenFile(l.LockFile(), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("failed to open lab lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("failed to lock %s: %w", l.LockFile(), err)
	}
	return func() { f.Close() }, nil
}
