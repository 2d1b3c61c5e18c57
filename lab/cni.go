package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// CNIRequest is one CNI call as a container runtime makes it. It is run by
// `weft lab cni-exec` in a process whose netns is the node's, because
// weft-cni creates the host end of the pod's veth in its caller's netns.
type CNIRequest struct {
	Action      string // add, del or check
	BinDir      string // where weft-cni is
	CacheDir    string // libcni's result cache, per node
	ConfList    string // the node's conflist file
	ContainerID string
	NetNS       string // path of the pod's netns
	IfName      string
}

// CNIResult is what cni-exec prints on stdout after an add.
type CNIResult struct {
	IPs []netip.Prefix `json:"ips"`
}

// Args is the cni-exec command line that carries r (after `weft lab cni-exec`).
func (r CNIRequest) Args() []string {
	return []string{"--action", r.Action, "--bin-dir", r.BinDir, "--cache-dir", r.CacheDir,
		"--conflist", r.ConfList, "--container-id", r.ContainerID, "--netns", r.NetNS, "--ifname", r.IfName}
}

// RunCNI performs r through libcni in the calling process's netns.
func RunCNI(ctx context.Context, r CNIRequest) (CNIResult, error) {
	list, err := libcni.ConfListFromFile(r.ConfList)
	if err != nil {
		return CNIResult{}, fmt.Errorf("failed to load conflist %s: %w", r.ConfList, err)
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{r.BinDir}, r.CacheDir, nil)
	rt := &libcni.RuntimeConf{ContainerID: r.ContainerID, NetNS: r.NetNS, IfName: r.IfName}
	switch r.Action {
	case "add":
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			return CNIResult{}, fmt.Errorf("CNI ADD of %s: %w", r.ContainerID, err)
		}
		cur, err := types100.NewResultFromResult(res)
		if err != nil {
			return CNIResult{}, fmt.Errorf("CNI ADD of %s: failed to convert result: %w", r.ContainerID, err)
		}
		var out CNIResult
		for _, ip := range cur.IPs {
			if a, ok := netip.AddrFromSlice(ip.Address.IP); ok {
				ones, _ := ip.Address.Mask.Size()
				out.IPs = append(out.IPs, netip.PrefixFrom(a.Unmap(), ones))
			}
		}
		if len(out.IPs) == 0 {
			return CNIResult{}, fmt.Errorf("CNI ADD of %s: the result has no IP address", r.ContainerID)
		}
		return out, nil
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			return CNIResult{}, fmt.Errorf("CNI DEL of %s: %w", r.ContainerID, err)
		}
		return CNIResult{}, nil
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			return CNIResult{}, fmt.Errorf("CNI CHECK of %s: %w", r.ContainerID, err)
		}
		return CNIResult{}, nil
	}
	return CNIResult{}, fmt.Errorf("cni-exec: unknown action %q (want add, del or check)", r.Action)
}

// parseCNIResult reads cni-exec's stdout.
func parseCNIResult(b []byte) (CNIResult, error) {
	var r CNIResult
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("failed to parse cni-exec output %q: %w", b, err)
	}
	return r, nil
}
