package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
)

// CreateUnderlay creates the underlay and internet namespaces of l.
func CreateUnderlay(ctx context.Context, r Runner, l Layout, mtu int) error {
	if err := runAll(ctx, r, UnderlayCmds(l, mtu)); err != nil {
		return fmt.Errorf("failed to create the underlay of lab %s: %w", l.Name, err)
	}
	return nil
}

// CreateNode creates node n's namespace and plugs it into the underlay.
func CreateNode(ctx context.Context, r Runner, l Layout, n NodePlan, mtu int) error {
	if err := runAll(ctx, r, NodeCmds(l, n, mtu)); err != nil {
		return fmt.Errorf("failed to create node %s (netns %s): %w", n.Name, n.NetNS, err)
	}
	return nil
}

// Namespaces lists the named network namespaces that start with prefix.
func Namespaces(prefix string) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to list %s: %w", netnsDir, err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// DeleteNS deletes a named namespace; one that does not exist is not an
// error.
func DeleteNS(ctx context.Context, r Runner, ns string) error {
	if _, err := os.Lstat(NetNSPath(ns)); errors.Is(err, os.ErrNotExist) {
		return removeNetnsEtc(ns)
	}
	if _, err := r.Run(ctx, DeleteNSCmd(ns)...); err != nil {
		if _, serr := os.Lstat(NetNSPath(ns)); errors.Is(serr, os.ErrNotExist) {
			return removeNetnsEtc(ns) // deleted concurrently
		}
		return fmt.Errorf("failed to delete netns %s: %w", ns, err)
	}
	// A pod's resolv.conf (resolvconf.go) goes with its namespace.
	return removeNetnsEtc(ns)
}

// Owned reports whether namespace ns carries lab l's OwnerMark.
func Owned(ctx context.Context, r Runner, l Layout, ns string) bool {
	out, err := r.Run(ctx, "ip", "-n", ns, "-j", "link", "show", "lo")
	if err != nil {
		return false
	}
	var links []struct {
		IfAlias string `json:"ifalias"`
	}
	if json.Unmarshal(out, &links) != nil || len(links) != 1 {
		return false
	}
	return links[0].IfAlias == l.OwnerMark()
}

// DeleteNamespaces deletes the recorded namespaces and every namespace whose
// name starts with prefix and that carries l's OwnerMark (those a crash
// left unrecorded). Lab names contain no '-', so no other lab's namespaces
// start with l.Prefix().
func DeleteNamespaces(ctx context.Context, r Runner, l Layout, prefix string, recorded []string) error {
	found, err := Namespaces(prefix)
	if err != nil {
		return err
	}
	del := slices.Clone(recorded)
	for _, ns := range found {
		if !slices.Contains(del, ns) && Owned(ctx, r, l, ns) {
			del = append(del, ns)
		}
	}
	var errs []error
	for _, ns := range del {
		if err := DeleteNS(ctx, r, ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
