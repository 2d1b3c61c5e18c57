package policy

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Remove deletes weft's policy table; a missing table is not an error.
func Remove(conn Conn) error {
	t := &nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4}
	conn.AddTable(t)
	conn.DelTable(t)
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("failed to remove nftables table %s: %w", TableName, err)
	}
	return nil
}

// SendBuffer is the netlink socket send buffer NewConn asks for. A batch
// is one sendmsg, and a large cluster's table (thousands of set elements)
// does not fit the default buffer (about 200KiB).
const SendBuffer = 64 << 20

// NewConn opens a netlink connection for nftables (in the current network
// namespace unless an option says otherwise) whose send buffer holds a
// large batch.
func NewConn(opts ...nftables.ConnOption) (*nftables.Conn, error) {
	c, err := nftables.New(append(opts, nftables.WithSockOptions(bigSendBuffer))...)
	if err != nil {
		return nil, fmt.Errorf("failed to open nftables netlink connection: %w", err)
	}
	return c, nil
}

// bigSendBuffer sets SO_SNDBUFFORCE and SO_RCVBUFFORCE (past
// net.core.wmem_max and rmem_max; needs CAP_NET_ADMIN, which programming
// nftables needs anyway; the kernel acknowledges every message of a batch,
// so the receive side needs room too), falling back to the plain options.
func bigSendBuffer(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err == nil {
		var serr, rerr error
		err = rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, SendBuffer)
			rerr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, SendBuffer)
		})
		if err == nil && serr == nil && rerr == nil {
			return nil
		}
	}
	if err := c.SetWriteBuffer(SendBuffer); err != nil {
		return err
	}
	return c.SetReadBuffer(SendBuffer)
}
