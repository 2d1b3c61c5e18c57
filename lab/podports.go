package lab

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// PodPort is a named container port a lab Pod declares, so that a
// NetworkPolicy can name it (ports: [{port: http}]).
type PodPort struct {
	Name     string `json:"name"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol"` // TCP, UDP or SCTP
}

// ParsePorts parses the --ports flag: "name=80/TCP,dns=53/udp" (protocol
// defaults to TCP); empty gives nil.
func ParsePorts(s string) ([]PodPort, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []PodPort
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		name, rest, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("ports: %q is not name=port[/protocol]", item)
		}
		if errs := validation.IsValidPortName(name); len(errs) > 0 {
			return nil, fmt.Errorf("ports: name %q: %s", name, strings.Join(errs, "; "))
		}
		num, proto, _ := strings.Cut(rest, "/")
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("ports: %s: %q is not a port number 1-65535", name, num)
		}
		proto = strings.ToUpper(proto)
		switch proto {
		case "":
			proto = "TCP"
		case "TCP", "UDP", "SCTP":
		default:
			return nil, fmt.Errorf("ports: %s: protocol %q is not TCP, UDP or SCTP", name, proto)
		}
		if seen[name] {
			return nil, fmt.Errorf("ports: name %q given twice", name)
		}
		seen[name] = true
		out = append(out, PodPort{Name: name, Port: int32(n), Protocol: proto})
	}
	return out, nil
}

// containerPorts is ps as the lab container's ports.
func containerPorts(ps []PodPort) []corev1.ContainerPort {
	var out []corev1.ContainerPort
	for _, p := range ps {
		out = append(out, corev1.ContainerPort{Name: p.Name, ContainerPort: p.Port, Protocol: corev1.Protocol(p.Protocol)})
	}
	return out
}
