package kube

import (
	"context"
	"fmt"
	"net"

	"github.com/containernetworking/plugins/pkg/ns"
)

// dialer is a DialContext that opens its sockets inside the network
// namespace at path. A socket belongs to the namespace it was created in,
// so only the socket() call needs the namespace's thread; ns.Do runs it on a
// locked thread and restores (or retires) the thread afterwards. This lets
// a caller in the host namespace reach an apiserver whose address is only
// routed inside the lab.
func dialer(path string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := ns.WithNetNSPath(path, func(ns.NetNS) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			conn = c
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("failed to dial %s in netns %s: %w", addr, path, err)
		}
		return conn, nil
	}
}
