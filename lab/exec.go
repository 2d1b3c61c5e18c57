package lab

import (
	"errors"
	"fmt"
	"strings"
)

// ExecArgv returns the command line that runs argv inside target: a node
// ("n1": its netns and its /run/wireguard), a pod ("n1/p1": its netns) or,
// in a --kube lab, the control plane ("cp": its netns).
func (lb *Lab) ExecArgv(target string, argv []string) ([]string, error) {
	if len(argv) == 0 {
		return nil, errors.New("exec: no command given")
	}
	st, err := loadState(lb.layout)
	if err != nil {
		return nil, err
	}
	if target == CPNodeName && st.Spec.Kube {
		return PodArgv(lb.layout.CPNS(), argv), nil
	}
	node, pod, isPod := strings.Cut(target, "/")
	_, n, err := lb.nodePlan(st, node)
	if err != nil {
		return nil, err
	}
	if isPod {
		i, ok := st.pod(node, pod)
		if !ok {
			return nil, fmt.Errorf("node %s has no pod %q", node, pod)
		}
		return PodArgv(st.Pods[i].NetNS, argv), nil
	}
	if err := prepareNodeView(n); err != nil {
		return nil, err
	}
	return NodeViewArgv(n, argv), nil
}
